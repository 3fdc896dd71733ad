"""A QuantizedModel's status, derived from what was observed on this pass (level-based): the
plan, the Jobs and their results, the Deployment. Pure: the clock comes in as `now`."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from quantfleet.api.common import Condition
from quantfleet.api.conditions import QuantizedModelCondition as Type
from quantfleet.api.conditions import Reason
from quantfleet.api.contract import harness_task
from quantfleet.api.enums import Hardware
from quantfleet.api.quantizedmodel import (
    ArtifactStatus,
    Children,
    PlanStatus,
    PromotedArtifact,
    QuantizedModelSpec,
    QuantizedModelStatus,
    RecoveryStatus,
    ServingStatus,
    TaskRecovery,
)
from quantfleet.api.results import (
    CHECKPOINT_LIBRARY,
    AnyResult,
    EvaluateResult,
    FailureResult,
    QuantizeResult,
    TaskScore,
)
from quantfleet.builders.conditions import condition, stamp
from quantfleet.builders.promotion import Promotion
from quantfleet.builders.serving_status import image_version
from quantfleet.planning.planner import Plan, Unplaceable

# Queued: created suspended for Kueue, not admitted yet (detail names the LocalQueue).
JobPhase = Literal["Queued", "Pending", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class JobObservation:
    """A Job as seen now: its phase, and the result its pod left (if readable)."""

    name: str
    phase: JobPhase
    result: AnyResult | None = None
    detail: str = ""  # what the Job's own conditions say when there is no result
    # What its pods hit (builders.job_pods): a pod that ended badly, one stuck waiting.
    pod_ended: str | None = None
    pod_stuck: str | None = None

    @property
    def problem(self) -> str | None:
        """Why a finished Job gives nothing to go on, or None when it does."""
        if self.phase == "Failed":
            if isinstance(self.result, FailureResult):
                return self.result.reason
            said = "; ".join(filter(None, [self.pod_ended, self.detail]))
            return said or "the Job failed without a result"
        if self.phase == "Succeeded" and (
            self.result is None or isinstance(self.result, FailureResult)
        ):
            return "the Job succeeded but left no readable result in its termination message"
        return None


@dataclass(frozen=True)
class DeploymentObservation:
    """The vLLM Deployment as seen now, and why its pods fail to serve (serving_status)."""

    name: str
    replicas: int
    ready_replicas: int
    image: str = ""
    failure: str | None = None


@dataclass(frozen=True)
class Blocked:
    """Why a step's Job is not made: it would lose something, or it could not start."""

    reason: Reason
    message: str


@dataclass(frozen=True)
class Observed:
    """Everything one pass saw; later steps are None until earlier ones succeed."""

    generation: int
    plan: Plan | Unplaceable | None  # None: no size yet; planned once quantization reports it
    artifact_id: str
    quantize: JobObservation | None = None
    quantize_blocked: Blocked | None = None  # why no quantize Job is made (nothing would be lost)
    evaluate: JobObservation | None = None
    evaluate_unplaceable: str | None = None  # why the evaluate Job fits no GPU the plan names
    promotion: Promotion | None = None  # the gate's verdict on this spec's artifact
    promoted: PromotedArtifact | None = None  # what serves: this artifact or an earlier one
    serving_unplaceable: Unplaceable | None = None  # why `promoted` has no Deployment to serve it
    deployment: DeploymentObservation | None = None
    service: str | None = None
    endpoint: str | None = None


def quantize_result(job: JobObservation | None) -> QuantizeResult | None:
    """The checkpoint the Job produced, once it succeeded with the scheme it was asked for."""
    if job and job.phase == "Succeeded" and isinstance(job.result, QuantizeResult):
        return job.result if scheme_mismatch(job.result) is None else None
    return None


def evaluate_result(job: JobObservation | None) -> EvaluateResult | None:
    if job and job.phase == "Succeeded" and isinstance(job.result, EvaluateResult):
        return job.result
    return None


def scheme_mismatch(result: QuantizeResult) -> str | None:
    """What is wrong when the checkpoint is not the scheme the Job was planned and asked for
    (a recipe override that produces another scheme)."""
    if result.scheme == result.requested_scheme:
        return None
    return (
        f"the checkpoint is {result.scheme or result.format}, not the planned "
        f"{result.requested_scheme}; fix the recipe override or spec.quantization.scheme"
    )


