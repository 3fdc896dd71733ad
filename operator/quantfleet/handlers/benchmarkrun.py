"""BenchmarkRun handlers: when a run is created, changed, resumed or due a resync, or one of its
children or a QuantizedModel it names changes, resolve the targets, bring up the BF16 baseline,
start the benchmark Jobs in order, and report results and speed-ups. One idempotent pass serves
every trigger; a finished run only makes sure its baseline is gone."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import kopf
from pydantic import ValidationError

from quantfleet.api.benchmarkrun import BenchmarkRun, BenchmarkRunStatus
from quantfleet.api.benchmarkrun import Endpoint as SpecEndpoint
from quantfleet.api.common import (
    BENCHMARK_RUN,
    GROUP,
    QUANTIZED_MODEL,
    QUANTIZED_MODELS,
    VERSION,
    LocalObjectRef,
)
from quantfleet.api.conditions import BenchmarkReason as Why
from quantfleet.api.conditions import BenchmarkRunCondition, QuantizedModelCondition
from quantfleet.api.contract import BASELINE_TARGET, LABEL_BENCHMARK_RUN
from quantfleet.api.enums import Hardware
from quantfleet.api.quantizedmodel import QuantizedModel
from quantfleet.builders.benchmark import (
    SystemUnderTest,
    base_url,
    baseline_endpoint,
    build_baseline_deployment,
    build_baseline_service,
    build_benchmark_job,
    too_many_runs,
)
from quantfleet.builders.benchmark_status import (
    QUEUED,
    TargetProgress,
    benchmark_result,
    build_benchmark_status,
    build_report_config_map,
    is_finished,
)
from quantfleet.builders.children import Json
from quantfleet.builders.conditions import ConditionStatus
from quantfleet.builders.serving import endpoint as model_endpoint
from quantfleet.handlers import metrics, nodes, reconciler, runtime, watched
from quantfleet.kube import children, custom_objects
from quantfleet.kube.cache import Cache
from quantfleet.planning.baseline import plan_baseline, plan_cpu_baseline

# None when a target serves; else why not (str), or a failure that no waiting mends.
Readiness = Callable[[], "str | TargetProgress | None"]
RESYNC_SECONDS = 10  # notices a readiness timeout and targets becoming Ready between events
KIND = BENCHMARK_RUN
# Finished runs (by uid) whose baseline this process has made sure is gone: their resyncs then
# cost no API call (a restarted operator checks each once more).
_torn_down: set[str] = set()
# What a spec the models refuse, or a pass the API server refused for good, sets: the run failed.
INVALID_SPEC: list[tuple[StrEnum, ConditionStatus]] = [
    (BenchmarkRunCondition.RUNNING, "False"),
    (BenchmarkRunCondition.SUCCEEDED, "False"),
    (BenchmarkRunCondition.FAILED, "True"),
]


@kopf.on.event(GROUP, VERSION, QUANTIZED_MODELS)
async def benchmarked_model_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
    """When a QuantizedModel changes (e.g. becomes Ready), reconcile the unfinished runs that
    name it, instead of waiting for their resync (found in memory, in Kopf's loop; their passes
    on a thread)."""
    kube = watched.view(kwargs, runtime.api_client())
    for body in custom_objects.list_custom(kube, KIND, namespace or ""):
        spec = body.get("spec") or {}
        refs = [t.get("modelRef") for t in [*spec.get("targets", []), spec.get("baseline") or {}]]
        status = body.get("status") or {}
        finished = any(
            c.get("type") in (BenchmarkRunCondition.SUCCEEDED, BenchmarkRunCondition.FAILED)
            and c.get("status") == "True"
            for c in status.get("conditions", [])
        )
        if not finished and any(ref and ref.get("name") == name for ref in refs):
            run, fleet = body["metadata"]["name"], nodes.listed(kwargs)
            await asyncio.to_thread(
                reconciler.reconcile_named, KIND, namespace or "", run, reconcile, fleet
            )


def reconcile(body: Json, fleet: nodes.Fleet) -> BenchmarkRunStatus:
    """One pass: observe, create what is due, report. Returns the status it wrote."""
    run = reconciler.parse(BenchmarkRun, body, INVALID_SPEC, Why.INVALID_SPEC)
    generation = body["metadata"].get("generation", 0)
    if is_finished(run.status, generation):
        uid = body["metadata"].get("uid", "")
        if uid not in _torn_down and run.spec.baseline and run.spec.baseline.model_ref:
            _teardown_baseline(fleet.cache, body)
            _torn_down.add(uid)
        assert run.status is not None
        metrics.record_benchmark(body["metadata"]["namespace"], run.metadata["name"], run.status)
        return run.status
    with reconciler.refusal_reported(body, INVALID_SPEC, Why.RECONCILE_FAILED):
        status = _pass(body, run, fleet, generation)
    if is_finished(status, generation):
        _teardown_baseline(fleet.cache, body)
    _report(body, run, status)
    return status


def _forget(namespace: str, name: str, body: Json) -> None:
    """A deleted run's series go, and whether its baseline was torn down."""
    metrics.forget_benchmark(namespace, name)
    _torn_down.discard(body["metadata"].get("uid", ""))


