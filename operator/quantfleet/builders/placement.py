"""Pod scheduling terms, written in one place for every GPU pod: a required node affinity
admitting only GPUs that run the scheme (by compute capability or family and memory labels, never
the product string, §4), a preferred affinity ranking them for the objective, GPU tolerations and
`nvidia.com/gpu` requests. Fed by a QuantizedModel's Plan, a BenchmarkRun's BaselinePlan, or a
bare memory floor for Jobs that take any GPU. A CPU plan's pods instead require the Node Feature
Discovery labels of the CPU levels it admits, on serving CPU nodes only, and request CPUs and
memory (requests equal to limits: Guaranteed, so the kubelet may pin the cores to one NUMA node).

Pure: a plan in, Kubernetes JSON (camelCase) out, ready to merge into a pod spec.
"""

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Any

from quantfleet.api.enums import CpuLevel
from quantfleet.planning.baseline import BaselinePlan
from quantfleet.planning.capacity import CpuSizing
from quantfleet.planning.cpu import LABEL_CPU_VENDOR, level_labels
from quantfleet.planning.inventory import (
    GPU_RESOURCE,
    LABEL_COMPUTE_MAJOR,
    LABEL_COMPUTE_MINOR,
    LABEL_CONTROL_PLANE,
    LABEL_CPU_SERVING,
    LABEL_FAMILY,
    LABEL_GPU_PRESENT,
    LABEL_MEMORY_MIB,
    CpuPool,
    GpuPool,
    Taint,
)
from quantfleet.planning.planner import Plan

Json = dict[str, Any]


def build_pod_placement(plan: Plan | BaselinePlan) -> Json:
    """`affinity` and `tolerations` for the pod spec of every replica of `plan`."""
    if plan.cpu is not None:
        return {"affinity": {"nodeAffinity": build_cpu_node_affinity(plan)}, "tolerations": []}
    return {
        "affinity": {"nodeAffinity": build_node_affinity(plan)},
        "tolerations": build_tolerations(plan),
    }


def build_any_gpu_placement(min_gpu_memory_mib: int, gpu_taints: Iterable[Taint]) -> Json:
    """`affinity` and `tolerations` for a pod that takes one GPU of any kind with at least
    `min_gpu_memory_mib` (none when 0), tolerating `gpu_taints`."""
    present = [_expression(LABEL_GPU_PRESENT, "In", ["true"])]
    return {
        "affinity": {"nodeAffinity": _node_affinity([present], min_gpu_memory_mib)},
        "tolerations": _tolerations(gpu_taints),
    }


def build_resources(plan: Plan | BaselinePlan) -> Json:
    """The container's `resources`: whole GPUs, requests equal to limits as extended resources
    require; for a CPU plan its cores and memory, requests equal to limits."""
    if plan.cpu is not None:
        return build_cpu_resources(plan.cpu)
    gpus = {GPU_RESOURCE: str(plan.gpus_per_replica)}
    return {"requests": dict(gpus), "limits": dict(gpus)}


def build_cpu_resources(sizing: CpuSizing) -> Json:
    """Whole cores and the replica's memory, requests equal to limits (Guaranteed QoS)."""
    wanted = {"cpu": str(sizing.cores), "memory": f"{sizing.memory_bytes // 2**30}Gi"}
    return {"requests": dict(wanted), "limits": dict(wanted)}


def build_cpu_node_affinity(plan: Plan | BaselinePlan) -> Json:
    """Required: a serving CPU node (no GPU, no control plane, not opted out) at one of the
    plan's CPU levels, by its NFD labels. Preferred: the plan's CPU pools, best first (a
    BaselinePlan admits its pools alike)."""
    if isinstance(plan, BaselinePlan):
        weighted = [(pool, 1) for pool in plan.cpu_pools]
    else:
        weighted = [(t.pool, t.weight) for t in plan.targets if isinstance(t.pool, CpuPool)]
    pools = [pool for pool, _ in weighted]
    affinity: Json = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": _cpu_selector(pool)} for pool in pools]
        }
    }
    if isinstance(plan, Plan) and len(pools) > 1:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": weight, "preference": {"matchExpressions": _cpu_levels(p.level, p.vendor)}}
            for p, weight in weighted
        ]
    return affinity


