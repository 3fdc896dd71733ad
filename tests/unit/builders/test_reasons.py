"""Every condition reason the docs and the Argo CD health checks name is one the status builders
emit, with the status the checks expect; the health checks themselves run here in Lua (lupa),
against the statuses the builders produce."""

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

from factories import make_plan, make_spec
from quantfleet.api.benchmarkrun import BenchmarkRunSpec
from quantfleet.api.conditions import BenchmarkReason, Reason
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.quantizedmodel import PromotedArtifact, QuantizedModelSpec, QuantizedModelStatus
from quantfleet.api.results import (
    BenchmarkResult,
    EvaluateResult,
    FailureResult,
    QuantizeResult,
    TaskScore,
)
from quantfleet.builders.benchmark_status import (
    TargetProgress,
    build_benchmark_status,
    report_location,
)
from quantfleet.builders.promotion import decide_promotion, promoted_artifact
from quantfleet.builders.status import (
    Blocked,
    DeploymentObservation,
    JobObservation,
    Observed,
    build_status,
)
from quantfleet.planning.planner import Unplaceable

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def quantized(scheme: Scheme = Scheme.FP8_DYNAMIC) -> QuantizeResult:
    return QuantizeResult(
        output="pvc://models/q",
        model_kind=ModelKind.VISION_LANGUAGE,
        requested_scheme=Scheme.FP8_DYNAMIC,
        scheme=scheme,
        format="float-quantized",
        recipe_overridden=scheme is not Scheme.FP8_DYNAMIC,
        ignored_modules=2,
        calibration_samples=0,
        size_before_bytes=16_000,
        size_after_bytes=8_000,
        compression_ratio=2.0,
        duration_seconds=1,
        device="cpu",
        library_versions={},
    )


def evaluated(recovery: float) -> EvaluateResult:
    return EvaluateResult(
        engine="hf",
        baseline="hf://Qwen/Qwen2.5-VL-7B-Instruct",
        quantized="pvc://models/q",
        limit=None,
        baseline_cached=False,
        tasks=[
            TaskScore(task="chartqa", metric="acc", baseline=0.8, quantized=0.8, recovery=recovery)
        ],
        baseline_average=0.8,
        quantized_average=0.8 * recovery / 100,
        recovery=recovery,
        duration_seconds=1,
        library_versions={},
    )


# An artifact promoted before the current spec's a1, and serving: what a pass keeps serving
# whatever becomes of a1 (issue 32).
EARLIER = PromotedArtifact(
    id="a0", uri="pvc://models/q/a0", scheme=Scheme.FP8_DYNAMIC, parameters=7_600_000_000
)


def served(spec: QuantizedModelSpec, observed: Observed, earlier: bool) -> QuantizedModelStatus:
    """The status once the handler's serve step ran: the current artifact serves once promoted,
    else the `earlier` one (whose Deployment is ready) if there is one."""
    recorded = EARLIER if earlier else None
    promoted = promoted_artifact(
        spec, observed.artifact_id, observed.plan, observed.promotion, recorded
    )
    deployment = observed.deployment
    if promoted is recorded and recorded is not None and spec.serving.enabled and not deployment:
        deployment = DeploymentObservation("d", spec.serving.replicas, spec.serving.replicas)
    return build_status(spec, replace(observed, promoted=promoted, deployment=deployment), [], NOW)


