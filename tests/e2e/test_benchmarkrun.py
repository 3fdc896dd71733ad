"""BenchmarkRuns end to end on the real control plane: the real operator process (its own RBAC),
the real Job, Deployment and garbage-collection controllers, the scheduler placing the BF16
baseline on kwok's simulated GPU nodes, and the SIMULATED worker completing the Job pods — except
in the one test where a real run of the benchmark program supplies the pod's result."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from factories import (
    DEV_INVENTORY,
    FEW_GUIDELLM_WORKERS,
    MOCK_MODEL,
    MOCK_TTFT_MS,
    Models,
    Runs,
    build_tokenizer,
    make_benchmark_run,
    make_quantized_model,
)
from quantfleet.api.contract import LABEL_BENCHMARK_RUN, LABEL_COMPONENT, LABEL_TARGET, Component
from quantfleet.api.enums import GpuFamily
from quantfleet.api.results import BenchmarkResult, parse_result
from quantfleet.cli import main as cli_main
from quantfleet.cli.localrun import OperatorProcess
from quantfleet.planning.baseline import BaselinePlan, plan_baseline
from quantfleet.testbed.program_runner import ProgramRunner
from quantfleet.testbed.wait import poll_until
from quantfleet.testbed.worker import (
    Outcome,
    SimulatedResults,
    SimulatedWorker,
    dump_simulated,
    pod_arguments,
)

pytestmark = pytest.mark.integration


Json = dict[str, Any]
TIMEOUT = Runs.timeout


class FixedBenchmarks:
    """SIMULATED results with chosen latency p50 and requests/s per benchmark target, so the
    speed-ups the operator computes can be checked; `hold` keeps those targets' pods Running."""

    def __init__(self, numbers: dict[str, tuple[float, float]], errored: int = 0) -> None:
        self.numbers, self.errored = numbers, errored
        self.hold: set[str] = set()
        self.default = SimulatedResults()

    def __call__(self, pod: Json) -> Outcome | None:
        target = pod["metadata"]["labels"].get(LABEL_TARGET)
        if target is None:
            return self.default(pod)
        if target in self.hold:
            return None
        latency, rps = self.numbers[target]
        made = self.default.benchmark(pod_arguments(pod), pod["metadata"]["name"])
        runs = [
            run.model_copy(
                update={
                    "requests_per_second": rps,
                    "latency_s": run.latency_s.model_copy(update={"p50": latency}),
                    "successful": 100 - self.errored,
                    "errored": self.errored,
                    "error_rate": self.errored / 100,
                }
            )
            for run in made.runs
        ]
        return 0, dump_simulated(made.model_copy(update={"runs": runs}))


def node_of(api: client.ApiClient, namespace: str, selector: str) -> Json:
    pods = poll_until(
        lambda: [
            p
            for p in client.CoreV1Api(api)
            .list_namespaced_pod(namespace, label_selector=selector)
            .items
            if p.spec.node_name
        ],
        timeout=TIMEOUT,
        what=f"a scheduled pod for {selector}",
    )
    labels: Json = client.CoreV1Api(api).read_node(pods[0].spec.node_name).metadata.labels
    limits = pods[0].spec.containers[0].resources.limits
    return {"labels": labels, "gpus": limits.get("nvidia.com/gpu")}