def build_status(
    spec: QuantizedModelSpec,
    observed: Observed,
    previous: list[Condition],
    now: datetime,
) -> QuantizedModelStatus:
    """The whole status for this pass; conditions keep their transition time when unchanged."""
    plan = observed.plan
    fresh = [
        _planned(plan),
        _quantized(observed.quantize, observed.quantize_blocked),
        _evaluated(observed),
        _promoted(observed.promotion),
        _ready(spec, observed),
    ]
    conditions = [stamp(c, previous, observed.generation, now) for c in fresh]
    return QuantizedModelStatus(
        observed_generation=observed.generation,
        conditions=conditions,
        plan=_plan_status(plan),
        artifact=_artifact(spec, observed),
        recovery=_recovery(spec, observed),
        serving=_serving(spec, observed),
        promoted_artifact=observed.promoted,
        children=Children(
            quantize_job=observed.quantize.name if observed.quantize else None,
            evaluate_job=observed.evaluate.name if observed.evaluate else None,
            deployment=observed.deployment.name if observed.deployment else None,
            service=observed.service,
        ),
    )


def _simulated(result: AnyResult | None) -> str:
    return " (SIMULATED result)" if getattr(result, "simulated", False) else ""


def _planned(plan: Plan | Unplaceable | None) -> Condition:
    if plan is None:
        return condition(
            Type.PLANNED,
            "Unknown",
            Reason.SIZE_UNKNOWN,
            "no spec.source.parametersBillions: planned once quantization reports the size",
        )
    if isinstance(plan, Unplaceable):
        return condition(Type.PLANNED, "False", plan.reason, plan.message)
    return condition(Type.PLANNED, "True", Reason.PLACED, plan.rationale)


def _quantized(job: JobObservation | None, blocked: Blocked | None) -> Condition:
    """Quantized: the Job's state, why there is none, or SchemeMismatch when it made another
    scheme than planned."""
    if blocked is not None:
        return condition(Type.QUANTIZED, "False", blocked.reason, blocked.message)
    result = job.result if job and job.phase == "Succeeded" else None
    if job and isinstance(result, QuantizeResult) and (why := scheme_mismatch(result)):
        return condition(Type.QUANTIZED, "False", Reason.SCHEME_MISMATCH, f"Job {job.name}: {why}")
    return _job_condition(Type.QUANTIZED, job, _quantized_message)


def _quantized_message(result: AnyResult) -> str:
    assert isinstance(result, QuantizeResult)
    return (
        f"{result.scheme} checkpoint ({result.format}), {result.compression_ratio:.2f}x "
        f"smaller, in {result.duration_seconds:.0f}s{_simulated(result)}"
    )


def _evaluated(observed: Observed) -> Condition:
    if observed.evaluate_unplaceable:
        return condition(
            Type.EVALUATED, "False", Reason.INSUFFICIENT_GPU_MEMORY, observed.evaluate_unplaceable
        )
    return _job_condition(Type.EVALUATED, observed.evaluate, _evaluated_message)


def _evaluated_message(result: AnyResult) -> str:
    assert isinstance(result, EvaluateResult)
    tasks = ", ".join(task.task for task in result.tasks)
    recovery = "undefined" if result.recovery is None else f"{result.recovery:.2f}%"
    return f"recovery {recovery} on {tasks}{_simulated(result)}"


def _job_condition(
    kind: Type, job: JobObservation | None, describe: Callable[[AnyResult], str]
) -> Condition:
    if job is None:
        return condition(kind, "Unknown", Reason.WAITING, "waiting for the previous step")
    if job.problem is not None:
        reason = Reason.NO_RESULT if job.phase == "Succeeded" else Reason.FAILED
        return condition(kind, "False", reason, f"Job {job.name}: {job.problem}")
    if job.phase == "Succeeded" and job.result is not None:
        return condition(kind, "True", Reason.SUCCEEDED, describe(job.result))
    if job.phase == "Queued":
        return condition(kind, "Unknown", Reason.QUEUED, f"Job {job.name} is {job.detail}")
    if job.pod_stuck:
        # Its image is missing, its config broken: it will not start until someone acts.
        return condition(kind, "False", Reason.POD_FAILING, f"Job {job.name}: {job.pod_stuck}")
    # One reason from creation to the end, Pending or Running alike: each change of it would
    # be a status write, and a pod that cannot start says so above (PodFailing).
    retry = f" (retrying after {job.pod_ended})" if job.pod_ended else ""
    return condition(kind, "Unknown", Reason.RUNNING, f"Job {job.name} is in progress{retry}")


def _promoted(promotion: Promotion | None) -> Condition:
    if promotion is None:
        return condition(Type.PROMOTED, "Unknown", Reason.WAITING, "waiting for evaluation")
    if promotion.promoted:
        return condition(Type.PROMOTED, "True", promotion.reason, promotion.message)
    return condition(Type.PROMOTED, "False", promotion.reason, promotion.message)


