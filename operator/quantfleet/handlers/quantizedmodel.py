"""QuantizedModel handlers: when a model is created, changed or resumed, or one of its children
changes, recompute plan → quantize → evaluate → gate → serve from what is observed and report
it in status. One idempotent pass serves every trigger."""

import threading
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from pydantic import ValidationError

from quantfleet.api.common import GROUP, VERSION, Condition
from quantfleet.api.conditions import QuantizedModelCondition, Reason
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_MODEL, MANAGED_BY
from quantfleet.api.enums import ModelKind
from quantfleet.api.quantizedmodel import QuantizedModel, QuantizedModelStatus
from quantfleet.api.results import AnyResult
from quantfleet.builders.children import Json
from quantfleet.builders.jobs import (
    artifact_id,
    build_evaluate_job,
    build_gpu_job_placement,
    build_quantize_job,
    quantize_memory_floor_mib,
)
from quantfleet.builders.placement import build_pod_placement
from quantfleet.builders.serving import build_deployment, build_service, endpoint
from quantfleet.builders.status import (
    Observed,
    build_status,
    decide_promotion,
    evaluate_result,
    quantize_result,
)
from quantfleet.handlers import metrics
from quantfleet.handlers.runtime import api_client, settings
from quantfleet.kube import children, kube_models
from quantfleet.planning.capacity import source_parameters
from quantfleet.planning.inventory import build_inventory
from quantfleet.planning.planner import Plan, PlanRequest, Unplaceable, plan_placement

PLURAL = "quantizedmodels"
# Catch what no event reports: a node that came, a child edited by hand.
RESYNC_SECONDS = 120
# A False that only says "not yet" is no news worth an event.
QUIET_REASONS = {Reason.NOT_PROMOTED, Reason.WAITING, Reason.DEPLOYMENT_PROGRESSING}
_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
MANAGED: dict[str, Any] = {  # Any: kopf does not export its filter-token type
    LABEL_MANAGED_BY: MANAGED_BY,
    LABEL_MODEL: kopf.PRESENT,
}


@kopf.index("v1", "nodes")
def gpu_nodes(body: kopf.Body, name: str, **_: Any) -> dict[str, Json]:
    """Every Node by name, kept in memory from a watch, so planning costs no API call."""
    return {name: {key: body[key] for key in ("metadata", "spec", "status") if key in body}}


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def quantized_model(name: str, namespace: str | None, **kwargs: Any) -> None:
    """When a QuantizedModel appears, changes, resumes or is due a resync, reconcile it."""
    reconcile_named(namespace or "", name, _nodes(kwargs))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
def child_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
    """When a Job or Deployment of a model changes, reconcile the model that owns it."""
    reconcile_named(namespace or "", labels[LABEL_MODEL], _nodes(kwargs))


def reconcile_named(namespace: str, name: str, nodes: list[Json]) -> None:
    """Reconcile one model at a time, from a fresh read: a Job event and a resync arriving
    together then cost one set of writes, not two racing ones."""
    with _locks[(namespace, name)]:
        body = kube_models.read_quantized_model(api_client(), namespace, name)
        if body is not None:
            reconcile(body, nodes)


def _nodes(kwargs: dict[str, Any]) -> list[Json]:
    """The Nodes from the `gpu_nodes` index Kopf passes to every handler."""
    index: kopf.Index[str, Json] = kwargs["gpu_nodes"]
    return [node for store in index.values() for node in store]


def reconcile(body: Json, nodes: list[Json]) -> QuantizedModelStatus:
    """One pass: observe, create what is missing, report. Returns the status it wrote."""
    started = time.monotonic()
    metrics.RECONCILES.labels("QuantizedModel").inc()
    try:
        model = _parse(body)
        observed = _observe_and_ensure(body, model, nodes)
        previous = model.status.conditions if model.status else []
        status = build_status(model.spec, observed, previous, datetime.now(UTC))
        _report(body, model, status)
        return status
    except Exception as error:
        metrics.RECONCILE_ERRORS.labels("QuantizedModel", type(error).__name__).inc()
        raise
    finally:
        metrics.RECONCILE_SECONDS.labels("QuantizedModel").observe(time.monotonic() - started)


def _parse(body: Json) -> QuantizedModel:
    """The typed model; a spec the CRD let through but the models refuse stops here."""
    try:
        return QuantizedModel.model_validate(body)
    except ValidationError as error:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())[
            :1000
        ]
        condition = Condition(
            type=QuantizedModelCondition.PLANNED,
            status="False",
            reason=Reason.INVALID_SPEC,
            message=message,
            observed_generation=body["metadata"].get("generation"),
            last_transition_time=datetime.now(UTC),
        )
        children.patch_status(
            api_client(), body, {"conditions": [condition.model_dump(mode="json", by_alias=True)]}
        )
        raise kopf.PermanentError(f"Invalid spec: {message}") from error