def model_status(
    stage: str,
    spec: QuantizedModelSpec | None = None,
    recovery: float = 99.6,
    earlier: bool = False,
) -> QuantizedModelStatus:
    """The status after the pipeline reached `stage` (each stage's observations build on the
    one before, as a pass sees them), with an `earlier` artifact promoted and serving or none."""
    spec = spec or make_spec()

    def finish(observed: Observed) -> QuantizedModelStatus:
        return served(spec, observed, earlier)

    unplaceable = {
        "no-gpu-nodes": Reason.NO_GPU_NODES,
        "no-compatible-gpu": Reason.NO_COMPATIBLE_GPU,
        "insufficient-memory": Reason.INSUFFICIENT_GPU_MEMORY,
        "insufficient-free": Reason.INSUFFICIENT_FREE_GPUS,
    }
    if stage in unplaceable:
        plan = Unplaceable(
            Scheme.FP8_DYNAMIC, spec.quantization.resolved_objective, unplaceable[stage], "x"
        )
        return finish(Observed(1, plan, ""))
    if stage == "size-unknown":
        return finish(Observed(1, None, "a1"))
    blocked = {
        "output-in-use": Blocked(Reason.OUTPUT_IN_USE, "ml/older writes there"),
        "reference-not-found": Blocked(Reason.REFERENCE_NOT_FOUND, "ConfigMap ml/r not found"),
    }
    if stage in blocked:
        observed = Observed(1, make_plan(spec), "a1", quantize_blocked=blocked[stage])
        return finish(observed)
    jobs = {
        "quantize-pending": JobObservation("q", "Pending"),
        "quantize-queued": JobObservation("q", "Queued", detail="queued in Kueue LocalQueue gpus"),
        "quantize-running": JobObservation("q", "Running"),
        "quantize-image-missing": JobObservation(
            "q", "Pending", pod_stuck="pod q-1: ErrImageNeverPull: image is not present"
        ),
        "quantize-failed": JobObservation(
            "q", "Failed", FailureResult(program="quantize", reason="x")
        ),
        "quantize-no-result": JobObservation("q", "Succeeded"),
        "scheme-mismatch": JobObservation("q", "Succeeded", quantized(Scheme.W8A8)),
    }
    plan = make_plan(spec)
    if stage in jobs:
        return finish(Observed(1, plan, "a1", quantize=jobs[stage]))
    done = JobObservation("q", "Succeeded", quantized())
    if stage == "evaluate-running":
        observed = Observed(1, plan, "a1", quantize=done, evaluate=JobObservation("e", "Running"))
        return finish(observed)
    if stage == "evaluate-unplaceable":
        observed = Observed(1, plan, "a1", quantize=done, evaluate_unplaceable="BF16 needs 4")
        return finish(observed)
    scores = evaluated(recovery)
    promotion = decide_promotion(spec, plan.scheme, scores, "a1")
    evaluate = JobObservation("e", "Succeeded", scores)
    deployment = {
        "progressing": DeploymentObservation("d", 1, 0),
        "ready": DeploymentObservation("d", 1, 1),
        "serving-failed": DeploymentObservation("d", 1, 0, failure="ValueError: no kernel"),
        "scaled-to-zero": DeploymentObservation("d", 0, 0),
    }.get(stage)
    observed = Observed(
        1, plan, "a1", quantize=done, evaluate=evaluate, promotion=promotion, deployment=deployment
    )
    return finish(observed)


