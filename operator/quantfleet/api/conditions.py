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
    SIZE_UNKNOWN = "ParameterCountUnknown"
    # Jobs (Quantized, Evaluated)
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    NO_RESULT = "NoReadableResult"
    SCHEME_MISMATCH = "SchemeMismatch"
    # Promoted
    PASSED_GATE = "PassedGate"
    BELOW_GATE = "BelowGate"
    AWAITING_APPROVAL = "AwaitingApproval"
    APPROVED = "Approved"
    # Ready
    DEPLOYMENT_READY = "DeploymentReady"
    DEPLOYMENT_PROGRESSING = "DeploymentProgressing"
    SERVING_DISABLED = "ServingDisabled"
    NOT_PROMOTED = "NotPromoted"
    # Any
    WAITING = "Waiting"
    INVALID_SPEC = "InvalidSpec"
