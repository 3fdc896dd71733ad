"""Operator-wide settings: the images and bounds every child gets, from flags or environment."""

from typing import Final

from pydantic import BaseModel, Field

# vLLM's own default --gpu-memory-utilization: the share of each GPU it may use. The planner sizes
# with the operator's setting, which defaults to this (planning.capacity).
DEFAULT_GPU_MEMORY_UTILIZATION: Final = 0.90


class OperatorSettings(BaseModel):
    """What the operator's install decides rather than each QuantizedModel."""

    jobs_image: str = Field(
        default="ghcr.io/quantfleet/quantfleet-jobs:0.1.0",
        description="Image running quantfleet_jobs (the Dockerfile's jobs target).",
    )
    job_backoff_limit: int = Field(
        default=1, ge=0, description="Retries of a failed Job pod: quantization is costly."
    )
    quantize_deadline_seconds: int = Field(
        default=6 * 3600, ge=60, description="activeDeadlineSeconds of quantization Jobs."
    )
    evaluate_deadline_seconds: int = Field(
        default=6 * 3600, ge=60, description="activeDeadlineSeconds of evaluation Jobs."
    )
    gpu_memory_utilization: float = Field(
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
        gt=0,
        le=1,
        description=(
            "vLLM --gpu-memory-utilization; the planner sizes replicas and the BF16 baseline "
            "with the same share of each GPU."
        ),
    )
