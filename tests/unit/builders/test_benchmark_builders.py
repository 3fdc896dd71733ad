"""BenchmarkRun builders: the benchmark Job's arguments, the BF16 baseline's pod, sized as its
model was planned, and the status derived from Job observations (results, speed-ups,
conditions, report)."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from factories import (
    ARTIFACT_ID,
    DEV_INVENTORY,
    make_owner,
    make_plan,
    make_run_owner,
    make_run_spec,
    make_spec,
)
from quantfleet.api.benchmarkrun import BenchmarkRunSpec, Result
from quantfleet.api.common import Percentiles
from quantfleet.api.enums import GpuFamily
from quantfleet.api.results import BenchmarkMeasurement as Run
from quantfleet.api.results import BenchmarkResult, FailureResult
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.benchmark import (
    REPORT_DIR,
    SystemUnderTest,
    base_url,
    benchmark_args,
    build_baseline_deployment,
    build_benchmark_job,
    too_many_runs,
)
from quantfleet.builders.benchmark_status import (
    MAX_REPORT_BYTES,
    TargetProgress,
    build_benchmark_status,
    build_report_config_map,
    is_finished,
    speedup,
    speedups,
)
from quantfleet.builders.serving import build_deployment
from quantfleet.builders.status import JobObservation, Observed, build_status
from quantfleet.planning.baseline import BaselinePlan, plan_baseline
from quantfleet.planning.capacity import source_parameters
from quantfleet.planning.planner import Plan, PlanRequest, plan_placement
from quantfleet.testbed.worker import SimulatedResults
from quantfleet_jobs import quantize as quantize_program

Json = dict[str, Any]
SETTINGS = OperatorSettings(jobs_image="registry.example/quantfleet-jobs:1")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FLEET = DEV_INVENTORY


def make_endpoint(name: str = "fp8") -> SystemUnderTest:
    return SystemUnderTest(
        name, "http://qwen-fp8-vllm.ml.svc:8000", "qwen-fp8", "hf://Qwen/Qwen2.5-VL-7B"
    )


def make_result(
    target: str, scenario: str, latency_p50: float = 2.0, rps: float = 1.0, workload: str = "doc"
) -> Result:
    p = Percentiles(p50=latency_p50, p90=latency_p50 * 1.2, p99=latency_p50 * 1.5)
    return Result(
        target=target,
        workload=workload,
        scenario=scenario,
        requests_per_second=rps,
        output_tokens_per_second=rps * 128,
        ttft_ms=p,
        itl_ms=p,
        latency_seconds=p,
        error_rate=0.0,
    )


def make_program_result(*scenarios: str, rps: float = 1.0, latency: float = 2.0,
                        errored: int = 0, simulated: bool = False) -> BenchmarkResult:  # fmt: skip
    p = Percentiles(p50=latency, p90=latency, p99=latency)
    runs = [
        Run(workload=w, scenario=s, requests_per_second=rps, output_tokens_per_second=rps * 128,
            ttft_ms=p, itl_ms=p, latency_s=p, successful=100 - errored, errored=errored,
            error_rate=errored / 100)
        for w in ("doc", "chat") for s in scenarios
    ]  # fmt: skip
    return BenchmarkResult(
        target="http://x:8000", model="m", runs=runs, max_error_rate=0.01, report="/tmp/reports",
        duration_seconds=1.0, library_versions={"guidellm": "0.8.1"}, simulated=simulated,
    )  # fmt: skip


def done(name: str, result: BenchmarkResult | FailureResult, phase: str = "Succeeded") -> Any:
    return TargetProgress(name, job=JobObservation(f"cmp-bench-{name}", phase, result))  # type: ignore[arg-type]


# --- the benchmark Job ---------------------------------------------------------------------------


def test_job_args_carry_every_workload_shape_and_scenario_by_the_spec_names() -> None:
    args = benchmark_args(make_run_spec(limits={"maxRequests": 50}), make_endpoint(), REPORT_DIR)
    assert args == [
        "--target=http://qwen-fp8-vllm.ml.svc:8000",
        "--model=qwen-fp8",
        "--tokenizer=hf://Qwen/Qwen2.5-VL-7B",
        "--workloads=doc:1680x2240:64:128,chat:0x0:256:64",
        "--scenarios=latency,throughput",
        "--max-error-rate=0.01",
        "--output=/tmp/reports",
        "--max-requests=50",
    ]


def test_rate_scenarios_merge_their_rates_into_one_list() -> None:
    spec = make_run_spec(
        workloads=[{"name": "doc", "preset": "docvqa"}],
        scenarios=[{"kind": "rate", "rates": [1, 2]}, {"kind": "rate", "rates": [2, 4.5]}],
        limits={"maxSeconds": 30},
    )
    args = benchmark_args(spec, make_endpoint(), REPORT_DIR)
    assert "--scenarios=rate" in args
    assert "--rates=1,2,4.5" in args
    assert "--max-seconds=30" in args


@pytest.mark.parametrize(
    ("workloads", "scenarios", "want_refused"),
    [
        pytest.param(2, [{"kind": "latency"}, {"kind": "throughput"}], False, id="four-runs"),
        pytest.param(1, [{"kind": "sweep"}, {"kind": "latency"}], False, id="sweep-and-one"),
        pytest.param(2, [{"kind": "sweep"}], True, id="two-sweeps-exceed-twelve"),
        pytest.param(4, [{"kind": "rate", "rates": [1, 2, 3, 4]}], True, id="sixteen-rates"),
    ],
)
def test_more_benchmarks_than_one_result_holds_are_refused(
    workloads: int, scenarios: list[Json], want_refused: bool
) -> None:
    spec = make_run_spec(
        workloads=[{"name": f"w{i}", "preset": "captioning"} for i in range(workloads)],
        scenarios=scenarios,
    )
    refused = too_many_runs(spec)
    assert (refused is not None) is want_refused
    if refused:
        assert "at most 12" in refused


def test_benchmark_job_is_restricted_owned_cpu_only_and_labelled_for_the_worker() -> None:
    job = build_benchmark_job(make_run_owner(), make_run_spec(), make_endpoint(), SETTINGS)
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "BenchmarkRun"
    assert job["metadata"]["name"].startswith("cmp-bench-")
    assert len(job["metadata"]["name"]) <= 63
    assert pod["metadata"]["labels"]["quantfleet.io/component"] == "benchmark"
    assert pod["metadata"]["labels"]["quantfleet.io/benchmark-run"] == "cmp"
    assert pod["metadata"]["labels"]["quantfleet.io/benchmark-target"] == "fp8"
    assert "quantfleet.io/model" not in pod["metadata"]["labels"]
    assert container["command"] == ["python", "-m", "quantfleet_jobs.benchmark"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    assert job["spec"]["activeDeadlineSeconds"] > 0


def test_spec_resources_replace_the_benchmark_pods_default_and_make_a_new_job() -> None:
    default = build_benchmark_job(make_run_owner(), make_run_spec(), make_endpoint(), SETTINGS)
    small = make_run_spec(resources={"requests": {"memory": "1Gi"}})
    job = build_benchmark_job(make_run_owner(), small, make_endpoint(), SETTINGS)
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert default["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "2",
        "memory": "4Gi",
    }
    assert resources == {"requests": {"memory": "1Gi"}, "limits": {}}
    assert job["metadata"]["name"] != default["metadata"]["name"]


@pytest.mark.parametrize(
    ("report_uri", "want_output", "want_mount"),
    [
        pytest.param(None, f"--output={REPORT_DIR}", None, id="scratch-without-reportUri"),
        pytest.param(
            "pvc://reports/bench",
            "--output=pvc://reports/bench/cmp/fp8",
            "/mnt/quantfleet/reports",
            id="a-pvc-is-mounted-writable",
        ),
        pytest.param(
            "s3://reports/bench/",
            "--output=s3://reports/bench/cmp/fp8",
            None,
            id="s3-needs-no-volume",
        ),
    ],
)
def test_full_reports_go_under_report_uri_per_run_and_target(
    report_uri: str | None, want_output: str, want_mount: str | None
) -> None:
    spec = make_run_spec(reportUri=report_uri) if report_uri else make_run_spec()
    container = build_benchmark_job(make_run_owner(), spec, make_endpoint(), SETTINGS)["spec"][
        "template"
    ]["spec"]["containers"][0]
    assert want_output in container["args"]
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly", False)]
    if want_mount:
        assert want_mount in writable


def test_changed_inputs_make_a_new_job_name() -> None:
    owner, endpoint = make_run_owner(), make_endpoint()
    before = build_benchmark_job(owner, make_run_spec(), endpoint, SETTINGS)
    after = build_benchmark_job(owner, make_run_spec(maxErrorRate=0.1), endpoint, SETTINGS)
    assert before["metadata"]["name"] != after["metadata"]["name"]


@pytest.mark.parametrize(
    ("url", "want"),
    [
        pytest.param("http://m-vllm.ns.svc:8000/v1", "http://m-vllm.ns.svc:8000", id="v1-suffix"),
        pytest.param("http://10.0.0.1:8000/", "http://10.0.0.1:8000", id="trailing-slash"),
    ],
)
def test_base_url_drops_the_v1_suffix_the_program_adds_itself(url: str, want: str) -> None:
    assert base_url(url) == want


# --- the BF16 baseline ---------------------------------------------------------------------------


def test_baseline_deployment_serves_the_source_on_the_family_with_its_gpus() -> None:
    plan = plan_baseline(72 * 10**9, GpuFamily.HOPPER, FLEET)
    assert isinstance(plan, BaselinePlan)
    model = make_spec(source={"uri": "pvc://models/qwen-72b", "parametersBillions": 72})
    deployment = build_baseline_deployment(make_run_owner(), model, "qwen-bf16", plan, SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expressions = terms["nodeSelectorTerms"][0]["matchExpressions"]
    assert {"key": "nvidia.com/gpu.compute.major", "operator": "In", "values": ["9"]} in expressions
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert container["args"][0] == "/mnt/quantfleet/models/qwen-72b"
    assert "--tensor-parallel-size=2" in container["args"]
    assert "--dtype=bfloat16" in container["args"]
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "BenchmarkRun"
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]  # TP 2: NCCL


def test_the_baseline_pod_is_the_model_pod_serving_the_source() -> None:
    # Issue 10 §5: the baseline's pod was typed out a second time and had lost the liveness
    # probe; both come from serving.build_vllm_pod_template now.
    spec = make_spec(source={"uri": "hf://Qwen/Qwen2.5-VL-7B-Instruct", "parametersBillions": 8.3,
                             "tokenSecretRef": {"name": "hf", "key": "token"}})  # fmt: skip
    plan = plan_baseline(source_parameters(8.3), GpuFamily.HOPPER, FLEET)
    assert isinstance(plan, BaselinePlan)
    baseline = build_baseline_deployment(make_run_owner(), spec, "qwen-bf16", plan, SETTINGS)
    model = build_deployment(
        make_owner(), spec, spec.output.artifact_uri(ARTIFACT_ID), make_plan(spec), SETTINGS
    )
    baseline_pod, model_pod = (d["spec"]["template"]["spec"] for d in (baseline, model))
    baseline_vllm, model_vllm = baseline_pod["containers"][0], model_pod["containers"][0]
    assert baseline_vllm["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    for key in ("image", "command", "ports", "securityContext", "startupProbe", "readinessProbe",
                "livenessProbe"):  # fmt: skip
        assert baseline_vllm[key] == model_vllm[key], key
    for key in ("securityContext", "automountServiceAccountToken"):
        assert baseline_pod[key] == model_pod[key], key
    assert baseline_vllm["args"][:4] == [
        "Qwen/Qwen2.5-VL-7B-Instruct", "--served-model-name=qwen-bf16", "--port=8000",
        "--dtype=bfloat16",
    ]  # fmt: skip
    token = {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    assert token in baseline_vllm["env"]
    assert token not in model_vllm["env"]  # the checkpoint is on pvc:// or s3://, not the hub


def test_the_baseline_is_sized_with_the_count_the_model_was_planned_with() -> None:
    # Issue 10 §3: with no parametersBillions the model was planned at 8.0B from the source's
    # 16 GB, while the baseline inverted the FP8 checkpoint's size and got 7.92B. Now the count
    # is derived once (capacity.source_parameters), kept in status.plan, and read from there.
    spec = make_spec(source={"uri": "hf://Qwen/Qwen2.5-VL-7B-Instruct"})
    args = quantize_program.build_parser({}).parse_args(
        ["--source=hf://Qwen/Qwen2.5-VL-7B-Instruct", "--output=pvc://m/q", "--scheme=FP8_DYNAMIC"]
    )
    produced = SimulatedResults().quantize(args)
    parameters = source_parameters(spec.source.parameters_billions, produced.size_before_bytes)
    plan = plan_placement(PlanRequest(parameters, scheme=spec.quantization.scheme), FLEET)
    assert isinstance(plan, Plan)
    quantize = JobObservation("qwen-quantize-1", "Succeeded", produced)
    status = build_status(spec, Observed(1, plan, "a1", quantize=quantize), [], NOW)
    assert status.plan is not None
    assert status.plan.parameters == 8 * 10**9
    assert status.plan.gpu_family is not None
    baseline = plan_baseline(status.plan.parameters, status.plan.gpu_family, FLEET)
    assert isinstance(baseline, BaselinePlan)
    assert baseline.rationale.startswith("BF16 8B needs")


# --- speed-ups and status ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "baseline", "target", "want_metric", "want_value"),
    [
        pytest.param("latency", (2.0, 1.0), (1.6, 1.2), "latency", 1.25, id="latency-p50-ratio"),
        pytest.param("throughput", (2.0, 1.0), (2.5, 1.5), "throughput", 1.5, id="rps-ratio"),
        pytest.param("rate@4", (3.0, 4.0), (1.5, 4.0), "latency", 2.0, id="fixed-rate-latency"),
        pytest.param("sweep:throughput", (2, 2.0), (2, 3.0), "throughput", 1.5, id="sweep-top"),
        pytest.param("latency", (2.0, 1.0), (4.0, 1.0), "latency", 0.5, id="a-slowdown-is-kept"),
    ],
)
def test_speedup_is_latency_ratio_for_latency_and_throughput_ratio_for_throughput(
    scenario: str,
    baseline: tuple[float, float],
    target: tuple[float, float],
    want_metric: str,
    want_value: float,
) -> None:
    found = speedup(
        make_result("baseline", scenario, *baseline), make_result("fp8", scenario, *target)
    )
    assert found is not None
    assert (found.metric, found.value) == (want_metric, want_value)


def test_no_speedup_without_a_baseline_result_or_with_a_zero() -> None:
    results = [
        make_result("baseline", "latency", 2.0),
        make_result("fp8", "latency", 0.0),
        make_result("fp8", "throughput", 1.0),  # the baseline has no throughput result
    ]
    assert speedups(results) == []


def test_finished_jobs_fill_results_speedups_and_succeed() -> None:
    spec = make_run_spec()
    progress = [
        done("baseline", make_program_result("latency", "throughput", rps=1.0, latency=2.0)),
        done("fp8", make_program_result("latency", "throughput", rps=1.5, latency=1.6,
                                        simulated=True)),
    ]  # fmt: skip
    status = build_benchmark_status(spec, progress, 1, [], NOW)
    conditions = {c.type: c for c in status.conditions}
    assert conditions["Succeeded"].status == "True"
    assert conditions["Running"].status == "False"
    assert conditions["Failed"].status == "False"
    assert "SIMULATED" in conditions["Succeeded"].message
    assert len(status.results) == 8
    assert {r.simulated for r in status.results if r.target == "fp8"} == {True}
    assert {r.simulated for r in status.results if r.target == "baseline"} == {False}
    assert sorted((s.workload, s.scenario, s.metric, s.value) for s in status.speedups) == [
        ("chat", "latency", "latency", 1.25),
        ("chat", "throughput", "throughput", 1.5),
        ("doc", "latency", "latency", 1.25),
        ("doc", "throughput", "throughput", 1.5),
    ]
    assert status.best_speedup == 1.5
    assert status.workloads == "doc,chat"
    assert status.jobs == ["cmp-bench-baseline", "cmp-bench-fp8"]
    assert is_finished(status, 1)
    assert not is_finished(status, 2)


@pytest.mark.parametrize(
    ("progress", "want_reason", "want_in_message"),
    [
        pytest.param(
            [done("baseline", make_program_result("latency", errored=40))],
            "ErrorRateExceeded",
            "error rate 0.40 is over 0.01",
            id="success-claimed-with-errors",
        ),
        pytest.param(
            [
                done(
                    "baseline",
                    FailureResult(
                        program="benchmark",
                        reason="doc/latency: error rate 0.50 is over 0.01 (3 of 6 requests failed)",
                    ),
                    phase="Failed",
                )
            ],
            "ErrorRateExceeded",
            "3 of 6 requests failed",
            id="program-refused-the-error-rate",
        ),
        pytest.param(
            [
                done(
                    "baseline",
                    FailureResult(program="benchmark", reason="endpoint unreachable"),
                    phase="Failed",
                )
            ],
            "BenchmarkFailed",
            "endpoint unreachable",
            id="program-failed",
        ),
        pytest.param(
            [TargetProgress("fp8", failure=("TargetNotReady", "not ready after 60s: X"))],  # type: ignore[arg-type]
            "TargetNotReady",
            "fp8: not ready after 60s",
            id="target-never-ready",
        ),
    ],
)
def test_failures_fail_the_run_with_the_reason(
    progress: list[TargetProgress], want_reason: str, want_in_message: str
) -> None:
    status = build_benchmark_status(make_run_spec(), progress, 1, [], NOW)
    failed = next(c for c in status.conditions if c.type == "Failed")
    assert failed.status == "True"
    assert failed.reason == want_reason
    assert want_in_message in failed.message
    assert next(c for c in status.conditions if c.type == "Running").status == "False"


def test_in_progress_says_who_is_running_and_who_waits() -> None:
    progress = [
        TargetProgress("baseline", job=JobObservation("cmp-bench-b", "Running")),
        TargetProgress("fp8", waiting="waiting for the targets before it"),
    ]
    status = build_benchmark_status(make_run_spec(), progress, 1, [], NOW)
    running = next(c for c in status.conditions if c.type == "Running")
    assert (running.status, running.reason) == ("True", "Benchmarking")
    assert "0/2 targets done; baseline: Job cmp-bench-b is running" in running.message
    assert status.results == []
    assert status.best_speedup is None


def test_report_keeps_full_results_and_says_where_guidellm_reports_went() -> None:
    result = make_program_result("latency")
    status = build_benchmark_status(make_run_spec(), [done("baseline", result)], 1, [], NOW)
    config_map = build_report_config_map(make_run_owner(), status, {"baseline": result})
    data = config_map["data"]
    assert config_map["metadata"]["ownerReferences"][0]["kind"] == "BenchmarkRun"
    assert json.loads(data["baseline.json"])["runs"][0]["successful"] == 100
    assert json.loads(data["summary.json"])["simulated"] is False
    assert "/tmp/reports" in json.loads(data["reports.json"])["baseline"]


def test_report_over_the_bound_keeps_the_summary_and_names_the_locations() -> None:
    result = make_program_result("latency")
    big = result.model_copy(update={"library_versions": {"pad": "x" * MAX_REPORT_BYTES}})
    status = build_benchmark_status(make_run_spec(), [done("baseline", big)], 1, [], NOW)
    data = build_report_config_map(make_run_owner(), status, {"baseline": big})["data"]
    assert "baseline.json" not in data
    assert "summary.json" in data
    assert "reports.json" in data
    assert f"exceed {MAX_REPORT_BYTES} bytes" in data["truncated.txt"]


def test_the_sample_run_fits_one_job_per_target() -> None:
    sample = Path(__file__).parents[3] / "manifests" / "samples" / "benchmarkrun-docvqa.yaml"
    spec = BenchmarkRunSpec.model_validate(yaml.safe_load(sample.read_text())["spec"])
    assert too_many_runs(spec) is None
    args = benchmark_args(spec, make_endpoint("baseline"), REPORT_DIR)
    assert "--workloads=docvqa:1680x2240:64:128" in args
    assert "--max-seconds=600" in args


def test_benchmark_job_goes_to_the_runs_kueue_queue_over_the_operators() -> None:
    settings = SETTINGS.model_copy(update={"kueue_queue_name": "shared"})
    default = build_benchmark_job(make_run_owner(), make_run_spec(), make_endpoint(), settings)
    own = build_benchmark_job(
        make_run_owner(), make_run_spec(queueName="bench"), make_endpoint(), settings
    )
    assert default["spec"]["suspend"] is True
    assert default["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "shared"
    assert own["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "bench"
    plain = build_benchmark_job(make_run_owner(), make_run_spec(), make_endpoint(), SETTINGS)
    assert "suspend" not in plain["spec"]