HANDLERS = reconciler.register(KIND, reconcile, LABEL_BENCHMARK_RUN, RESYNC_SECONDS, _forget)


def _pass(body: Json, run: BenchmarkRun, fleet: nodes.Fleet, generation: int) -> BenchmarkRunStatus:
    """Resolve each target in run order and start its Job when its turn has come."""
    spec, now = run.spec, datetime.now(UTC)
    previous = run.status.conditions if run.status else []
    if (why := too_many_runs(spec)) is not None:
        refused = [TargetProgress("spec", failure=(Why.INVALID_SPEC, why))]
        return build_benchmark_status(spec, refused, generation, previous, now)
    created = datetime.fromisoformat(body["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    timed_out = now > created + timedelta(seconds=spec.ready_timeout_seconds)
    order: list[tuple[str, LocalObjectRef | None, SpecEndpoint | None]] = []
    if spec.baseline is not None:
        order.append((BASELINE_TARGET, spec.baseline.model_ref, spec.baseline.endpoint))
    order += [(t.name, t.model_ref, t.endpoint) for t in spec.targets]
    progress: list[TargetProgress] = []
    may_start = True  # sequential: only the first unfinished target may run
    for name, ref, plain in order:
        target = _target(body, run, name, ref, plain, fleet, may_start)
        if target.waiting not in (None, QUEUED) and target.job is None and timed_out:
            reason = f"not ready after {spec.ready_timeout_seconds}s: {target.waiting}"
            target = TargetProgress(name, failure=(Why.TARGET_NOT_READY, reason))
        progress.append(target)
        if not spec.parallel and benchmark_result(target.job) is None:
            may_start = False
    status = build_benchmark_status(spec, progress, generation, previous, now)
    results = {t.name: r for t in progress if (r := benchmark_result(t.job)) is not None}
    if not results:
        return status
    report = build_report_config_map(body, status, results)
    children.ensure_applied(fleet.cache, report)
    return status.model_copy(update={"report_config_map": report["metadata"]["name"]})


def _target(
    body: Json,
    run: BenchmarkRun,
    name: str,
    ref: LocalObjectRef | None,
    plain: SpecEndpoint | None,
    fleet: nodes.Fleet,
    may_start: bool,
) -> TargetProgress:
    """One target's Job if it has one, else why it cannot start, else its new Job."""
    kube, namespace = fleet.cache, body["metadata"]["namespace"]
    if plain is not None:
        endpoint = SystemUnderTest(name, base_url(plain.url), plain.model, plain.model)
        return _job(kube, body, run, endpoint, None, may_start)
    assert ref is not None
    model_body = custom_objects.read_custom(kube, QUANTIZED_MODEL, namespace, ref.name)
    if model_body is None:
        return TargetProgress(name, waiting=f"QuantizedModel {ref.name} not found")
    try:
        model = QuantizedModel.model_validate(model_body)
    except ValidationError:
        return TargetProgress(name, waiting=f"QuantizedModel {ref.name} has an invalid spec")
    source = model.spec.source
    tokenizer = f"{source.uri}@{source.revision}" if source.revision else source.uri
    uris = (source.uri,)
    if name == BASELINE_TARGET:
        url = baseline_endpoint(body["metadata"]["name"], namespace)
        endpoint = SystemUnderTest(
            name, url, f"{ref.name}-bf16", tokenizer, source.token_secret_ref, uris
        )
        return _job(
            kube, body, run, endpoint, lambda: _baseline_ready(body, model, fleet), may_start
        )
    url = base_url(model_endpoint(ref.name, namespace))
    endpoint = SystemUnderTest(name, url, ref.name, tokenizer, source.token_secret_ref, uris)
    return _job(kube, body, run, endpoint, lambda: _model_ready(model), may_start)


def _job(
    kube: Cache,
    body: Json,
    run: BenchmarkRun,
    endpoint: SystemUnderTest,
    readiness: Readiness | None,
    may_start: bool,
) -> TargetProgress:
    """Observe the target's Job; create it when the target is ready and its turn has come."""
    manifest = build_benchmark_job(body, run.spec, endpoint, runtime.settings())
    meta = manifest["metadata"]
    job = children.observe_job(kube, meta["namespace"], meta["name"])
    if (
        endpoint.name == BASELINE_TARGET
        and job is not None
        and job.phase in ("Succeeded", "Failed")
    ):
        _teardown_baseline(kube, body)  # its numbers are in: free the GPUs for the targets
    if job is not None:
        return TargetProgress(endpoint.name, job=job)
    verdict = readiness() if readiness is not None else None
    if isinstance(verdict, TargetProgress):  # it can never become ready: the run fails
        return verdict
    if verdict is not None:
        return TargetProgress(endpoint.name, waiting=verdict)
    if not may_start:
        return TargetProgress(endpoint.name, waiting=QUEUED)
    job = children.ensure_job(kube, manifest)
    reconciler.post_event(
        body, "BenchmarkStarted", f"Created Job {job.name} benchmarking {endpoint.name}"
    )
    return TargetProgress(endpoint.name, job=job)


def _model_ready(model: QuantizedModel) -> str | None:
    """None when the QuantizedModel is Ready, else why not."""
    conditions = {c.type: c for c in (model.status.conditions if model.status else [])}
    ready = conditions.get(QuantizedModelCondition.READY)
    if ready is not None and ready.status == "True":
        return None
    detail = f": {ready.reason}, {ready.message}" if ready is not None else ""
    return f"QuantizedModel {model.metadata['name']} is not Ready{detail}"


def _baseline_ready(
    body: Json, model: QuantizedModel, fleet: nodes.Fleet
) -> str | TargetProgress | None:
    """Bring up the BF16 baseline on the model's GPU family; None once it serves."""
    kube, name = fleet.cache, model.metadata["name"]
    status = model.status
    planned = status.plan if status else None
    if planned is None or (planned.gpu_family is None and planned.hardware is not Hardware.CPU):
        return f"QuantizedModel {name} has no plan yet"
    parameters = planned.parameters  # as it was planned
    if parameters is None:
        return f"QuantizedModel {name} has no size yet (parametersBillions or a checkpoint)"
    config = runtime.settings()
    inventory = fleet.inventory(cpu_nodes=config.cpu_nodes)
    if planned.gpu_family is None:  # served on CPUs: the baseline on the same CPU levels
        plan = plan_cpu_baseline(
            parameters,
            tuple(planned.cpu_levels),
            inventory,
            config.cpu_cores_per_replica,
            config.cpu_kv_cache_gib,
        )
    else:
        plan = plan_baseline(
            parameters, planned.gpu_family, inventory, config.gpu_memory_utilization
        )
    if isinstance(plan, str):
        return TargetProgress(BASELINE_TARGET, failure=(Why.BASELINE_UNPLACEABLE, plan))
    deployment = build_baseline_deployment(body, model.spec, f"{name}-bf16", plan, config)
    fresh = children.read(kube, deployment) is None
    live = children.ensure_applied(kube, deployment)
    children.ensure_applied(kube, build_baseline_service(body))
    if fresh:
        reconciler.post_event(
            body, "BaselineDeploying", f"Serving {name}'s source in BF16: {plan.rationale}"
        )
    observed = children.observe_deployment(live)
    if observed.ready_replicas >= observed.replicas:
        return None
    return f"baseline Deployment {observed.name} is not ready ({plan.rationale})"


def _teardown_baseline(kube: Cache, body: Json) -> None:
    """Remove the baseline Deployment and Service; an event when there was one."""
    if reconciler.remove_existing(kube, build_baseline_service(body), _baseline_stub(body)):
        reconciler.post_event(
            body, "BaselineRemoved", "Removed the BF16 baseline Deployment and Service"
        )


def _baseline_stub(body: Json) -> Json:
    """Enough of the baseline Deployment to name it for deletion."""
    service = build_baseline_service(body)
    return {**service, "apiVersion": "apps/v1", "kind": "Deployment"}


def _report(body: Json, run: BenchmarkRun, status: BenchmarkRunStatus) -> None:
    """Write status when it changed, post events for what changed, refresh metrics."""
    if reconciler.write_status(body, status):
        _events(body, run.status, status)
    metrics.record_benchmark(body["metadata"]["namespace"], body["metadata"]["name"], status)


def _events(body: Json, before: BenchmarkRunStatus | None, after: BenchmarkRunStatus) -> None:
    done_before = {r.target for r in (before.results if before else [])}
    for target in dict.fromkeys(r.target for r in after.results):
        if target not in done_before:
            simulated = any(r.simulated for r in after.results if r.target == target)
            reconciler.post_event(
                body,
                "TargetBenchmarked",
                f"Benchmarked {target}" + (" (SIMULATED results)" if simulated else ""),
            )
    was = {c.type: c.status for c in (before.conditions if before else [])}
    for condition in after.conditions:
        if (
            condition.type != BenchmarkRunCondition.RUNNING
            and condition.status == "True"
            and was.get(condition.type) != "True"
        ):
            kind = "Warning" if condition.type == BenchmarkRunCondition.FAILED else "Normal"
            reconciler.post_event(body, condition.reason, condition.message, kind)
