"""What each step of a QuantizedModel's pass works from (`Pass`), and its Planned step: where
the current spec's checkpoint runs, and where the promoted one serves when that is another."""

from dataclasses import dataclass, replace

from quantfleet.api.enums import Hardware
from quantfleet.api.quantizedmodel import PromotedArtifact, QuantizedModel, QuantizedModelSpec
from quantfleet.builders.children import Json
from quantfleet.handlers import runtime
from quantfleet.kube.cache import Cache
from quantfleet.planning.inventory import Inventory
from quantfleet.planning.planner import Plan, PlanRequest, Unplaceable, plan_placement
from quantfleet.planning.rules import Kind


@dataclass(frozen=True)
class Pass:
    """What every step of one pass works from: the model, its body (the children's owner) and
    the GPU inventory."""

    body: Json
    model: QuantizedModel
    inventory: Inventory
    kube: Cache

    @property
    def spec(self) -> QuantizedModelSpec:
        return self.model.spec

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


def plan_for(step: Pass, parameters: int) -> Plan | Unplaceable:
    """Planned: where a model of `parameters` runs its scheme, on the GPUs there are."""
    request = plan_request(step, parameters)
    plan = plan_placement(request, step.inventory)
    kept = step.model.status.plan if step.model.status and request.keep else None
    if isinstance(plan, Plan) and kept and kept.rationale and plan_kind(plan) == request.keep:
        # Kept where it was placed, with the reasons it was placed there: a runner-up that
        # comes and goes as other pods fill the fleet is no change worth a status write.
        return replace(plan, rationale=kept.rationale)
    return plan


def serving_plan(
    step: Pass, plan: Plan | Unplaceable | None, promoted: PromotedArtifact
) -> Plan | Unplaceable:
    """Where the promoted artifact serves: the current plan when that plans its checkpoint (the
    same scheme and size) where it serves now, else a plan of its own, kept where it was while
    that has room (a changed spec plans the current artifact afresh; what serves is not moved
    for it)."""
    kept = promoted.gpu_family or promoted.cpu_level
    same = isinstance(plan, Plan) and (plan.scheme, plan.parameters) == (
        promoted.scheme,
        promoted.parameters,
    )
    if isinstance(plan, Plan) and same and kept in (None, plan_kind(plan)):
        return plan
    request = plan_request(step, promoted.parameters)
    return plan_placement(replace(request, scheme=promoted.scheme, keep=kept), step.inventory)


def plan_request(step: Pass, parameters: int) -> PlanRequest:
    """What the spec asks the planner for a model of `parameters`."""
    quantization, settings = step.spec.quantization, runtime.settings()
    return PlanRequest(
        parameters=parameters,
        objective=quantization.resolved_objective,
        scheme=quantization.scheme,
        allow_fallback=quantization.allow_fallback,
        gpus_per_replica=step.spec.serving.gpus_per_replica,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        policy=step.spec.placement.policy or settings.placement_policy,
        gpu_costs=settings.gpu_costs,
        replicas=step.spec.serving.replicas if step.spec.serving.enabled else 0,
        hardware=step.spec.placement.hardware or Hardware.GPU,
        cpu_cores=settings.cpu_cores_per_replica,
        cpu_kv_cache_gib=settings.cpu_kv_cache_gib,
        keep=kept_kind(step.body, step.model),
    )


def plan_kind(plan: Plan) -> Kind | None:
    """The GPU family or CPU level a plan prefers (what kept_kind reads back from status)."""
    return next(iter(plan.target_families), None) or next(iter(plan.target_levels), None)


def kept_kind(body: Json, model: QuantizedModel) -> Kind | None:
    """Where the plan of this generation put the model (its status), so the next pass keeps it
    there while it has room; a changed spec plans afresh."""
    status, generation = model.status, body["metadata"].get("generation")
    if status is None or status.plan is None or status.observed_generation != generation:
        return None
    return status.plan.gpu_family or next(iter(status.plan.cpu_levels), None)
