"""Factories for GPU nodes and inventories, shaped like the Node objects GFD labels (§4).

Plain functions, so hypothesis strategies can use them too; conftest.py offers them as fixtures.
"""

from typing import Any

from quantfleet.planning.inventory import GpuInventory, build_inventory

# §4 of ../shared/reference/quantization.md, plus V100 (volta 7.0) and an RTX PRO 6000-class
# consumer Blackwell (12.0) to cover every family and both Blackwell majors.
GPU_CATALOG: dict[str, dict[str, Any]] = {
    "v100": {"product": "Tesla-V100-SXM2-32GB", "family": "volta", "cc": (7, 0), "mib": 32768},
    "t4": {"product": "Tesla-T4", "family": "turing", "cc": (7, 5), "mib": 15360},
    "a10g": {"product": "NVIDIA-A10G", "family": "ampere", "cc": (8, 6), "mib": 23028},
    "a6000": {"product": "NVIDIA-RTX-A6000", "family": "ampere", "cc": (8, 6), "mib": 49140},
    "a100-40gb": {
        "product": "NVIDIA-A100-SXM4-40GB",
        "family": "ampere",
        "cc": (8, 0),
        "mib": 40960,
    },
    "a100": {"product": "NVIDIA-A100-SXM4-80GB", "family": "ampere", "cc": (8, 0), "mib": 81920},
    "l4": {"product": "NVIDIA-L4", "family": "ada-lovelace", "cc": (8, 9), "mib": 23034},
    "l40s": {"product": "NVIDIA-L40S", "family": "ada-lovelace", "cc": (8, 9), "mib": 46068},
    "h100": {"product": "NVIDIA-H100-80GB-HBM3", "family": "hopper", "cc": (9, 0), "mib": 81559},
    "h200": {"product": "NVIDIA-H200", "family": "hopper", "cc": (9, 0), "mib": 143771},
    "b200": {"product": "NVIDIA-B200", "family": "blackwell", "cc": (10, 0), "mib": 183359},
    "rtx-pro-6000": {
        "product": "NVIDIA-RTX-PRO-6000",
        "family": "blackwell",
        "cc": (12, 0),
        "mib": 97887,
    },
}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def make_node(
    gpu: str = "h100",
    *,
    name: str | None = None,
    gpus: int = 8,
    taints: list[dict[str, str]] | None = None,
    labels: dict[str, str | None] | None = None,
    allocatable: str | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    """A Node as the API returns it; `labels` overrides GFD labels (None removes one)."""
    kind = GPU_CATALOG[gpu]
    merged: dict[str, str | None] = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": kind["product"],
        "nvidia.com/gpu.family": kind["family"],
        "nvidia.com/gpu.compute.major": str(kind["cc"][0]),
        "nvidia.com/gpu.compute.minor": str(kind["cc"][1]),
        "nvidia.com/gpu.memory": str(kind["mib"]),
        "nvidia.com/gpu.count": str(gpus),
        **(labels or {}),
    }
    capacity = {"cpu": "64", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name or f"{gpu}-0",
            "labels": {k: v for k, v in merged.items() if v is not None},
        },
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {
            "capacity": capacity,
            "allocatable": {**capacity, "nvidia.com/gpu": allocatable or str(gpus)},
        },
    }


def make_fleet(*kinds: str | tuple[str, int], nodes_each: int = 1) -> list[dict[str, Any]]:
    """Nodes for GPU kinds given as "h100" (8 GPUs/node) or ("l4", 1)."""
    fleet = []
    for kind in kinds:
        gpu, gpus = (kind, 8) if isinstance(kind, str) else kind
        fleet += [make_node(gpu, name=f"{gpu}-{gpus}x-{i}", gpus=gpus) for i in range(nodes_each)]
    return fleet


def make_inventory(*kinds: str | tuple[str, int]) -> GpuInventory:
    return build_inventory(make_fleet(*kinds))