def _ready(spec: QuantizedModelSpec, observed: Observed) -> Condition:
    """Whether the promoted artifact serves, which may be an earlier one than this spec's while
    the current one is on its way or not promoted (the Promoted condition says why)."""
    served, promotion = observed.promoted, observed.promotion
    if served is None:
        if promotion is None:
            # Not yet decided: "not promoted" would read as a verdict (Argo CD: Degraded).
            return condition(Type.READY, "False", Reason.WAITING, "waiting for the recovery gate")
        return condition(
            Type.READY, "False", Reason.NOT_PROMOTED, f"not promoted: {promotion.reason}"
        )
    if not spec.serving.enabled:
        return condition(
            Type.READY, "False", Reason.SERVING_DISABLED, "spec.serving.enabled is false"
        )
    if spec.serving.replicas == 0:
        return condition(
            Type.READY,
            "False",
            Reason.SCALED_TO_ZERO,
            f"spec.serving.replicas is 0: artifact {served.id} is promoted, no replica serves it",
        )
    deployment = observed.deployment
    if deployment is None and observed.serving_unplaceable is not None:
        unplaceable = observed.serving_unplaceable
        message = f"artifact {served.id}: {unplaceable.message}"
        return condition(Type.READY, "False", unplaceable.reason, message)
    if deployment is None:
        return condition(Type.READY, "False", Reason.DEPLOYMENT_PROGRESSING, "creating")
    message = f"{deployment.ready_replicas}/{deployment.replicas} vLLM replicas ready"
    if deployment.ready_replicas >= deployment.replicas:
        message += f", serving artifact {served.id}"
        if observed.artifact_id and observed.artifact_id != served.id:
            message += f" until the current spec's {observed.artifact_id} is promoted"
        return condition(Type.READY, "True", Reason.DEPLOYMENT_READY, message)
    if deployment.failure:
        return condition(Type.READY, "False", Reason.SERVING_FAILED, deployment.failure)
    return condition(Type.READY, "False", Reason.DEPLOYMENT_PROGRESSING, message)


def _serving(spec: QuantizedModelSpec, observed: Observed) -> ServingStatus | None:
    """Where the model is served; no endpoint while scaled to zero (nothing behind it)."""
    deployment = observed.deployment
    if deployment is None:
        return None
    return ServingStatus(
        endpoint=observed.endpoint if spec.serving.replicas > 0 else None,
        ready_replicas=deployment.ready_replicas,
        vllm_version=image_version(deployment.image),
    )


def _plan_status(plan: Plan | Unplaceable | None) -> PlanStatus | None:
    if plan is None or isinstance(plan, Unplaceable):
        return None
    families, cpu = list(plan.target_families), plan.cpu
    return PlanStatus(
        scheme=plan.scheme,
        policy=plan.policy,
        hardware=Hardware.CPU if cpu else Hardware.GPU,
        gpu_family=families[0] if families else None,
        gpu_families=families,
        gpus_per_replica=None if cpu else plan.gpus_per_replica,
        tensor_parallel_size=plan.tensor_parallel_size,
        cpu_levels=list(plan.target_levels),
        cpus_per_replica=cpu.cores if cpu else None,
        memory_per_replica=f"{cpu.memory_bytes // 2**30}Gi" if cpu else None,
        parameters=plan.parameters,
        rationale=plan.rationale[:512],
    )


def _artifact(spec: QuantizedModelSpec, observed: Observed) -> ArtifactStatus | None:
    result = quantize_result(observed.quantize)
    if result is None:
        return None
    return ArtifactStatus(
        id=observed.artifact_id,
        uri=spec.output.artifact_uri(observed.artifact_id),
        format=result.format,
        scheme=result.scheme,
        size_bytes=result.size_after_bytes,
        compression_ratio=round(result.compression_ratio, 3),
        compressed_tensors_version=result.library_versions.get(CHECKPOINT_LIBRARY),
        simulated=result.simulated,
    )


def _recovery(spec: QuantizedModelSpec, observed: Observed) -> RecoveryStatus | None:
    result = evaluate_result(observed.evaluate)
    plan = observed.plan
    if result is None or result.recovery is None or not isinstance(plan, Plan):
        return None
    return RecoveryStatus(
        overall=round(result.recovery, 2),
        min_recovery=spec.min_recovery(plan.scheme),
        by_modality={
            modality: round(recovery, 2)
            for modality, recovery in result.recovery_by_modality.items()
            if recovery is not None
        },
        tasks=[_task_recovery(t) for t in result.tasks],
        simulated=result.simulated,
    )


def _task_recovery(score: TaskScore) -> TaskRecovery:
    runs = harness_task(score.task)
    return TaskRecovery(
        task=score.task,
        harness=runs.harness,
        harness_task=runs.task,
        metric=score.metric,
        version=score.version,
        samples=score.samples,
        baseline=score.baseline,
        quantized=score.quantized,
        recovery=round(score.recovery or 0.0, 2),
    )
