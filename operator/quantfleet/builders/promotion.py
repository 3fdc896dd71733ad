"""Promotion: the gate's verdict on the current spec's checkpoint, and which checkpoint serves.
The promoted one serves until another is promoted, whatever becomes of newer revisions (issue
32). Pure."""

from dataclasses import dataclass

from quantfleet.api.conditions import Reason
from quantfleet.api.enums import PromotionPolicy, Scheme
from quantfleet.api.quantizedmodel import PromotedArtifact, QuantizedModelSpec
from quantfleet.api.results import EvaluateResult
from quantfleet.planning.planner import Plan, Unplaceable


@dataclass(frozen=True)
class Promotion:
    """The gate's verdict."""

    promoted: bool
    reason: Reason
    message: str


def decide_promotion(
    spec: QuantizedModelSpec, scheme: Scheme, result: EvaluateResult, artifact: str
) -> Promotion:
    """Hold recovery against the gate; under Manual promotion also require the approval."""
    gate = spec.min_recovery(scheme)
    recovery = result.recovery
    if recovery is None:
        return Promotion(False, Reason.BELOW_GATE, "the baseline scored 0: recovery is undefined")
    if recovery < gate:
        return Promotion(
            False,
            Reason.BELOW_GATE,
            f"recovery {recovery:.2f}% is {gate - recovery:.2f} points below the {gate:g}% gate",
        )
    passed = f"recovery {recovery:.2f}% meets the {gate:g}% gate"
    if spec.serving.promotion is PromotionPolicy.AUTOMATIC:
        return Promotion(True, Reason.PASSED_GATE, passed)
    if spec.serving.approved_artifact == artifact:
        return Promotion(True, Reason.APPROVED, f"{passed}; artifact {artifact} approved")
    return Promotion(
        False,
        Reason.AWAITING_APPROVAL,
        f"{passed}; set spec.serving.approvedArtifact: {artifact} to promote it",
    )


def promoted_artifact(
    spec: QuantizedModelSpec,
    artifact: str,
    plan: Plan | Unplaceable | None,
    promotion: Promotion | None,
    recorded: PromotedArtifact | None,
) -> PromotedArtifact | None:
    """The checkpoint that serves: the current spec's `artifact` once `promotion` promotes it
    (sized by its `plan`), else the one promoted before (`recorded`, from status). A verdict
    against a newer revision never takes back an earlier promotion: only serving.enabled false
    stops serving, and only another promotion changes what serves."""
    if promotion is None or not promotion.promoted or not isinstance(plan, Plan):
        return recorded
    return PromotedArtifact(
        id=artifact,
        uri=spec.output.artifact_uri(artifact),
        scheme=plan.scheme,
        parameters=plan.parameters,
    )


def placed(promoted: PromotedArtifact, plan: Plan) -> PromotedArtifact:
    """`promoted` with where its Deployment was planned, which its next plan keeps while it has
    room (its replicas are not rolled as other pods come and go)."""
    families, levels = plan.target_families, plan.target_levels
    return promoted.model_copy(
        update={
            "gpu_family": families[0] if families else None,
            "cpu_level": levels[0] if levels else None,
        }
    )
