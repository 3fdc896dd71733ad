"""GPU nodes and inventories, shaped like the Node objects GPU Feature Discovery labels (§4).

The catalogue is the simulated fleet's (quantfleet/testbed/fleet.yaml), keyed by pool name, plus
the kinds that fleet does not hold. Plain functions, so hypothesis strategies can use them too.
"""

from typing import Any

from quantfleet.planning.inventory import Inventory, build_inventory
from quantfleet.testbed.fleet import GPU_RESOURCE, GpuSpec, build_nodes, gpu_labels, load_fleet

Node = dict[str, Any]
FLEET = load_fleet()
# V100 (volta 7.0), the smaller Ampere and Ada parts, and an RTX PRO 6000-class consumer
# Blackwell (12.0): every family and both Blackwell majors.
NOT_IN_THE_FLEET = {
    "v100": GpuSpec(
        product="Tesla-V100-SXM2-32GB", family="volta", computeMajor=7, computeMinor=0,
        memoryMiB=32768, count=8,
    ),
    "a10g": GpuSpec(
        product="NVIDIA-A10G", family="ampere", computeMajor=8, computeMinor=6, memoryMiB=23028,
        count=8,
    ),
    "a100-40gb": GpuSpec(
        product="NVIDIA-A100-SXM4-40GB", family="ampere", computeMajor=8, computeMinor=0,
        memoryMiB=40960, count=8,
    ),
    "l4": GpuSpec(
        product="NVIDIA-L4", family="ada-lovelace", computeMajor=8, computeMinor=9,
        memoryMiB=23034, count=8,
    ),
    "rtx-pro-6000": GpuSpec(
        product="NVIDIA-RTX-PRO-6000", family="blackwell", computeMajor=12, computeMinor=0,
        memoryMiB=97887, count=8,
    ),
}  # fmt: skip
GPU_CATALOG: dict[str, GpuSpec] = {
    **{pool.name: pool.gpu for pool in FLEET.pools if pool.gpu},
    **NOT_IN_THE_FLEET,
}
# The short names tests use for catalogue kinds.
ALIASES = {"a100": "a100-80gb"}
GPU_TAINT: dict[str, str] = next(
    taint.model_dump() for pool in FLEET.pools for taint in pool.taints if taint.key == GPU_RESOURCE
)
# The simulated fleet itself, as Node objects and as the planner's inventory.
DEV_FLEET: list[Node] = build_nodes(FLEET)
DEV_INVENTORY = build_inventory(DEV_FLEET)


def gpu_spec(gpu: str) -> GpuSpec:
    """A catalogue kind by pool name or alias ("h100", "a100", "a100-40gb")."""
    return GPU_CATALOG[ALIASES.get(gpu, gpu)]


def make_node(
    gpu: str = "h100",
    *,
    name: str | None = None,
    gpus: int = 8,
    taints: list[dict[str, str]] | None = None,
    labels: dict[str, str | None] | None = None,
    allocatable: str | None = None,
    unschedulable: bool = False,
) -> Node:
    """A Node as the API returns it, named after its kind unless `name` is given; `labels`
    overrides GFD labels (None removes one)."""
    merged: dict[str, str | None] = {
        **gpu_labels(gpu_spec(gpu)),
        "nvidia.com/gpu.count": str(gpus),
        **(labels or {}),
    }
    capacity = {"cpu": "64", GPU_RESOURCE: str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name or gpu,
            "labels": {k: v for k, v in merged.items() if v is not None},
        },
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {
            "capacity": capacity,
            "allocatable": {**capacity, GPU_RESOURCE: allocatable or str(gpus)},
        },
    }


def make_fleet(*kinds: str | tuple[str, int], nodes_each: int = 1) -> list[Node]:
    """Nodes for GPU kinds given as "h100" (8 GPUs/node) or ("l4", 1)."""
    fleet = []
    for kind in kinds:
        gpu, gpus = (kind, 8) if isinstance(kind, str) else kind
        fleet += [make_node(gpu, name=f"{gpu}-{gpus}x-{i}", gpus=gpus) for i in range(nodes_each)]
    return fleet


def make_inventory(*kinds: str | tuple[str, int]) -> Inventory:
    return build_inventory(make_fleet(*kinds))