MANUAL = {"promotion": "Manual"}
# (id, status, want: type -> (status, reason), want Argo CD health)
MODEL_CASES: list[tuple[str, QuantizedModelStatus, dict[str, tuple[str, str]], str]] = [
    ("no-gpu-nodes", model_status("no-gpu-nodes"), {"Planned": ("False", "NoGpuNodes")},
     "Degraded"),
    ("no-compatible-gpu", model_status("no-compatible-gpu"),
     {"Planned": ("False", "NoCompatibleGpu")}, "Degraded"),
    ("insufficient-gpu-memory", model_status("insufficient-memory"),
     {"Planned": ("False", "InsufficientGpuMemory")}, "Degraded"),
    # Fits the fleet, not its free GPUs now: it waits, planned again as GPUs free up.
    ("insufficient-free-gpus", model_status("insufficient-free"),
     {"Planned": ("False", "InsufficientFreeGpus")}, "Progressing"),
    ("size-unknown-until-quantized", model_status("size-unknown"),
     {"Planned": ("Unknown", "ParameterCountUnknown")}, "Progressing"),
    ("quantize-pending", model_status("quantize-pending"),
     {"Planned": ("True", "Placed"), "Quantized": ("Unknown", "Running"),
      "Evaluated": ("Unknown", "Waiting"), "Ready": ("False", "Waiting")}, "Progressing"),
    ("quantize-running", model_status("quantize-running"),
     {"Quantized": ("Unknown", "Running"), "Promoted": ("Unknown", "Waiting")}, "Progressing"),
    ("quantize-failed", model_status("quantize-failed"), {"Quantized": ("False", "Failed")},
     "Degraded"),
    ("output-of-an-earlier-model", model_status("output-in-use"),
     {"Quantized": ("False", "OutputInUse"), "Evaluated": ("Unknown", "Waiting")}, "Degraded"),
    ("recipe-configmap-missing", model_status("reference-not-found"),
     {"Quantized": ("False", "ReferenceNotFound")}, "Degraded"),
    ("quantize-pod-stuck-on-a-missing-image", model_status("quantize-image-missing"),
     {"Quantized": ("False", "PodFailing")}, "Degraded"),
    ("quantize-left-no-result", model_status("quantize-no-result"),
     {"Quantized": ("False", "NoReadableResult")}, "Degraded"),
    ("recipe-produced-another-scheme", model_status("scheme-mismatch"),
     {"Quantized": ("False", "SchemeMismatch")}, "Degraded"),
    ("bf16-evaluation-fits-no-node", model_status("evaluate-unplaceable"),
     {"Evaluated": ("False", "InsufficientGpuMemory"), "Ready": ("False", "Waiting")},
     "Degraded"),
    ("held-by-kueue", model_status("quantize-queued"),
     {"Quantized": ("Unknown", "Queued"), "Ready": ("False", "Waiting")}, "Progressing"),
    ("evaluating", model_status("evaluate-running"),
     {"Quantized": ("True", "Succeeded"), "Evaluated": ("Unknown", "Running")}, "Progressing"),
    ("below-gate", model_status("scored", recovery=90.0),
     {"Evaluated": ("True", "Succeeded"), "Promoted": ("False", "BelowGate"),
      "Ready": ("False", "NotPromoted")}, "Degraded"),
    ("awaiting-approval", model_status("scored", make_spec(serving=MANUAL)),
     {"Promoted": ("False", "AwaitingApproval"), "Ready": ("False", "NotPromoted")}, "Suspended"),
    ("approved-and-progressing",
     model_status("progressing", make_spec(serving={**MANUAL, "approvedArtifact": "a1"})),
     {"Promoted": ("True", "Approved"), "Ready": ("False", "DeploymentProgressing")},
     "Progressing"),
    ("vllm-cannot-load-it", model_status("serving-failed"),
     {"Promoted": ("True", "PassedGate"), "Ready": ("False", "ServingFailed")}, "Degraded"),
    ("passed-gate-and-ready", model_status("ready"),
     {"Promoted": ("True", "PassedGate"), "Ready": ("True", "DeploymentReady")}, "Healthy"),
    ("serving-disabled", model_status("scored", make_spec(serving={"enabled": False})),
     {"Promoted": ("True", "PassedGate"), "Ready": ("False", "ServingDisabled")}, "Healthy"),
    # Asked for, like serving disabled: nothing to wait for or fix (manifests/argocd says why).
    ("scaled-to-zero", model_status("scaled-to-zero", make_spec(serving={"replicas": 0})),
     {"Promoted": ("True", "PassedGate"), "Ready": ("False", "ScaledToZero")}, "Healthy"),
    # Issue 32: an earlier artifact keeps serving whatever becomes of the current spec's; the
    # health is the new revision's, as Argo CD's for a Deployment rolling (Progressing) or a
    # Rollout aborted (Degraded) or paused (Suspended) while its stable pods serve.
    ("newer-revision-quantizing-while-the-promoted-one-serves",
     model_status("quantize-running", earlier=True),
     {"Quantized": ("Unknown", "Running"), "Promoted": ("Unknown", "Waiting"),
      "Ready": ("True", "DeploymentReady")}, "Progressing"),
    ("newer-revision-waiting-for-gpus-while-the-promoted-one-serves",
     model_status("insufficient-free", earlier=True),
     {"Planned": ("False", "InsufficientFreeGpus"), "Ready": ("True", "DeploymentReady")},
     "Progressing"),
    ("newer-revision-failed-while-the-promoted-one-serves",
     model_status("quantize-failed", earlier=True),
     {"Quantized": ("False", "Failed"), "Ready": ("True", "DeploymentReady")}, "Degraded"),
    ("newer-revision-below-gate-while-the-promoted-one-serves",
     model_status("scored", recovery=90.0, earlier=True),
     {"Promoted": ("False", "BelowGate"), "Ready": ("True", "DeploymentReady")}, "Degraded"),
    ("newer-artifact-awaiting-approval-while-the-approved-one-serves",
     model_status("scored", make_spec(serving=MANUAL), earlier=True),
     {"Promoted": ("False", "AwaitingApproval"), "Ready": ("True", "DeploymentReady")},
     "Suspended"),
    ("scaled-to-zero-while-a-newer-revision-quantizes",
     model_status("quantize-running", make_spec(serving={"replicas": 0}), earlier=True),
     {"Promoted": ("Unknown", "Waiting"), "Ready": ("False", "ScaledToZero")}, "Progressing"),
]  # fmt: skip