def _observe_and_ensure(body: Json, model: QuantizedModel, nodes: list[Json]) -> Observed:
    """Walk the steps in order, creating each child once the step before it succeeded."""
    api, spec, config = api_client(), model.spec, settings()
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    inventory = build_inventory(nodes)
    parameters = source_parameters(spec.source.parameters_billions)

    def plan_for(size: int) -> Plan | Unplaceable:
        return plan_placement(
            PlanRequest(
                parameters=size,
                objective=spec.quantization.resolved_objective,
                scheme=spec.quantization.scheme,
                allow_fallback=spec.quantization.allow_fallback,
                gpus_per_replica=spec.serving.gpus_per_replica,
                gpu_memory_utilization=config.gpu_memory_utilization,
            ),
            inventory,
        )

    plan = plan_for(parameters) if parameters else None
    if isinstance(plan, Unplaceable):
        return Observed(generation=meta.get("generation", 0), plan=plan, artifact_id="")
    scheme = plan.scheme if plan else spec.quantization.scheme
    artifact = artifact_id(spec, scheme)
    taints = [t for pool in inventory.pools for t in pool.gpu_taints]
    quantize = children.ensure_job(
        api,
        build_quantize_job(
            body,
            spec,
            scheme,
            build_gpu_job_placement(quantize_memory_floor_mib(parameters), taints),
            config,
        ),
    )
    children.delete_other_jobs(api, namespace, _selector(name, "quantize"), keep=quantize.name)
    _job_metric(namespace, name, quantize.result)
    observed = Observed(meta.get("generation", 0), plan, artifact, quantize=quantize)
    produced = quantize_result(quantize)
    if produced is None:
        return observed
    if plan is None:
        # No size in the spec: sized from the source checkpoint quantization measured.
        plan = plan_for(source_parameters(None, produced.size_before_bytes))
        observed = replace(observed, plan=plan)
        if isinstance(plan, Unplaceable):
            return observed
    kind = spec.source.kind or produced.model_kind or ModelKind.TEXT
    cached = kube_models.read_baseline_scores(api, namespace, spec)
    evaluate = children.ensure_job(
        api,
        build_evaluate_job(
            body,
            spec,
            artifact,
            kind,
            build_pod_placement(plan),
            plan.gpus_per_replica,
            cached,
            config,
        ),
    )
    children.delete_other_jobs(api, namespace, _selector(name, "evaluate"), keep=evaluate.name)
    _job_metric(namespace, name, evaluate.result)
    observed = replace(observed, evaluate=evaluate)
    scores = evaluate_result(evaluate)
    if scores is None:
        return observed
    if any(task.task not in cached for task in scores.tasks):
        kube_models.write_baseline_scores(api, namespace, spec, scores)
    promotion = decide_promotion(spec, plan.scheme, scores, artifact)
    observed = replace(observed, promotion=promotion)
    deployment, service = build_deployment(body, spec, plan, config), build_service(body)
    if not (promotion.promoted and spec.serving.enabled):
        if model.status and model.status.children.deployment:
            children.delete(api, deployment)
            children.delete(api, service)
        return observed
    live = children.ensure_applied(api, deployment)
    children.ensure_applied(api, service)
    return replace(
        observed,
        deployment=children.observe_deployment(live),
        service=service["metadata"]["name"],
        endpoint=endpoint(name, namespace),
    )


def _report(body: Json, model: QuantizedModel, status: QuantizedModelStatus) -> None:
    """Write status only when it changed, and refresh the per-model metrics."""
    new = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    old = body.get("status") or {}
    if _comparable(new) != _comparable(old):
        children.patch_status(api_client(), body, _with_removals(new, old))
        _post_transitions(body, old.get("conditions") or [], status)
    metrics.record_model(model.metadata["namespace"], model.metadata["name"], status)


def _post_transitions(body: Json, before: list[Json], status: QuantizedModelStatus) -> None:
    """An event for each step that just succeeded (Normal) or failed (Warning)."""
    previous = {c.get("type"): c.get("status") for c in before}
    for condition in status.conditions:
        if condition.status == previous.get(condition.type) or condition.status == "Unknown":
            continue
        if condition.reason in QUIET_REASONS:
            continue
        kopf.event(
            cast(kopf.Body, body),  # kopf reads only the object's reference from it
            type="Normal" if condition.status == "True" else "Warning",
            reason=condition.reason,
            message=f"{condition.type}: {condition.message}"[:1024],
        )


def _comparable(status: Json) -> Json:
    """Status without transition times, which change only when the status does."""
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions", [])
    ]
    return {**status, "conditions": conditions}


def _with_removals(new: Json, old: Json) -> Json:
    """A merge patch that also clears top-level fields no longer observed (null deletes)."""
    return {**{key: None for key in old if key not in new}, **new}


def _selector(name: str, component: str) -> str:
    return f"{LABEL_MODEL}={name},{LABEL_COMPONENT}={component}"


def _job_metric(namespace: str, name: str, result: AnyResult | None) -> None:
    seconds = getattr(result, "duration_seconds", None)
    if result is not None and seconds is not None:
        metrics.JOB_SECONDS.labels(
            namespace, name, result.program, str(result.simulated).lower()
        ).set(seconds)