def test_run_against_a_model_and_its_bf16_baseline(
    runs: Runs,
    models: Models,
    worker: SimulatedWorker,
    operator: OperatorProcess,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    """Baseline Deployment on the model's GPU family with the GPUs BF16 needs, the baseline Job
    first and the target's only after it, status and speed-ups from the Jobs' results, teardown
    of the baseline when done, and garbage collection of everything when the run is deleted."""
    producer = FixedBenchmarks({"baseline": (2.0, 1.0), "fp8": (1.6, 1.5)})
    producer.hold.add("baseline")
    worker.producer = producer
    big = make_quantized_model("big")
    big["spec"]["source"]["parametersBillions"] = 120
    models.create(big)
    runs.create(
        make_benchmark_run(
            "cmp",
            targets=[{"name": "fp8", "modelRef": {"name": "big"}}],
            baseline={"modelRef": {"name": "big"}},
        )
    )

    # The baseline: the source in BF16 on the family the model was planned for.
    plan = poll_until(
        lambda: (models.get("big").get("status") or {}).get("plan"),
        timeout=TIMEOUT,
        what="big planned",
    )
    family = GpuFamily(plan["gpuFamily"])
    baseline_pods = f"{LABEL_BENCHMARK_RUN}=cmp,{LABEL_COMPONENT}={Component.BASELINE}"
    placed = node_of(api_client, namespace, baseline_pods)
    expected = plan_baseline(120 * 10**9, family, DEV_INVENTORY)
    assert isinstance(expected, BaselinePlan)
    assert placed["labels"]["nvidia.com/gpu.family"] == family
    # BF16 weights are twice FP8's: the baseline needs more GPUs than the model it is compared to.
    assert int(placed["gpus"]) == expected.gpus > plan["gpusPerReplica"]
    container = runs.deployments("cmp")[0].spec.template.spec.containers[0]
    assert container.args[0] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert "--dtype=bfloat16" in container.args

    # The baseline's Job runs first; the target's waits for it.
    poll_until(
        lambda: "baseline: Job" in runs.condition("cmp", "Running").get("message", ""),
        timeout=TIMEOUT,
        what="the baseline Job running",
    )
    models.wait_condition("big", "Ready", "True")
    assert [j.metadata.labels[LABEL_TARGET] for j in runs.jobs("cmp")] == ["baseline"]
    producer.hold.clear()

    succeeded = runs.wait_condition("cmp", "Succeeded", reason="Completed")
    jobs = runs.jobs("cmp")
    assert [j.metadata.labels[LABEL_TARGET] for j in jobs] == ["baseline", "fp8"]
    assert jobs[1].metadata.creation_timestamp >= jobs[0].status.completion_time
    status = runs.get("cmp")["status"]
    assert status["jobs"] == [j.metadata.name for j in jobs]
    assert len(status["results"]) == 8  # 2 targets x 2 workloads x 2 scenarios
    assert all(r["simulated"] is True for r in status["results"])
    assert "SIMULATED" in succeeded["message"]
    speedups = [(s["workload"], s["scenario"], s["metric"], s["value"]) for s in status["speedups"]]
    assert sorted(speedups) == [
        ("cap", "latency", "latency", 1.25),
        ("cap", "throughput", "throughput", 1.5),
        ("doc", "latency", "latency", 1.25),
        ("doc", "throughput", "throughput", 1.5),
    ]
    assert status["bestSpeedup"] == 1.5
    assert status["workloads"] == "doc,cap"
    report = client.CoreV1Api(api_client).read_namespaced_config_map(
        status["reportConfigMap"], namespace
    )
    assert json.loads(report.data["fp8.json"])["simulated"] is True
    assert json.loads(report.data["summary.json"])["bestSpeedup"] == 1.5

    # Torn down when done; the metrics carry the latest speed-ups.
    poll_until(lambda: not runs.deployments("cmp"), timeout=TIMEOUT, what="baseline torn down")
    metrics = operator.metrics()
    assert re.search(
        r'quantfleet_benchmark_speedup\{[^}]*metric="throughput"[^}]*simulated="true"'
        r'[^}]*target="fp8"[^}]*workload="doc"\} 1\.5',
        metrics,
    ), metrics[-3000:]
    assert {"BaselineDeploying", "BenchmarkStarted", "BaselineRemoved", "Completed"} <= set(
        runs.events("cmp")
    )

    runs.delete("cmp")
    poll_until(
        lambda: not (runs.jobs("cmp") or runs.config_maps("cmp") or runs.deployments("cmp")),
        timeout=TIMEOUT,
        what="the run's Jobs and ConfigMap garbage-collected",
    )


def test_an_error_rate_above_the_limit_fails_the_run(runs: Runs, worker: SimulatedWorker) -> None:
    """A result that claims success with 30% failed requests (the peer bug, §5) fails the run."""
    worker.producer = FixedBenchmarks({"plain": (1.0, 1.0)}, errored=30)
    runs.create(
        make_benchmark_run(
            "errs",
            targets=[
                {"name": "plain", "endpoint": {"url": "http://vllm.example:8000", "model": "m"}}
            ],
            maxErrorRate=0.05,
        )
    )
    failed = runs.wait_condition("errs", "Failed", reason="ErrorRateExceeded")
    assert "error rate 0.30 is over 0.05 (30 of 100 requests failed)" in failed["message"]
    assert runs.condition("errs", "Running")["status"] == "False"
    assert runs.condition("errs", "Succeeded")["status"] == "False"


def test_parallel_runs_start_every_target_at_once(runs: Runs, worker: SimulatedWorker) -> None:
    producer = FixedBenchmarks({"a": (1.0, 1.0), "b": (1.0, 2.0)})
    producer.hold.update({"a", "b"})
    worker.producer = producer
    endpoints = [
        {"name": name, "endpoint": {"url": f"http://{name}.example:8000", "model": "m"}}
        for name in ("a", "b")
    ]
    runs.create(make_benchmark_run("par", targets=endpoints, parallel=True))
    poll_until(lambda: len(runs.jobs("par")) == 2, timeout=TIMEOUT, what="both Jobs created")
    assert runs.condition("par", "Running")["status"] == "True"
    producer.hold.clear()
    runs.wait_condition("par", "Succeeded", reason="Completed")
    assert runs.get("par")["status"]["speedups"] == []  # no baseline, nothing to compare


def test_deleting_a_run_mid_flight_removes_its_baseline_and_jobs(
    runs: Runs, models: Models, worker: SimulatedWorker
) -> None:
    producer = FixedBenchmarks({"baseline": (2.0, 1.0)})
    producer.hold.add("baseline")
    worker.producer = producer
    models.create(make_quantized_model("mid"))
    runs.create(
        make_benchmark_run(
            "mid",
            targets=[{"name": "fp8", "modelRef": {"name": "mid"}}],
            baseline={"modelRef": {"name": "mid"}},
        )
    )
    poll_until(
        lambda: runs.jobs("mid") and runs.deployments("mid"),
        timeout=TIMEOUT,
        what="the baseline Deployment and its Job",
    )
    runs.delete("mid")
    poll_until(
        lambda: not (runs.jobs("mid") or runs.deployments("mid")),
        timeout=TIMEOUT,
        what="the baseline Deployment and Job garbage-collected",
    )


def test_a_target_that_never_becomes_ready_fails_after_the_timeout(
    runs: Runs, models: Models, worker: SimulatedWorker
) -> None:
    worker.producer = SimulatedResults(recovery_by_model={"low": 90.0})  # below the gate
    models.create(make_quantized_model("low"))
    runs.create(
        make_benchmark_run(
            "late", targets=[{"name": "low", "modelRef": {"name": "low"}}], readyTimeoutSeconds=5
        )
    )
    failed = runs.wait_condition("late", "Failed", reason="TargetNotReady")
    assert "low: not ready after 5s: QuantizedModel low is not Ready" in failed["message"]
    assert runs.jobs("late") == []


# --- a real run of the benchmark program ---------------------------------------------------------


def test_status_carries_numbers_measured_by_a_real_run_of_the_benchmark_program(
    runs: Runs, worker: SimulatedWorker, mock_server: str, tmp_path: Path
) -> None:
    """The Job pod's termination message is the result of a REAL run of the benchmark program
    (GuideLLM 0.8.1) against GuideLLM's MOCK server on 127.0.0.1 — a real HTTP server, but a
    mock one, not vLLM serving a model. The numbers in status were measured, so they are not
    marked simulated."""
    # The plain endpoint's tokenizer is its model name; no hub here, so a local one stands in.
    tokenizer = str(build_tokenizer(tmp_path / "tokenizer"))
    program = ProgramRunner(
        lambda target: target,
        tmp_path,
        tokenizers={MOCK_MODEL: tokenizer},
        env=FEW_GUIDELLM_WORKERS,
    )
    worker.producer = program
    runs.create(
        make_benchmark_run(
            "real",
            targets=[{"name": "mock", "endpoint": {"url": mock_server, "model": MOCK_MODEL}}],
            workloads=[{"name": "text", "promptTokens": 16, "outputTokens": 8}],
            scenarios=[{"kind": "latency"}],
            limits={"maxRequests": 5},
        )
    )
    succeeded = runs.wait_condition("real", "Succeeded", reason="Completed")
    [text] = program.results.values()
    measured = parse_result(text)
    assert isinstance(measured, BenchmarkResult)
    assert measured.simulated is False
    assert measured.library_versions == {"guidellm": "0.8.1"}
    [result] = runs.get("real")["status"]["results"]
    run = measured.runs[0]
    assert result["simulated"] is False
    assert "SIMULATED" not in succeeded["message"]
    assert (result["target"], result["workload"], result["scenario"]) == ("mock", "text", "latency")
    assert result["requestsPerSecond"] == run.requests_per_second > 0
    assert result["ttftMs"]["p50"] == run.ttft_ms.p50 >= MOCK_TTFT_MS  # the mock's fixed TTFT
    assert result["latencySeconds"]["p50"] == run.latency_s.p50
    assert result["errorRate"] == 0

    # The report renders the measured numbers from the stored run, unlabelled as simulated.
    stored = tmp_path / "real.json"
    stored.write_text(json.dumps(runs.get("real")))
    out = tmp_path / "report"
    assert cli_main.main(["report", "real", "--from", str(stored), "--out", str(out)]) == 0
    assert (out / "real.png").stat().st_size > 0
    assert "SIMULATED" not in (out / "real.html").read_text()


def test_a_cpu_models_bf16_baseline_runs_on_its_cpu_level(
    runs: Runs,
    models: Models,
    worker: SimulatedWorker,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    """A model served on CPUs (simulated AMX nodes): its baseline goes to the same CPU level,
    with the cores and memory BF16 needs there, not to a GPU."""
    producer = FixedBenchmarks({"baseline": (2.0, 1.0), "int8": (1.0, 2.0)})
    producer.hold.add("baseline")  # the baseline stays up until its placement is checked
    worker.producer = producer
    models.create(make_quantized_model("small", "W8A8", placement={"hardware": "cpu"}))
    runs.create(
        make_benchmark_run(
            "oncpu",
            targets=[{"name": "int8", "modelRef": {"name": "small"}}],
            baseline={"modelRef": {"name": "small"}},
        )
    )

    deployment = poll_until(
        lambda: next(iter(runs.deployments("oncpu")), None), timeout=TIMEOUT, what="baseline"
    )
    resources = deployment.spec.template.spec.containers[0].resources
    assert "nvidia.com/gpu" not in resources.requests
    assert resources.requests == resources.limits
    baseline_pods = f"{LABEL_BENCHMARK_RUN}=oncpu,{LABEL_COMPONENT}={Component.BASELINE}"
    placed = node_of(api_client, namespace, baseline_pods)
    assert placed["labels"]["quantfleet.io/node-pool"] == "xeon-amx"  # the model's CPU level
    assert placed["gpus"] is None
    producer.hold.clear()
    runs.wait_condition("oncpu", "Succeeded", reason="Completed")
    baseline = [j for j in runs.jobs("oncpu") if j.metadata.labels[LABEL_TARGET] == "baseline"]
    assert baseline
    assert {s["value"] for s in runs.get("oncpu")["status"]["speedups"]} == {2.0}
