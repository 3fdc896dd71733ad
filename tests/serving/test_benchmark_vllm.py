"""The benchmark program against REAL vLLM: one `vllm serve` of the tiny Qwen2-VL in W8A8 with the
Deployment's own arguments (factories.vllm), measured by GuideLLM 0.8.1 in every scenario the
program offers, with one of the study's image workloads. One server for the whole module."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from factories import FEW_GUIDELLM_WORKERS
from factories.vllm import SERVED_NAME, VllmServer, VllmServers, deployment_args
from quantfleet.api.contract import SWEEP_THROUGHPUT, WORKLOAD_PRESETS, WorkloadPreset
from quantfleet.api.enums import ModelKind, ScenarioKind, Scheme
from quantfleet.api.results import BenchmarkMeasurement, BenchmarkResult, parse_result
from quantfleet_jobs import benchmark

# A preset with an image and a text prompt: GuideLLM synthesises the 640x480 image, the tiny
# model's processor shrinks it to at most 112x112 (factories.models), so it fits the context.
WORKLOAD = WorkloadPreset.VISUAL_REASONING
REQUESTS = 4  # per benchmark: seconds each on two cores
MAX_CONCURRENCY = 2
RATES = (1.0, 2.0)
SWEEP_STEPS = 3
WANT_LABELS = {
    ScenarioKind.LATENCY: ["latency"],
    ScenarioKind.THROUGHPUT: ["throughput"],
    ScenarioKind.SWEEP: ["sweep:synchronous", SWEEP_THROUGHPUT, "sweep@"],
    ScenarioKind.RATE: ["rate@1", "rate@2"],
}


@pytest.fixture(autouse=True)
def few_guidellm_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FEW_GUIDELLM_WORKERS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def w8a8_server(
    vllm_servers: VllmServers, tiny_vlm: Path, checkpoint: Callable[[Path, Scheme], Path]
) -> VllmServer:
    model = checkpoint(tiny_vlm, Scheme.W8A8)
    args = deployment_args(model, ModelKind.VISION_LANGUAGE, Scheme.W8A8)
    return vllm_servers.serve(model, args)


def measure(
    server: VllmServer, tokenizer: Path, tmp_path: Path, scenario: ScenarioKind
) -> tuple[int, Any, Path]:
    """One run of the program, in this process, as the benchmark Job runs it; returns its exit
    code, its result and the folder holding GuideLLM's full reports."""
    output, log = tmp_path / "reports", tmp_path / "termination-log"
    code = benchmark.main(
        [
            f"--target={server.url}",
            f"--model={SERVED_NAME}",
            f"--tokenizer={tokenizer}",
            f"--workloads={WORKLOAD}",
            f"--scenarios={scenario}",
            f"--rates={','.join(f'{rate:g}' for rate in RATES)}",
            f"--sweep-steps={SWEEP_STEPS}",
            f"--max-concurrency={MAX_CONCURRENCY}",
            f"--max-requests={REQUESTS}",
            "--max-seconds=120",
            f"--output={output}",
            f"--termination-log={log}",
            f"--workdir={tmp_path / 'work'}",
        ]
    )
    return code, parse_result(log.read_text()), output


def assert_measured(run: BenchmarkMeasurement) -> None:
    """What every benchmark of a real server shows: all requests answered, latencies positive
    and consistent with each other."""
    assert (run.workload, run.errored, run.error_rate) == (WORKLOAD, 0, 0)
    # GuideLLM 0.8.1 may close a constant-rate benchmark with its last request still in flight
    # (not counted) when the machine is loaded: seen at rate@1, 3 of 4, 26 s per request.
    assert 0 < run.successful <= REQUESTS
    assert run.requests_per_second > 0
    assert run.output_tokens_per_second > 0
    assert 0 < run.ttft_ms.p50 <= run.ttft_ms.p90 <= run.ttft_ms.p99
    assert 0 < run.itl_ms.p50 <= run.itl_ms.p99
    assert run.ttft_ms.p50 < run.latency_s.p50 * 1000


def assert_requests_had_the_workloads_shape(report: dict[str, Any]) -> None:
    """From GuideLLM's full report: every request carried the preset's image, and vLLM
    generated exactly its output tokens (the program's ignore_eos reached the server)."""
    shape = WORKLOAD_PRESETS[WORKLOAD]
    for bench in report["benchmarks"]:
        metrics = bench["metrics"]
        pixels = metrics["image"]["pixels"]["input"]["successful"]
        assert (pixels["count"], pixels["min"], pixels["max"]) == (
            metrics["request_totals"]["successful"],
            shape.image_width * shape.image_height,
            shape.image_width * shape.image_height,
        )
        output = metrics["output_token_count"]["successful"]
        assert output["min"] == output["max"] == shape.output_tokens


def strategies(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [bench["config"]["strategy"] for bench in report["benchmarks"]]


@pytest.mark.parametrize("scenario", list(ScenarioKind), ids=str)
def test_every_scenario_measures_a_real_vllm_server_with_an_image_workload(
    w8a8_server: VllmServer, tiny_vlm: Path, tmp_path: Path, scenario: ScenarioKind
) -> None:
    code, result, output = measure(w8a8_server, tiny_vlm, tmp_path, scenario)

    assert code == 0, result
    assert isinstance(result, BenchmarkResult)
    assert result.simulated is False
    assert result.library_versions == {"guidellm": "0.8.1"}
    labels = [run.scenario for run in result.runs]
    want = WANT_LABELS[scenario]
    assert len(labels) == len(want)
    assert all(label.startswith(prefix) for label, prefix in zip(labels, want, strict=True))
    for run in result.runs:
        assert_measured(run)
    report = json.loads((output / f"{WORKLOAD}-{scenario}.json").read_text())
    assert_requests_had_the_workloads_shape(report)
    bounded = [s for s in strategies(report) if s["type_"] == "throughput"]
    assert all(s["max_concurrency"] == MAX_CONCURRENCY for s in bounded)
    assert len(bounded) == (scenario in (ScenarioKind.THROUGHPUT, ScenarioKind.SWEEP))