def run_spec() -> BenchmarkRunSpec:
    return BenchmarkRunSpec.model_validate(
        {
            "targets": [{"name": "fp8", "modelRef": {"name": "qwen-fp8"}}],
            "baseline": {"modelRef": {"name": "qwen-fp8"}},
            "workloads": [{"name": "doc", "preset": "docvqa"}],
            "scenarios": [{"kind": "latency"}],
            "maxErrorRate": 0.05,
        }
    )


def measured(errored: int = 0) -> BenchmarkResult:
    p = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    run = {
        "workload": "doc", "scenario": "latency", "requestsPerSecond": 1.0,
        "outputTokensPerSecond": 128.0, "ttftMs": p, "itlMs": p, "latencyS": p,
        "successful": 10, "errored": errored, "errorRate": errored / (10 + errored),
    }  # fmt: skip
    return BenchmarkResult.model_validate(
        {
            "target": "http://x:8000",
            "model": "m",
            "runs": [run],
            "maxErrorRate": 0.05,
            "report": "/tmp/reports",
            "durationSeconds": 1.0,
            "libraryVersions": {},
        }
    )


def run_status(*progress: TargetProgress) -> dict[str, tuple[str, str]]:
    status = build_benchmark_status(run_spec(), list(progress), 1, [], NOW)
    return {c.type: (c.status, c.reason) for c in status.conditions}


def bench(name: str, phase: str, result: Any = None) -> TargetProgress:
    return TargetProgress(name, job=JobObservation(f"bench-{name}", phase, result))  # type: ignore[arg-type]


ERROR_RATE_FAILURE = FailureResult(program="benchmark", reason="doc/latency: error rate 0.50")
RUN_CASES: list[tuple[str, dict[str, tuple[str, str]], str, str]] = [
    ("waiting-for-targets", run_status(TargetProgress("baseline", waiting="not ready")),
     "WaitingForTargets", "Progressing"),
    ("benchmarking", run_status(bench("baseline", "Running")), "Benchmarking", "Progressing"),
    ("held-by-kueue", run_status(TargetProgress("baseline", job=JobObservation(
        "bench-baseline", "Queued", detail="queued in Kueue LocalQueue gpus"))),
     "Queued", "Progressing"),
    ("completed", run_status(bench("baseline", "Succeeded", measured()),
                             bench("fp8", "Succeeded", measured())), "Completed", "Healthy"),
    ("target-not-ready", run_status(
        TargetProgress("fp8", failure=(BenchmarkReason.TARGET_NOT_READY, "x"))),
     "TargetNotReady", "Degraded"),
    ("baseline-unplaceable", run_status(
        TargetProgress("baseline", failure=(BenchmarkReason.BASELINE_UNPLACEABLE, "x"))),
     "BaselineUnplaceable", "Degraded"),
    ("error-rate-in-a-success", run_status(bench("baseline", "Succeeded", measured(errored=10))),
     "ErrorRateExceeded", "Degraded"),
    ("error-rate-failure", run_status(bench("baseline", "Failed", ERROR_RATE_FAILURE)),
     "ErrorRateExceeded", "Degraded"),
    ("benchmark-failed", run_status(bench("baseline", "Failed")), "BenchmarkFailed", "Degraded"),
    ("no-readable-result", run_status(bench("baseline", "Succeeded")), "NoReadableResult",
     "Degraded"),
    ("too-many-runs", run_status(
        TargetProgress("spec", failure=(BenchmarkReason.INVALID_SPEC, "x"))), "InvalidSpec",
     "Degraded"),
    ("benchmark-image-missing", run_status(TargetProgress("baseline", job=JobObservation(
        "bench-baseline", "Pending", pod_stuck="pod b-1: ErrImageNeverPull: not present"))),
     "PodFailing", "Degraded"),
    # As the handler writes it (reconciler.refusal_reported): the INVALID_SPEC conditions.
    ("api-server-refused-a-pass", run_status(
        TargetProgress("spec", failure=(BenchmarkReason.RECONCILE_FAILED, "422"))),
     "ReconcileFailed", "Degraded"),
]  # fmt: skip


