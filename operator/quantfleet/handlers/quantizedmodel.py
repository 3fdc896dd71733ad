"""QuantizedModel handlers: when a model is created, changed or resumed, or one of its children
changes, recompute plan → quantize → evaluate → gate → serve from what is observed and report
it in status. One idempotent pass serves every trigger; each step is its own function."""

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any

import kopf
from prometheus_client import REGISTRY

from quantfleet.api.common import QUANTIZED_MODEL
from quantfleet.api.conditions import QuantizedModelCondition, Reason
from quantfleet.api.contract import (
    LABEL_COMPONENT,
    LABEL_MODEL,
    Component,
)
from quantfleet.api.enums import Hardware, ModelKind, Scheme
from quantfleet.api.quantizedmodel import QuantizedModel, QuantizedModelSpec, QuantizedModelStatus
from quantfleet.api.results import AnyResult
from quantfleet.builders import job_pods
from quantfleet.builders.children import Json
from quantfleet.builders.conditions import ConditionStatus
from quantfleet.builders.jobs import (
    artifact_id,
    build_evaluate_job,
    build_gpu_job_placement,
    build_quantize_job,
    evaluation_tasks,
    quantize_memory_floor_mib,
)
from quantfleet.builders.placement import build_any_cpu_placement, build_pod_placement
from quantfleet.builders.promotion import decide_promotion, placed, promoted_artifact
from quantfleet.builders.serving import (
    build_deployment,
    build_service,
    deployment_reference,
    endpoint,
)
from quantfleet.builders.serving_status import LOG_TAIL_LINES, serving_failure
from quantfleet.builders.status import (
    Blocked,
    DeploymentObservation,
    JobObservation,
    Observed,
    build_status,
    evaluate_result,
    quantize_result,
)
from quantfleet.builders.storage import OutputUse, Reference, output_holder, quantize_references
from quantfleet.handlers import metrics, reconciler, runtime, watched
from quantfleet.handlers.model_pass import Pass, plan_for, serving_plan
from quantfleet.handlers.nodes import Fleet
from quantfleet.kube import baseline_cache, children, references
from quantfleet.planning.baseline import BaselinePlan, plan_baseline
from quantfleet.planning.capacity import size_cpu_replica, source_parameters
from quantfleet.planning.compat import BF16
from quantfleet.planning.inventory import read_held_pod
from quantfleet.planning.planner import Plan, Unplaceable

KIND = QUANTIZED_MODEL
# Catch what no event reports: a node that came, a child edited by hand.
RESYNC_SECONDS = 120
# A False that only says "not yet" is no news worth an event; nor is a plan made (status says
# where, and the quantize Job's creation follows in the same pass).
QUIET_REASONS = {
    Reason.NOT_PROMOTED,
    Reason.WAITING,
    Reason.DEPLOYMENT_PROGRESSING,
    Reason.PLACED,
    Reason.SCALED_TO_ZERO,  # a choice, not a failure: no Warning
}
# What a spec the models refuse sets: it is not planned.
INVALID_SPEC: list[tuple[StrEnum, ConditionStatus]] = [(QuantizedModelCondition.PLANNED, "False")]
# What a pass the API server refused for good sets: it is not ready (the steps keep their state).
REFUSED: list[tuple[StrEnum, ConditionStatus]] = [(QuantizedModelCondition.READY, "False")]


def reconcile(body: Json, fleet: Fleet) -> QuantizedModelStatus:
    """One pass: parse, observe and ensure each step, build the status, report it."""
    model = reconciler.parse(QuantizedModel, body, INVALID_SPEC, Reason.INVALID_SPEC)
    with reconciler.refusal_reported(body, REFUSED, Reason.RECONCILE_FAILED):
        observed = _observe_and_ensure(body, model, fleet)
    previous = model.status.conditions if model.status else []
    status = build_status(model.spec, observed, previous, datetime.now(UTC))
    _report(body, status)
    return status


def _forget(namespace: str, name: str, body: Json) -> None:
    """A deleted model's Job durations go (an alert on them would fire forever)."""
    metrics.forget_model(namespace, name)


HANDLERS = reconciler.register(KIND, reconcile, LABEL_MODEL, RESYNC_SECONDS, _forget)
REGISTRY.register(metrics.ModelCollector(partial(reconciler.watched_objects, KIND)))
# What a model waiting for room says: it is planned again as soon as room may have appeared.
WAITING_FOR_ROOM = {Reason.INSUFFICIENT_FREE_GPUS, Reason.INSUFFICIENT_FREE_CPU}


