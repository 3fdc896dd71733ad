"""Operator-wide settings: the images and bounds every child gets, from flags or environment."""

from pathlib import Path
from typing import Final

import yaml
from pydantic import BaseModel, Field, PositiveFloat, TypeAdapter, ValidationError

from quantfleet.api.common import kueue_queue_field
from quantfleet.api.enums import PlacementPolicy

# vLLM's own default --gpu-memory-utilization: the share of each GPU it may use. The planner sizes
# with the operator's setting, which defaults to this (planning.capacity).
DEFAULT_GPU_MEMORY_UTILIZATION: Final = 0.90
# A CPU replica: the cores vLLM binds its OpenMP threads to, and its KV cache in host RAM.
DEFAULT_CPU_CORES_PER_REPLICA: Final = 16
DEFAULT_CPU_KV_CACHE_GIB: Final = 4


class OperatorSettings(BaseModel):
    """What the operator's install decides rather than each QuantizedModel."""

    jobs_image: str = Field(
        default="ghcr.io/quantfleet/quantfleet-jobs:0.1.0",
        description="Image running quantfleet_jobs (the Dockerfile's jobs target).",
    )
    evaluate_image: str = Field(
        default="ghcr.io/quantfleet/quantfleet-evaluate:0.1.0",
        description=(
            "Image of evaluate Jobs on GPUs (the Dockerfile's evaluate target: vLLM with "
            "quantfleet_jobs, lm-eval and lmms-eval). Evaluate Jobs on CPU nodes run "
            "cpu_vllm_image, which holds them too."
        ),
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
    model_cache_claim: str | None = Field(
        default=None,
        max_length=253,
        description=(
            "PersistentVolumeClaim (ReadWriteMany, in each models' namespace) the quantize and "
            "evaluate Jobs share as a model cache: hub and S3 sources are downloaded into it "
            "once per source and revision. Unset, each Job downloads its own copy."
        ),
    )
    evaluation_tasks: str | None = Field(
        default=None,
        pattern=r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^/]+)*/?$",
        max_length=1024,
        description=(
            "pvc://claim/path of local lm-eval task definitions and their data, for clusters "
            "that cannot reach the hub: evaluate Jobs mount it read-only and score only the "
            "tasks defined there (--include-path, --no-builtin-tasks), under the CRD's task "
            "names. Unset, lm-eval's own tasks are used."
        ),
    )
    cpu_nodes: bool = Field(
        default=False,
        description=(
            "Serve on every node without GPUs that carries Node Feature Discovery cpuid labels "
            "(control-plane and tainted nodes never). Off: only nodes labelled "
            "quantfleet.io/cpu-serving=true; a node labelled false never."
        ),
    )
    cpu_cores_per_replica: int = Field(
        default=DEFAULT_CPU_CORES_PER_REPLICA,
        ge=1,
        description=(
            "CPUs of a CPU replica, requests equal to limits (Guaranteed: the kubelet's static "
            "CPU manager can pin them to one NUMA node); vLLM binds its threads to them."
        ),
    )
    cpu_kv_cache_gib: int = Field(
        default=DEFAULT_CPU_KV_CACHE_GIB,
        ge=1,
        description="VLLM_CPU_KVCACHE_SPACE of a CPU replica: GiB of host RAM, in its memory.",
    )
    cpu_vllm_image: str = Field(
        default="ghcr.io/quantfleet/quantfleet-vllm-cpu:0.1.0",
        description=(
            "vLLM image of CPU replicas (the Dockerfile's vllm-cpu target: the locked serving "
            "environment the tests serve with) unless spec.serving.image names one."
        ),
    )
    kueue_queue_name: str | None = kueue_queue_field(
        "Kueue LocalQueue (in each object's namespace) that the quantize, evaluate and "
        "benchmark Jobs are submitted to: created suspended with kueue.x-k8s.io/queue-name, "
        "Kueue unsuspends them when the queue's quota admits them. A spec's queueName wins. "
        "Unset, Jobs start at once."
    )
    placement_policy: PlacementPolicy = Field(
        default=PlacementPolicy.BEST_FIT,
        description="The placement policy of models whose spec names none.",
    )
    gpu_costs: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description=(
            "Cost of one GPU (any unit, e.g. per hour) by nvidia.com/gpu.product or GPU family, "
            "for the Cheapest policy."
        ),
    )


def read_gpu_costs(path: Path) -> dict[str, float]:
    """A GPU cost file (YAML: product or family -> cost of one GPU), e.g. a mounted ConfigMap
    key. Raises ValueError naming the file when it is not such a mapping."""
    try:
        costs: dict[str, float] = TypeAdapter(dict[str, PositiveFloat]).validate_python(
            yaml.safe_load(path.read_text()) or {}
        )
    except (yaml.YAMLError, ValidationError) as error:
        raise ValueError(
            f"{path}: not a map of GPU product or family to a positive cost"
        ) from error
    return costs
