"""Condition types and reasons of both kinds: PascalCase constants, as metav1.Condition wants."""

from enum import StrEnum


class QuantizedModelCondition(StrEnum):
    """The steps of a QuantizedModel, each observed anew on every pass."""

    PLANNED = "Planned"
    QUANTIZED = "Quantized"
    EVALUATED = "Evaluated"
    PROMOTED = "Promoted"
    READY = "Ready"


class Reason(StrEnum):
    """Why a condition is what it is."""

    # Planned
    PLACED = "Placed"
    NO_GPU_NODES = "NoGpuNodes"
    NO_COMPATIBLE_GPU = "NoCompatibleGpu"
    INSUFFICIENT_GPU_MEMORY = "InsufficientGpuMemory"
    # Fits the fleet, but not its free GPUs now: planned again as pods come and go.
    INSUFFICIENT_FREE_GPUS = "InsufficientFreeGpus"
    # For spec.placement.hardware cpu (or any): serving CPU nodes.
    NO_CPU_NODES = "NoCpuNodes"
    NO_COMPATIBLE_CPU = "NoCompatibleCpu"
    INSUFFICIENT_NODE_MEMORY = "InsufficientNodeMemory"
    INSUFFICIENT_FREE_CPU = "InsufficientFreeCpu"
    SIZE_UNKNOWN = "ParameterCountUnknown"
    # Jobs (Quantized, Evaluated)
    # Created suspended for Kueue, which has not admitted it yet (kube.children.observe_job).
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    NO_RESULT = "NoReadableResult"
    # A Job pod waits on what will not pass by itself: a missing image, a broken config.
    POD_FAILING = "PodFailing"
    SCHEME_MISMATCH = "SchemeMismatch"
    # Quantized: not started, so that nothing is lost. Another model (created earlier) writes
    # where this one would; a ConfigMap, key or claim the Job needs does not exist.
    OUTPUT_IN_USE = "OutputInUse"
    REFERENCE_NOT_FOUND = "ReferenceNotFound"
    # Promoted
    PASSED_GATE = "PassedGate"
    BELOW_GATE = "BelowGate"
    AWAITING_APPROVAL = "AwaitingApproval"
    APPROVED = "Approved"
    # Ready
    DEPLOYMENT_READY = "DeploymentReady"
    DEPLOYMENT_PROGRESSING = "DeploymentProgressing"
    SERVING_FAILED = "ServingFailed"
    SERVING_DISABLED = "ServingDisabled"
    # spec.serving.replicas is 0: promoted, nothing serves it and no endpoint is advertised.
    SCALED_TO_ZERO = "ScaledToZero"
    NOT_PROMOTED = "NotPromoted"
    # Any
    WAITING = "Waiting"
    INVALID_SPEC = "InvalidSpec"
    # A pass the API server refused for good (an invalid child, a verb RBAC denies).
    RECONCILE_FAILED = "ReconcileFailed"


class BenchmarkRunCondition(StrEnum):
    """Where a BenchmarkRun stands: exactly one of them is True at a time."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class BenchmarkReason(StrEnum):
    """Why a BenchmarkRun condition is what it is (PascalCase, for machines to match on)."""

    WAITING_FOR_TARGETS = "WaitingForTargets"
    BENCHMARKING = "Benchmarking"
    # Running, but a benchmark pod waits on what will not pass by itself (a missing image, a
    # broken config, no node past the grace period): Degraded until someone acts.
    POD_FAILING = "PodFailing"
    QUEUED = "Queued"
    COMPLETED = "Completed"
    TARGET_NOT_READY = "TargetNotReady"
    BASELINE_UNPLACEABLE = "BaselineUnplaceable"
    ERROR_RATE_EXCEEDED = "ErrorRateExceeded"
    BENCHMARK_FAILED = "BenchmarkFailed"
    NO_RESULT = "NoReadableResult"
    INVALID_SPEC = "InvalidSpec"
    RECONCILE_FAILED = "ReconcileFailed"