def build_any_cpu_placement(labelled: bool) -> Json:
    """`affinity` for a Job on any serving CPU node (NFD-labelled AVX2 or newer); `labelled`:
    only nodes opted in by label serve (the cpu_nodes setting is off)."""
    term = [*_cpu_levels(CpuLevel.AVX2), *_serving_cpu_node(labelled)]
    required = {"nodeSelectorTerms": [{"matchExpressions": term}]}
    return {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}},
        "tolerations": [],
    }


def _cpu_selector(pool: CpuPool) -> list[Json]:
    """The pool's level and vendor labels on a node that serves on CPUs."""
    return [*_cpu_levels(pool.level, pool.vendor), *_serving_cpu_node(pool.labelled)]


def _serving_cpu_node(labelled: bool) -> list[Json]:
    """No GPU, no control plane, and opted in by label when every node is (otherwise not opted
    out: the cpu_nodes setting let it in)."""
    opted = (
        _expression(LABEL_CPU_SERVING, "In", ["true"])
        if labelled
        else _expression(LABEL_CPU_SERVING, "NotIn", ["false"])
    )
    return [
        {"key": LABEL_GPU_PRESENT, "operator": "DoesNotExist"},
        {"key": LABEL_CONTROL_PLANE, "operator": "DoesNotExist"},
        opted,
    ]


def _cpu_levels(level: CpuLevel, vendor: str = "unknown") -> list[Json]:
    by_vendor = [] if vendor == "unknown" else [_expression(LABEL_CPU_VENDOR, "In", [vendor])]
    return [*(_expression(label, "In", ["true"]) for label in level_labels(level)), *by_vendor]


def build_node_affinity(plan: Plan | BaselinePlan) -> Json:
    """Required: a compatible GPU with enough memory for its share. Preferred: the plan's targets,
    best first, so the scheduler picks the better GPU when it has a choice (a BaselinePlan has
    no ranking: it admits its family's pools alike)."""
    if isinstance(plan, BaselinePlan):
        return _node_affinity(_gpu_selectors(plan.pools), plan.min_gpu_memory_mib)
    pools = [target.pool for target in plan.targets if isinstance(target.pool, GpuPool)]
    preferred = [(t.pool, t.weight) for t in plan.targets if isinstance(t.pool, GpuPool)]
    return _node_affinity(
        _gpu_selectors(pools), plan.min_gpu_memory_mib, preferred if len(preferred) > 1 else ()
    )


def build_tolerations(plan: Plan | BaselinePlan) -> list[Json]:
    """Tolerate the GPU taints (`nvidia.com/...`) of the target nodes, whatever their value."""
    return _tolerations(plan.gpu_taints)


def _node_affinity(
    selectors: list[list[Json]],
    min_gpu_memory_mib: int,
    preferred: Sequence[tuple[GpuPool, int]] = (),
) -> Json:
    """One required term per selector, each with the memory floor; preferred terms by weight."""
    required = {
        "nodeSelectorTerms": [
            {"matchExpressions": [*selector, *_memory_floor(min_gpu_memory_mib)]}
            for selector in selectors
        ]
    }
    affinity: Json = {"requiredDuringSchedulingIgnoredDuringExecution": required}
    if preferred:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {
                "weight": weight,
                "preference": {
                    "matchExpressions": [
                        *_pool_selector(pool),
                        _expression(LABEL_MEMORY_MIB, "In", [str(pool.memory_mib)]),
                    ]
                },
            }
            for pool, weight in preferred
        ]
    return affinity


def _memory_floor(min_gpu_memory_mib: int) -> list[Json]:
    """At least `min_gpu_memory_mib` per GPU (Gt is strict), or no floor when 0. A fresh dict per
    call, so no two places in the manifest share one object."""
    if min_gpu_memory_mib <= 0:
        return []
    return [_expression(LABEL_MEMORY_MIB, "Gt", [str(min_gpu_memory_mib - 1)])]


def _tolerations(gpu_taints: Iterable[Taint]) -> list[Json]:
    keys = dict.fromkeys((taint.key, taint.effect) for taint in gpu_taints)
    return [{"key": key, "operator": "Exists", "effect": effect} for key, effect in keys]


def _gpu_selectors(pools: Iterable[GpuPool]) -> list[list[Json]]:
    """One selector per GPU major version (compute capability labels), plus one on the family
    label for nodes that carry only that (§4: the family follows from the capability)."""
    pools = list(pools)
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
