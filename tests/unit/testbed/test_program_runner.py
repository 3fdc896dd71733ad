"""ProgramRunner: a benchmark Job pod, as the operator builds it, run by the real benchmark program
with only the endpoint and the tokenizer swapped; other pods keep their SIMULATED results. No
server here: the program's own fail-fast on an unreachable endpoint is what comes back."""

import socket
from pathlib import Path
from typing import Any

from factories import make_run_owner, make_run_spec
from quantfleet.api.results import FailureResult, QuantizeResult, parse_result
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.benchmark import SystemUnderTest, build_benchmark_job
from quantfleet.testbed.program_runner import ProgramRunner

IN_CLUSTER = "http://qwen-vllm.ml.svc:8000"
SOURCE = "hf://Qwen/Qwen2.5-VL-7B-Instruct"
Json = dict[str, Any]


def benchmark_pod() -> Json:
    endpoint = SystemUnderTest("w8a8", IN_CLUSTER, "qwen", SOURCE)
    job = build_benchmark_job(make_run_owner(), make_run_spec(), endpoint, OperatorSettings())
    template = job["spec"]["template"]
    return {"metadata": {**template["metadata"], "name": "cmp-bench-1"}, "spec": template["spec"]}


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_the_real_program_runs_with_the_pods_arguments_against_the_swapped_endpoint(
    tmp_path: Path,
) -> None:
    asked: list[str] = []
    local = closed_port_url()

    def endpoint(target: str) -> str:
        asked.append(target)
        return local

    runner = ProgramRunner(endpoint, tmp_path, tokenizers={SOURCE: str(tmp_path / "tok")})
    exit_code, text = runner(benchmark_pod()) or (None, "")

    assert asked == [IN_CLUSTER]
    assert exit_code == 1
    result = parse_result(text)
    assert isinstance(result, FailureResult)
    assert f"endpoint {local} is unreachable" in result.reason
    assert result.simulated is False
    assert runner.results == {"cmp-bench-1": text}


def test_a_target_without_a_server_fails_its_pod_with_the_reason(tmp_path: Path) -> None:
    def endpoint(target: str) -> str:
        raise RuntimeError("vllm serve did not become ready")

    exit_code, text = ProgramRunner(endpoint, tmp_path)(benchmark_pod()) or (None, "")

    assert exit_code == 1
    result = parse_result(text)
    assert isinstance(result, FailureResult)
    assert result.reason == f"no server for {IN_CLUSTER}: vllm serve did not become ready"


def test_other_programs_pods_keep_simulated_results(tmp_path: Path) -> None:
    pod = benchmark_pod()
    pod["metadata"]["labels"]["quantfleet.io/component"] = "quantize"
    container = pod["spec"]["containers"][0]
    container["args"] = ["--source=hf://a/b", "--output=s3://b/c", "--scheme=W8A8"]

    exit_code, text = ProgramRunner(lambda target: target, tmp_path)(pod) or (None, "")

    result = parse_result(text)
    assert (exit_code, type(result), result.simulated) == (0, QuantizeResult, True)
