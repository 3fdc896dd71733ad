"""Pod scheduling terms for a plan: a required node affinity admitting only GPUs that run the
scheme (by compute capability or family and memory labels, never the product string, §4), a
preferred affinity ranking them for the objective, GPU tolerations and `nvidia.com/gpu` requests.

Pure: a plan in, Kubernetes JSON (camelCase) out, ready to merge into a pod spec.
"""

from collections.abc import Iterable
from itertools import groupby
from typing import Any

from quantfleet.planning.inventory import (
    GPU_RESOURCE,
    LABEL_COMPUTE_MAJOR,
    LABEL_COMPUTE_MINOR,
    LABEL_FAMILY,
    LABEL_MEMORY_MIB,
    GpuPool,
)
from quantfleet.planning.planner import Plan

Json = dict[str, Any]


def build_pod_placement(plan: Plan) -> Json:
    """`affinity` and `tolerations` for the pod spec of every replica of `plan`."""
    return {
        "affinity": {"nodeAffinity": build_node_affinity(plan)},
        "tolerations": build_tolerations(plan),
    }


def build_gpu_resources(plan: Plan) -> Json:
    """The container's `resources`: whole GPUs, requests equal to limits as extended resources
    require."""
    gpus = {GPU_RESOURCE: str(plan.gpus_per_replica)}
    return {"requests": dict(gpus), "limits": dict(gpus)}


def build_node_affinity(plan: Plan) -> Json:
    """Required: a compatible GPU with enough memory for its share. Preferred: the plan's targets,
    best first, so the scheduler picks the better GPU when it has a choice."""
    pools = [target.pool for target in plan.targets]
    # Gt is strict: the label must be at least the minimum. A fresh dict per term, so no two
    # places in the manifest share one object.
    minimum = str(plan.min_gpu_memory_mib - 1)
    required = {
        "nodeSelectorTerms": [
            {"matchExpressions": [*selector, _expression(LABEL_MEMORY_MIB, "Gt", [minimum])]}
            for selector in _gpu_selectors(pools)
        ]
    }
    affinity: Json = {"requiredDuringSchedulingIgnoredDuringExecution": required}
    if len(plan.targets) > 1:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {
                "weight": target.weight,
                "preference": {
                    "matchExpressions": [
                        *_pool_selector(target.pool),
                        _expression(LABEL_MEMORY_MIB, "In", [str(target.pool.memory_mib)]),
                    ]
                },
            }
            for target in plan.targets
        ]
    return affinity


def build_tolerations(plan: Plan) -> list[Json]:
    """Tolerate the GPU taints (`nvidia.com/...`) of the target nodes, whatever their value."""
    keys = dict.fromkeys((taint.key, taint.effect) for taint in plan.gpu_taints)
    return [{"key": key, "operator": "Exists", "effect": effect} for key, effect in keys]


def _gpu_selectors(pools: Iterable[GpuPool]) -> list[list[Json]]:
    """One selector per GPU major version (compute capability labels), plus one on the family
    label for nodes that carry only that (§4: the family follows from the capability)."""
    labelled = sorted({p.compute_capability for p in pools if p.labelled_compute_capability})
    selectors = [
        [
            _expression(LABEL_COMPUTE_MAJOR, "In", [str(major)]),
            _expression(LABEL_COMPUTE_MINOR, "In", sorted({str(cc.minor) for cc in group})),
        ]
        for major, group in groupby(labelled, key=lambda cc: cc.major)
    ]
    families = sorted({str(p.family) for p in pools if not p.labelled_compute_capability})
    if families:
        selectors.append([_expression(LABEL_FAMILY, "In", families)])
    return selectors


def _pool_selector(pool: GpuPool) -> list[Json]:
    if not pool.labelled_compute_capability:
        return [_expression(LABEL_FAMILY, "In", [str(pool.family)])]
    cc = pool.compute_capability
    return [
        _expression(LABEL_COMPUTE_MAJOR, "In", [str(cc.major)]),
        _expression(LABEL_COMPUTE_MINOR, "In", [str(cc.minor)]),
    ]


def _expression(key: str, operator: str, values: list[str]) -> Json:
    return {"key": key, "operator": operator, "values": values}