def health_checks() -> dict[str, str]:
    patch = yaml.safe_load((ROOT / "manifests/argocd/argocd-cm-patch.yaml").read_text())
    return {key.rsplit("_", 1)[1]: lua for key, lua in patch["data"].items()}


def argocd_health(kind: str, status: dict[str, Any]) -> str:
    """What Argo CD's health check for `kind` says of an object with this status."""
    runtime = LuaRuntime()
    check = runtime.eval(f"function(obj)\n{health_checks()[kind]}\nend")
    body = {"metadata": {"generation": 1}, "status": status}
    return str(check(runtime.table_from(body, recursive=True))["status"])


def as_json(status: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


@pytest.mark.parametrize(
    ("status", "want", "want_health"),
    [case[1:] for case in MODEL_CASES],
    ids=[case[0] for case in MODEL_CASES],
)
def test_model_status_and_its_argocd_health(
    status: QuantizedModelStatus, want: dict[str, tuple[str, str]], want_health: str
) -> None:
    got = {c.type: (c.status, c.reason) for c in status.conditions}
    assert {t: got[t] for t in want} == want
    assert argocd_health("QuantizedModel", as_json(status)) == want_health


@pytest.mark.parametrize(
    ("conditions", "want_reason", "want_health"),
    [case[1:] for case in RUN_CASES],
    ids=[case[0] for case in RUN_CASES],
)
def test_run_status_and_its_argocd_health(
    conditions: dict[str, tuple[str, str]], want_reason: str, want_health: str
) -> None:
    true = [t for t, (state, _) in conditions.items() if state == "True"]
    assert len(true) == 1, conditions
    assert conditions[true[0]][1] == want_reason
    status = {
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": r} for t, (s, r) in conditions.items()
        ]
    }
    assert argocd_health("BenchmarkRun", status) == want_health


def test_every_reason_the_argocd_check_calls_degraded_is_emitted_false() -> None:
    lua = health_checks()["QuantizedModel"]
    degraded = set(re.findall(r"(\w+) = true", lua.split("local degraded", 1)[1].split("}")[0]))
    emitted_false = {
        reason
        for _, _, want, _ in MODEL_CASES
        for state, reason in want.values()
        if state == "False"
    }
    # Written by the handler, not the status builder (tests/unit/handlers): InvalidSpec when the
    # models refuse a spec, ReconcileFailed when the API server refuses a pass for good.
    assert degraded - emitted_false == {Reason.INVALID_SPEC.value, Reason.RECONCILE_FAILED.value}


def test_every_reason_the_docs_name_is_emitted() -> None:
    docs = (ROOT / "docs/benchmarkrun.md").read_text()
    listed = re.search(r"\(reasons: (.*?)\)", docs, re.S)
    assert listed is not None
    named = set(re.findall(r"`(\w+)`", listed.group(1)))
    assert named == {reason.value for reason in BenchmarkReason}
    assert named == {reason for _, _, reason, _ in RUN_CASES}
    operations = (ROOT / "docs/operations.md").read_text()
    row = next(line for line in operations.splitlines() if line.startswith("| QuantizedModel |"))
    model_reasons = {r for _, _, want, _ in MODEL_CASES for _, r in want.values()}
    assert set(re.findall(r"`(\w+)`", row)) - {"True", "False"} - model_reasons <= {
        Reason.INVALID_SPEC.value,
        Reason.RECONCILE_FAILED.value,
    }


@pytest.mark.parametrize(
    ("report", "want_kept"),
    [
        pytest.param("/tmp/reports", False, id="pod-scratch"),
        pytest.param("/mnt/quantfleet/reports/cmp/fp8", True, id="pvc-reportUri"),
        pytest.param("s3://reports/cmp/fp8", True, id="s3-reportUri"),
    ],
)
def test_report_location_says_whether_the_reports_outlive_the_pod(
    report: str, want_kept: bool
) -> None:
    text = report_location(report)
    assert text.startswith(report)
    assert ("kept under spec.reportUri" in text) == want_kept
