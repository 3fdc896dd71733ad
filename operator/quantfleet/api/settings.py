"""Operator-wide settings: the images and bounds every child gets, from flags or environment."""

from pydantic import BaseModel, Field


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
        default=0.90,
        gt=0,
        le=1,
        description="vLLM --gpu-memory-utilization; the planner sizes with the same share.",
    )