@kopf.on.event("v1", "pods", id="room-freed")
async def pod_gone(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    """When a pod that held a node's resources goes or finishes, plan again the models waiting
    for room, at once instead of at their next resync."""
    if event["type"] == "DELETED":
        freed = read_held_pod(body, LABEL_MODEL) is not None
    else:  # a bound pod that finished holds nothing any more
        finished = (body.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        freed = finished and bool((body.get("spec") or {}).get("nodeName"))
    if freed:
        await _replan_waiting(kwargs)


@kopf.on.event("v1", "nodes", id="room-added")
async def node_added(event: kopf.RawEvent, **kwargs: Any) -> None:
    """When a node joins, plan again the models waiting for room."""
    if event["type"] == "ADDED":
        await _replan_waiting(kwargs)


async def _replan_waiting(kwargs: dict[str, Any]) -> None:
    kube = watched.view(kwargs, runtime.api_client())
    for body in kube.all_of(KIND):
        conditions = (body.get("status") or {}).get("conditions") or []
        planned = {c["type"]: c for c in conditions}.get(QuantizedModelCondition.PLANNED) or {}
        if planned.get("status") == "False" and planned.get("reason") in WAITING_FOR_ROOM:
            meta = body["metadata"]
            named = {**kwargs, "name": meta["name"], "namespace": meta["namespace"]}
            await asyncio.to_thread(HANDLERS.changed, **named)


def _observe_and_ensure(body: Json, model: QuantizedModel, fleet: Fleet) -> Observed:
    """Walk the current spec's steps, then serve what is promoted (it or an earlier artifact)."""
    # Free GPUs as this model sees them: its own replicas and Jobs do not count as taken.
    inventory = fleet.inventory(
        body["metadata"]["namespace"], body["metadata"]["name"], runtime.settings().cpu_nodes
    )
    step = Pass(body, model, inventory, fleet.cache)
    return serve(step, observe_revision(step, fleet))


def observe_revision(step: Pass, fleet: Fleet) -> Observed:
    """The current spec's steps in order, each child created once the step before it
    succeeded, up to the gate's verdict on its artifact."""
    body, spec = step.body, step.spec
    generation = body["metadata"].get("generation", 0)
    parameters = source_parameters(spec.source.parameters_billions)
    plan = plan_for(step, parameters) if parameters else None
    if isinstance(plan, Unplaceable):
        return Observed(generation=generation, plan=plan, artifact_id="")
    scheme = plan.scheme if plan else spec.quantization.scheme
    artifact = artifact_id(spec, scheme)
    mine = OutputUse.of(body)
    if mine and (holder := output_holder(mine, fleet.rivals(mine))):
        return Observed(generation, plan, artifact, quantize_blocked=output_in_use(spec, holder))
    quantize = ensure_quantize_job(step, scheme, parameters, plan)
    if isinstance(quantize, Blocked):
        return Observed(generation, plan, artifact, quantize_blocked=quantize)
    observed = Observed(generation, plan, artifact, quantize=quantize)
    produced = quantize_result(quantize)
    if produced is None:
        return observed
    if plan is None:
        # No size in the spec: sized from the source checkpoint quantization measured.
        plan = plan_for(step, source_parameters(None, produced.size_before_bytes))
        observed = replace(observed, plan=plan)
        if isinstance(plan, Unplaceable):
            return observed
    kind = spec.source.kind or produced.model_kind or ModelKind.TEXT
    evaluate = ensure_evaluate_job(step, artifact, kind, plan)
    if isinstance(evaluate, str):
        return replace(observed, evaluate_unplaceable=evaluate)
    observed = replace(observed, evaluate=evaluate)
    scores = evaluate_result(evaluate)
    if scores is None:
        return observed
    return replace(observed, promotion=decide_promotion(spec, plan.scheme, scores, artifact))


def output_in_use(spec: QuantizedModelSpec, holder: OutputUse) -> Blocked:
    """Quantized=False: a model created earlier writes where this one would; no Job is made
    until it goes or one of them moves (looked at again on every pass)."""
    return Blocked(
        Reason.OUTPUT_IN_USE,
        f"QuantizedModel {holder.namespace}/{holder.name} (created earlier) writes to "
        f"{holder.uri}, which overlaps spec.output.uri {spec.output.uri}: choose another",
    )


def ensure_quantize_job(
    step: Pass, scheme: Scheme, parameters: int | None, plan: Plan | None
) -> JobObservation | Blocked:
    """Quantized: the quantize Job for these inputs (created if missing, once the ConfigMap and
    claims it mounts exist); older ones go. On a serving CPU node when the model is served on
    CPUs (planned there, or `hardware: cpu`)."""
    settings = runtime.settings()
    if on_cpu(step, plan):
        placement = build_any_cpu_placement(not settings.cpu_nodes)
        cores: int | None = settings.cpu_cores_per_replica
    else:
        taints = [t for pool in step.inventory.pools for t in pool.gpu_taints]
        placement = build_gpu_job_placement(quantize_memory_floor_mib(parameters), taints)
        cores = None
    manifest = build_quantize_job(
        step.body, step.spec, scheme, placement, settings, parameters, cores
    )
    return _ensure_only_job(
        step, Component.QUANTIZE, manifest, quantize_references(step.spec, settings)
    )


def on_cpu(step: Pass, plan: Plan | None) -> bool:
    """Whether the model's Jobs run on CPUs: its plan is a CPU plan, or (no plan yet) the spec
    asks for CPUs only."""
    if plan is not None:
        return plan.cpu is not None
    return step.spec.placement.hardware is Hardware.CPU


def ensure_evaluate_job(
    step: Pass, artifact: str, kind: ModelKind, plan: Plan
) -> JobObservation | str:
    """Evaluated: the evaluate Job for this checkpoint, given the cached BF16 scores; a result
    with baseline scores the cache lacks adds them to it. A string: why no Job can be placed."""
    spec = step.spec
    cached = baseline_cache.read_baseline_scores(step.kube, step.namespace, spec)
    sized = evaluation_plan(step, plan, kind, cached)
    if isinstance(sized, str):
        return sized
    cpu = sized.cpu if isinstance(sized, Plan) else None
    manifest = build_evaluate_job(
        step.body,
        spec,
        artifact,
        kind,
        build_any_cpu_placement(not runtime.settings().cpu_nodes)
        if cpu
        else build_pod_placement(sized),
        sized.gpus_per_replica,
        cached,
        runtime.settings(),
        cpu,
    )
    evaluate = _ensure_only_job(step, Component.EVALUATE, manifest)
    assert not isinstance(evaluate, Blocked)  # it needs nothing the quantize Job did not
    scores = evaluate_result(evaluate)
    if scores is not None and any(task.task not in cached for task in scores.tasks):
        baseline_cache.write_baseline_scores(step.kube.api, step.namespace, spec, scores)
    return evaluate


def evaluation_plan(
    step: Pass, plan: Plan, kind: ModelKind, cached: dict[str, dict[str, Any]]
) -> Plan | BaselinePlan | str:
    """Where the evaluate Job runs: it loads the BF16 baseline unless every task's baseline
    score is cached, so it is sized for BF16 (72B: 4 x 80 GB, where the FP8 plan needs 2) on the
    first of the plan's GPU families that holds it; with every score cached, the plan itself.
    A string says why BF16 fits none of them. A CPU plan's Job runs on a CPU node with the
    memory BF16 needs there."""
    if all(str(task) in cached for task in evaluation_tasks(step.spec, kind)):
        return plan
    if plan.cpu is not None:
        bf16 = size_cpu_replica(plan.parameters, BF16, plan.cpu.cores, plan.cpu.kv_cache_gib)
        if any(p.fits(bf16.cores, bf16.memory_bytes) for p in step.inventory.cpu_pools):
            return replace(plan, cpu=bf16)
        largest = max((n.memory_bytes for n in step.inventory.cpu_nodes), default=0)
        return (
            f"the evaluation loads the BF16 baseline: it needs {bf16.memory_bytes // 2**30} GiB "
            f"and {bf16.cores} cores; the largest serving CPU node has {largest // 2**30} GiB"
        )
    utilization = runtime.settings().gpu_memory_utilization
    tried = [
        plan_baseline(plan.parameters, family, step.inventory, utilization)
        for family in plan.target_families
    ]
    placed = [baseline for baseline in tried if isinstance(baseline, BaselinePlan)]
    if placed:
        return placed[0]
    return f"the evaluation loads the BF16 baseline: {tried[0]}"


def serve(step: Pass, observed: Observed) -> Observed:
    """Ready: the promoted artifact (this spec's once promoted, else the one promoted before,
    whatever became of newer revisions) gets its Deployment and Service while serving is
    enabled; with nothing promoted or serving disabled, those that exist are deleted (read from
    the live objects). What was promoted before is read from status.promotedArtifact: the one
    fact no live object holds once that revision's Jobs are gone (issue 32)."""
    recorded = step.model.status.promoted_artifact if step.model.status else None
    promoted = promoted_artifact(
        step.spec, observed.artifact_id, observed.plan, observed.promotion, recorded
    )
    observed = replace(observed, promoted=promoted)
    reference, service = deployment_reference(step.body), build_service(step.body)
    if promoted is None and observed.promotion is None and step.spec.serving.enabled:
        # No verdict yet and no record of what serves (a status an operator before issue 32
        # wrote): a live Deployment is left as it is until the gate decides.
        return observed
    if promoted is None or not step.spec.serving.enabled:
        reconciler.remove_existing(step.kube, reference, service)
        return observed
    plan = serving_plan(step, observed.plan, promoted)
    if isinstance(plan, Unplaceable):
        # Nowhere to place it afresh: what serves it now is left as it is.
        live = children.read(step.kube, reference)
        if live is None:
            return replace(observed, serving_unplaceable=plan)
    else:
        promoted = placed(promoted, plan)
        deployment = build_deployment(step.body, step.spec, promoted.uri, plan, runtime.settings())
        live = children.ensure_applied(step.kube, deployment)
    children.ensure_applied(step.kube, service)
    return replace(
        observed,
        promoted=promoted,
        deployment=observe_serving(step, live),
        service=service["metadata"]["name"],
        endpoint=endpoint(step.name, step.namespace),
    )


def observe_serving(step: Pass, live: Json) -> DeploymentObservation:
    """The Deployment, and while it is short of ready replicas why its pods fail: read from
    them (a label-selected list, only then), and from the failed server's log when its
    termination message holds only vLLM's wrappers, or a pod no node takes past the grace
    period. The pods' own events trigger the pass (reconciler.register)."""
    observed = children.observe_deployment(live)
    if observed.ready_replicas >= observed.replicas:
        return observed
    selector = live["spec"]["selector"]["matchLabels"]
    pods = children.list_pods(step.kube, step.namespace, selector)
    failure = serving_failure(pods)
    if failure is None:
        waiting = job_pods.unschedulable(pods, datetime.now(UTC))
        return replace(observed, failure=waiting) if waiting else observed
    log = ""
    if failure.wants_log:
        log = children.read_log(
            step.kube.api,
            step.namespace,
            failure.pod,
            failure.container,
            previous=failure.previous,
            lines=LOG_TAIL_LINES,
        )
    return replace(observed, failure=failure.describe(log))


def _ensure_only_job(
    step: Pass, component: Component, manifest: Json, needs: Sequence[Reference] = ()
) -> JobObservation | Blocked:
    """The component's Job from `manifest`, created once what it `needs` exists; its Jobs for
    other inputs deleted, its duration exported."""
    job = children.observe_job(step.kube, step.namespace, manifest["metadata"]["name"])
    if job is None:
        if why := references.missing(step.kube.api, step.namespace, needs):
            return Blocked(Reason.REFERENCE_NOT_FOUND, why)
        job = children.create_job(step.kube, manifest)
    labels = {LABEL_MODEL: step.name, LABEL_COMPONENT: component}
    children.delete_other_jobs(step.kube, step.namespace, labels, keep=job.name)
    _job_metric(step.namespace, step.name, job.result)
    return job


def _report(body: Json, status: QuantizedModelStatus) -> None:
    """Write status when it changed, post an event per step that changed (the metrics read
    the status: `metrics.ModelCollector`)."""
    before = (body.get("status") or {}).get("conditions") or []
    if reconciler.write_status(body, status):
        _post_transitions(body, before, status)


def _post_transitions(body: Json, before: list[Json], status: QuantizedModelStatus) -> None:
    """A Warning event for each step that failed, including one that goes on failing for a new
    reason (Ready: DeploymentProgressing -> ServingFailed); one Normal event for the steps that
    succeeded in this pass, named by the last of them (PassedGate after Evaluated): every event
    is an API write."""
    previous = {c.get("type"): (c.get("status"), c.get("reason")) for c in before}
    succeeded = []
    for condition in status.conditions:
        now = (condition.status, condition.reason)
        if now == previous.get(condition.type) or condition.status == "Unknown":
            continue
        if condition.reason in QUIET_REASONS:
            continue
        if condition.status == "False":
            message = f"{condition.type}: {condition.message}"
            reconciler.post_event(body, condition.reason, message, "Warning")
        else:
            succeeded.append(condition)
    if succeeded:
        message = "; ".join(f"{c.type}: {c.message}" for c in succeeded)
        reconciler.post_event(body, succeeded[-1].reason, message)


def _job_metric(namespace: str, name: str, result: AnyResult | None) -> None:
    seconds = getattr(result, "duration_seconds", None)
    if result is not None and seconds is not None:
        metrics.record_job(namespace, name, result.program, result.simulated, seconds)
