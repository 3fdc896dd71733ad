"""A BenchmarkRun end to end whose numbers are MEASURED: the real operator on the local control
plane runs the tiny Qwen2-VL's W8A8 QuantizedModel (quantize and evaluate SIMULATED, as labelled)
against its BF16 baseline, and each benchmark Job pod's result comes from a real run of the
benchmark program against a real vLLM server started with the arguments of that target's live
Deployment (testbed.program_runner.ProgramRunner). One server at a time: the baseline's Job runs
first, then the W8A8 one, under the same load."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from factories import FEW_GUIDELLM_WORKERS, Models, Runs, make_benchmark_run, make_quantized_model
from factories.vllm import SERVED_NAME, VllmServers, tiny_model_sections
from quantfleet.api.contract import LABEL_TARGET, Component, WorkloadPreset
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.results import BenchmarkResult, parse_result
from quantfleet.builders.benchmark import baseline_name
from quantfleet.builders.benchmark_status import SPEEDUP_DIGITS
from quantfleet.builders.serving import serving_name
from quantfleet.testbed.program_runner import ProgramRunner
from quantfleet.testbed.wait import poll_until
from quantfleet.testbed.worker import SimulatedWorker

pytestmark = pytest.mark.integration

RUN = "real"
REQUESTS = 8
# Two vLLM starts (~1-2 min each here) and four GuideLLM runs, one after another.
TIMEOUT = 1500.0


def test_speedups_of_w8a8_over_bf16_measured_on_real_vllm_reach_status_and_the_report(
    models: Models,
    runs: Runs,
    worker: SimulatedWorker,
    api_client: client.ApiClient,
    kubeconfig: Path,
    namespace: str,
    make_volume: Callable[[str, str], str],
    vllm_servers: VllmServers,
    tiny_vlm: Path,
    checkpoint: Callable[[Path, Scheme], Path],
    tmp_path: Path,
) -> None:
    sections = tiny_model_sections(ModelKind.VISION_LANGUAGE, Scheme.W8A8)
    # What each in-cluster Service serves, on this host: the source, or the W8A8 checkpoint.
    served = {
        baseline_name(RUN): tiny_vlm,
        serving_name(SERVED_NAME): checkpoint(tiny_vlm, Scheme.W8A8),
    }
    apps = client.AppsV1Api(api_client)

    def serve(target: str) -> str:
        """A real server for the in-cluster URL: vLLM with the live Deployment's arguments."""
        service = str(urlsplit(target).hostname).split(".")[0]
        deployment = apps.read_namespaced_deployment(service, namespace)
        args = deployment.spec.template.spec.containers[0].args
        return vllm_servers.serve(served[service], args).url

    runner = ProgramRunner(
        serve,
        tmp_path / "jobs",
        tokenizers={sections["source"]["uri"]: str(tiny_vlm)},
        env=FEW_GUIDELLM_WORKERS,
    )
    worker.producer = runner
    make_volume(namespace, "models")
    models.create(make_quantized_model(SERVED_NAME, Scheme.W8A8, **sections))
    runs.create(
        make_benchmark_run(
            RUN,
            targets=[{"name": "w8a8", "modelRef": {"name": SERVED_NAME}}],
            baseline={"modelRef": {"name": SERVED_NAME}},
            workloads=[{"name": "vr", "preset": WorkloadPreset.VISUAL_REASONING}],
            scenarios=[{"kind": "latency"}, {"kind": "throughput"}],
            limits={"maxRequests": REQUESTS, "maxSeconds": 120},
        )
    )

    def ended() -> dict[str, str] | None:
        found = [runs.condition(RUN, kind) for kind in ("Succeeded", "Failed")]
        return next((c for c in found if c.get("status") == "True"), None)

    succeeded = poll_until(ended, timeout=TIMEOUT, what=f"{RUN} Succeeded or Failed")
    assert (succeeded["type"], succeeded["reason"]) == ("Succeeded", "Completed"), succeeded

    # What the program measured, per target (the pods' results, as the runner returned them).
    jobs = runs.pods(RUN, Component.BENCHMARK)
    targets = {pod.metadata.name: pod.metadata.labels[LABEL_TARGET] for pod in jobs}
    measured = {targets[pod]: parse_result(text) for pod, text in runner.results.items()}
    assert sorted(measured) == ["baseline", "w8a8"]
    assert all(isinstance(m, BenchmarkResult) and not m.simulated for m in measured.values())
    assert "SIMULATED" not in succeeded["message"]
    status = runs.get(RUN)["status"]
    results = {(r["target"], r["scenario"]): r for r in status["results"]}
    assert sorted(results) == [
        ("baseline", "latency"),
        ("baseline", "throughput"),
        ("w8a8", "latency"),
        ("w8a8", "throughput"),
    ]
    for target, result in measured.items():
        assert isinstance(result, BenchmarkResult)
        for run in result.runs:
            shown = results[target, run.scenario]
            assert shown["simulated"] is False
            assert (shown["workload"], shown["errorRate"]) == ("vr", 0)
            assert 0 < run.successful <= REQUESTS  # GuideLLM may not count a last request
            assert shown["requestsPerSecond"] == run.requests_per_second > 0
            assert shown["latencySeconds"]["p50"] == run.latency_s.p50 > 0
            assert shown["ttftMs"]["p50"] == run.ttft_ms.p50 > 0
            assert shown["itlMs"]["p50"] == run.itl_ms.p50 > 0

    # Speed-ups of the measured numbers: latency baseline / W8A8, throughput W8A8 / baseline.
    def ratio(top: float, bottom: float) -> float:
        return round(top / bottom, SPEEDUP_DIGITS)

    base, w8a8 = results["baseline", "latency"], results["w8a8", "latency"]
    base_tp, w8a8_tp = results["baseline", "throughput"], results["w8a8", "throughput"]
    speedups = {(s["target"], s["scenario"], s["metric"]): s["value"] for s in status["speedups"]}
    assert speedups == {
        ("w8a8", "latency", "latency"): ratio(
            base["latencySeconds"]["p50"], w8a8["latencySeconds"]["p50"]
        ),
        ("w8a8", "throughput", "throughput"): ratio(
            w8a8_tp["requestsPerSecond"], base_tp["requestsPerSecond"]
        ),
    }
    assert status["bestSpeedup"] == max(speedups.values())
    print(f"measured W8A8 vs BF16 speed-ups on the CPU: {speedups}")  # shown with -s

    # `quantfleet report`, as a user runs it, reads the run from the cluster and shows it
    # unmarked.
    out = tmp_path / "report"
    shown = subprocess.run(
        [sys.executable, "-m", "quantfleet.cli.main", "report", RUN, "-n", namespace,
         "--out", str(out)],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout
    print(table)
    assert "SIMULATED" not in table
    assert " *" not in table  # simulated rows are starred
    assert f"{w8a8_tp['requestsPerSecond']:.2f}" in table
    assert (out / f"{RUN}.png").stat().st_size > 0
    assert "SIMULATED" not in (out / f"{RUN}.html").read_text()
    assert json.loads(runs.config_maps(RUN)[0].data["w8a8.json"])["simulated"] is False
