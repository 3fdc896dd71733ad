"""Status is derived from what was observed: the gate, the conditions, their transition times."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from factories import make_plan, make_spec
from quantfleet.api.conditions import Reason
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.results import EvaluateResult, FailureResult, QuantizeResult, TaskScore
from quantfleet.builders.promotion import decide_promotion, promoted_artifact
from quantfleet.builders.status import (
    DeploymentObservation,
    JobObservation,
    Observed,
    build_status,
)
from quantfleet.planning.planner import Unplaceable

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def make_evaluation(recovery: float | None, simulated: bool = False) -> EvaluateResult:
    return EvaluateResult(
        engine="vllm",
        baseline="hf://Qwen/Qwen2.5-VL-7B-Instruct",
        quantized="pvc://models/q",
        limit=None,
        baseline_cached=False,
        tasks=[
            TaskScore(
                task="chartqa", metric="relaxed", baseline=0.8, quantized=0.8, recovery=recovery
            )
        ],
        baseline_average=0.8,
        quantized_average=0.8,
        recovery=recovery,
        duration_seconds=1,
        library_versions={},
        simulated=simulated,
    )


def make_quantization(simulated: bool = True) -> QuantizeResult:
    return QuantizeResult(
        output="pvc://models/q",
        model_kind=ModelKind.VISION_LANGUAGE,
        requested_scheme=Scheme.FP8_DYNAMIC,
        scheme=Scheme.FP8_DYNAMIC,
        format="float-quantized",
        recipe_overridden=False,
        ignored_modules=3,
        calibration_samples=0,
        size_before_bytes=16_000,
        size_after_bytes=9_000,
        compression_ratio=16 / 9,
        duration_seconds=42,
        device="cuda",
        library_versions={},
        simulated=simulated,
    )


@pytest.mark.parametrize(
    ("serving", "recovery", "want_promoted", "want_reason", "want_in_message"),
    [
        pytest.param({}, 99.5, True, "PassedGate", "meets the 99% gate", id="automatic-passes"),
        pytest.param({}, 97.0, False, "BelowGate", "2.00 points below", id="says-by-how-much"),
        pytest.param({}, None, False, "BelowGate", "undefined", id="zero-baseline-never-passes"),
        pytest.param(
            {"promotion": "Manual"},
            99.5,
            False,
            "AwaitingApproval",
            "approvedArtifact: art1",
            id="manual-waits-naming-what-to-approve",
        ),
        pytest.param(
            {"promotion": "Manual", "approvedArtifact": "art1"},
            99.5,
            True,
            "Approved",
            "approved",
            id="manual-proceeds-on-approval",
        ),
        pytest.param(
            {"promotion": "Manual", "approvedArtifact": "old"},
            99.5,
            False,
            "AwaitingApproval",
            "art1",
            id="an-old-approval-does-not-carry-over",
        ),
        pytest.param(
            {"promotion": "Manual", "approvedArtifact": "art1"},
            90.0,
            False,
            "BelowGate",
            "below",
            id="approval-does-not-override-the-gate",
        ),
    ],
)
def test_gate(
    serving: dict[str, Any],
    recovery: float | None,
    want_promoted: bool,
    want_reason: str,
    want_in_message: str,
) -> None:
    spec = make_spec(serving=serving)
    verdict = decide_promotion(spec, Scheme.FP8_DYNAMIC, make_evaluation(recovery), "art1")
    assert (verdict.promoted, verdict.reason) == (want_promoted, want_reason)
    assert want_in_message in verdict.message


def conditions(observed: Observed, previous: list[Any] | None = None) -> dict[str, Any]:
    status = build_status(make_spec(), observed, previous or [], NOW)
    return {c.type: c for c in status.conditions}


def test_unplaceable_model_reports_why_and_nothing_else() -> None:
    plan = Unplaceable(
        Scheme.FP8_DYNAMIC,
        make_spec().quantization.resolved_objective,
        Reason.NO_COMPATIBLE_GPU,
        "only ampere here",
    )
    by_type = conditions(Observed(generation=3, plan=plan, artifact_id=""))
    assert (by_type["Planned"].status, by_type["Planned"].reason) == ("False", "NoCompatibleGpu")
    assert by_type["Planned"].observed_generation == 3
    assert by_type["Quantized"].status == "Unknown"
    assert by_type["Ready"].reason == "Waiting"


def test_job_that_succeeded_without_a_result_is_a_failure() -> None:
    spec = make_spec()
    observed = Observed(1, make_plan(spec), "a1", quantize=JobObservation("q", "Succeeded"))
    quantized = conditions(observed)["Quantized"]
    assert (quantized.status, quantized.reason) == ("False", "NoReadableResult")


def test_failed_job_carries_the_programs_one_line_reason() -> None:
    spec = make_spec()
    failure = FailureResult(program="quantize", reason="source hf://x/y is not reachable")
    observed = Observed(
        1,
        make_plan(spec),
        "a1",
        quantize=JobObservation("q", "Failed", failure, "BackoffLimitExceeded"),
    )
    quantized = conditions(observed)["Quantized"]
    assert quantized.status == "False"
    assert "source hf://x/y is not reachable" in quantized.message


def test_simulated_results_say_so_in_status() -> None:
    spec = make_spec()
    evaluation = make_evaluation(99.7, simulated=True)
    promotion = decide_promotion(spec, Scheme.FP8_DYNAMIC, evaluation, "a1")
    observed = Observed(
        1,
        make_plan(spec),
        "a1",
        quantize=JobObservation("q", "Succeeded", make_quantization(simulated=True)),
        evaluate=JobObservation("e", "Succeeded", evaluation),
        promotion=promotion,
        promoted=promoted_artifact(spec, "a1", make_plan(spec), promotion, None),
        deployment=DeploymentObservation("d", 1, 1),
        service="d",
        endpoint="http://d",
    )
    status = build_status(spec, observed, [], NOW)
    by_type = {c.type: c for c in status.conditions}
    assert "SIMULATED" in by_type["Quantized"].message
    assert "SIMULATED" in by_type["Evaluated"].message
    assert status.artifact is not None
    assert status.artifact.simulated
    assert status.recovery is not None
    assert status.recovery.simulated
    assert by_type["Ready"].status == "True"


def test_transition_time_is_kept_while_the_status_holds() -> None:
    spec = make_spec()
    running = Observed(1, make_plan(spec), "a1", quantize=JobObservation("q", "Running"))
    first = build_status(spec, running, [], NOW - timedelta(minutes=5)).conditions
    again = {c.type: c for c in build_status(spec, running, first, NOW).conditions}
    assert again["Planned"].last_transition_time == NOW - timedelta(minutes=5)
    done = Observed(
        1, make_plan(spec), "a1", quantize=JobObservation("q", "Succeeded", make_quantization())
    )
    moved = {c.type: c for c in build_status(spec, done, first, NOW).conditions}
    assert moved["Quantized"].last_transition_time == NOW


def test_job_held_by_kueue_is_queued_naming_its_local_queue() -> None:
    spec = make_spec()
    queued = JobObservation("q", "Queued", detail="queued in Kueue LocalQueue gpu-team")
    quantized = conditions(Observed(1, make_plan(spec), "a1", quantize=queued))["Quantized"]
    assert (quantized.status, quantized.reason) == ("Unknown", Reason.QUEUED)
    assert quantized.message == "Job q is queued in Kueue LocalQueue gpu-team"
