"""The cluster's GPUs as the planner sees them, read from GPU Feature Discovery node labels.

Labels and resource names: ../shared/reference/quantization.md §4. Selection never relies on the
product string (it varies by form factor and driver); unknown products work through the compute
capability and memory labels.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Final

from quantfleet.api.enums import GpuFamily
from quantfleet.planning.gpu import ComputeCapability, family_floor, family_of

# §4: GFD labels and the schedulable resource.
GPU_RESOURCE: Final = "nvidia.com/gpu"
LABEL_FAMILY: Final = "nvidia.com/gpu.family"
LABEL_COMPUTE_MAJOR: Final = "nvidia.com/gpu.compute.major"
LABEL_COMPUTE_MINOR: Final = "nvidia.com/gpu.compute.minor"
LABEL_MEMORY_MIB: Final = "nvidia.com/gpu.memory"
LABEL_COUNT: Final = "nvidia.com/gpu.count"
LABEL_PRODUCT: Final = "nvidia.com/gpu.product"
LABEL_GPU_PRESENT: Final = "nvidia.com/gpu.present"  # "true" on every node with a GPU

# Taints under this domain guard GPUs (the GPU operator's `nvidia.com/gpu`); a GPU workload
# tolerates them. Any other hard taint reserves the node for something else and rules it out.
GPU_TAINT_DOMAIN: Final = "nvidia.com/"
HARD_TAINT_EFFECTS: Final = frozenset({"NoSchedule", "NoExecute"})


@dataclass(frozen=True)
class Taint:
    key: str
    value: str | None
    effect: str

    @property
    def is_hard(self) -> bool:
        return self.effect in HARD_TAINT_EFFECTS

    @property
    def is_gpu(self) -> bool:
        return self.key.startswith(GPU_TAINT_DOMAIN)

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclass(frozen=True)
class GpuNode:
    """One schedulable node with GPUs of a single kind."""

    name: str
    compute_capability: ComputeCapability
    family: GpuFamily
    memory_mib: int
    gpus: int  # allocatable nvidia.com/gpu
    taints: tuple[Taint, ...] = ()
    product: str | None = None
    # False when the node carries only the family label: placement then selects on the family,
    # since compute-capability selectors would not match it.
    labelled_compute_capability: bool = True
    requested_gpus: int = 0  # by the pods bound to it now (the model being planned aside)

    @property
    def free_gpus(self) -> int:
        return max(self.gpus - self.requested_gpus, 0)


@dataclass(frozen=True)
class SkippedNode:
    """A node that has GPUs but cannot take our workloads, and why (goes into messages)."""

    name: str
    reason: str


@dataclass(frozen=True)
class GpuPool:
    """Nodes with the same kind of GPU: same compute capability, family and memory."""

    compute_capability: ComputeCapability
    family: GpuFamily
    memory_mib: int
    labelled_compute_capability: bool
    nodes: tuple[GpuNode, ...]

    @property
    def max_gpus_per_node(self) -> int:
        return max(node.gpus for node in self.nodes)

    @property
    def free_gpus(self) -> int:
        return sum(node.free_gpus for node in self.nodes)

    @property
    def gpus(self) -> int:
        return sum(node.gpus for node in self.nodes)

    def free_replicas(self, gpus_per_replica: int) -> int:
        """How many replicas of `gpus_per_replica` GPUs (each on one node) fit its free GPUs."""
        return sum(node.free_gpus // gpus_per_replica for node in self.nodes)

    @property
    def gpu_taints(self) -> tuple[Taint, ...]:
        """The GPU taints a pod must tolerate to land on any node of this pool."""
        return tuple(sorted({t for n in self.nodes for t in n.taints if t.is_gpu}, key=str))

    def describe(self) -> str:
        """`hopper 9.0, 80 GiB, up to 8 GPUs/node (2 nodes, 5 of 16 GPUs free)`."""
        return (
            f"{self.family} {self.compute_capability}, {self.memory_mib / 1024:.0f} GiB, "
            f"up to {self.max_gpus_per_node} GPUs/node ({len(self.nodes)} nodes, "
            f"{self.free_gpus} of {self.gpus} GPUs free)"
        )


@dataclass(frozen=True)
class GpuInventory:
    nodes: tuple[GpuNode, ...]
    skipped: tuple[SkippedNode, ...] = ()

    @property
    def pools(self) -> tuple[GpuPool, ...]:
        """Usable nodes grouped by GPU kind, newest compute capability and most memory first."""

        def kind(n: GpuNode) -> tuple[ComputeCapability, int, str, bool]:
            return (n.compute_capability, n.memory_mib, n.family, n.labelled_compute_capability)

        ordered = sorted(self.nodes, key=kind, reverse=True)
        return tuple(
            GpuPool(cc, GpuFamily(family), memory, labelled, tuple(members))
            for (cc, memory, family, labelled), members in groupby(ordered, key=kind)
        )

    @property
    def families(self) -> tuple[GpuFamily, ...]:
        """Families present, oldest first."""
        present = {node.family for node in self.nodes}
        return tuple(family for family in GpuFamily if family in present)

    def describe(self) -> str:
        """One line naming every kind of GPU present, for reasons users act on."""
        if not self.nodes:
            if not self.skipped:
                return "no GPU nodes"
            return (
                f"no usable GPU nodes ({_bounded(f'{s.name}: {s.reason}' for s in self.skipped)})"
            )
        return _bounded(pool.describe() for pool in self.pools)


def read_gpu_node(node: Mapping[str, Any], requested_gpus: int = 0) -> GpuNode | SkippedNode | None:
    """Read one Node object (Kubernetes JSON shape), `requested_gpus` of its GPUs taken by pods.
    None when the node has no GPUs at all."""
    metadata = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    name = str(metadata.get("name", "<unnamed>"))
    labels: Mapping[str, str] = metadata.get("labels") or {}

    gpus = _first_int(
        (status.get("allocatable") or {}).get(GPU_RESOURCE),
        (status.get("capacity") or {}).get(GPU_RESOURCE),
        labels.get(LABEL_COUNT),
    )
    has_gpu_labels = LABEL_COMPUTE_MAJOR in labels or LABEL_FAMILY in labels
    if not gpus:
        # MIG "mixed" nodes expose nvidia.com/mig-* instead of whole GPUs: not placeable here.
        return SkippedNode(name, f"no allocatable {GPU_RESOURCE}") if has_gpu_labels else None
    if spec.get("unschedulable"):
        return SkippedNode(name, "cordoned (spec.unschedulable)")

    cc, labelled = _compute_capability(labels)
    if cc is None:
        return SkippedNode(name, f"no {LABEL_COMPUTE_MAJOR}/{LABEL_FAMILY} label")
    family = family_of(cc)
    if family is None:
        return SkippedNode(name, f"compute capability {cc} is older than volta")
    memory_mib = _first_int(labels.get(LABEL_MEMORY_MIB))
    if not memory_mib:
        return SkippedNode(name, f"no {LABEL_MEMORY_MIB} label")

    taints = tuple(
        Taint(str(t.get("key", "")), t.get("value"), str(t.get("effect", "")))
        for t in spec.get("taints") or ()
    )
    foreign = [str(t) for t in taints if t.is_hard and not t.is_gpu]
    if foreign:
        return SkippedNode(name, f"reserved by taint {', '.join(foreign)}")
    return GpuNode(
        name=name,
        compute_capability=cc,
        family=family,
        memory_mib=memory_mib,
        gpus=gpus,
        taints=taints,
        product=labels.get(LABEL_PRODUCT),
        labelled_compute_capability=labelled,
        requested_gpus=requested_gpus,
    )


def build_inventory(
    nodes: Iterable[Mapping[str, Any]], requested_gpus: Mapping[str, int] | None = None
) -> GpuInventory:
    """The GPU inventory of a list of Node objects, with the GPUs pods request per node name;
    nodes without GPUs are left out."""
    requested = requested_gpus or {}
    read = [
        read_gpu_node(node, requested.get((node.get("metadata") or {}).get("name", ""), 0))
        for node in nodes
    ]
    return GpuInventory(
        nodes=tuple(n for n in read if isinstance(n, GpuNode)),
        skipped=tuple(n for n in read if isinstance(n, SkippedNode)),
    )


def _bounded(items: Iterable[str], shown: int = 3) -> str:
    """Join the first few items and count the rest: condition messages must stay short."""
    listed = list(items)
    more = f"; and {len(listed) - shown} more" if len(listed) > shown else ""
    return "; ".join(listed[:shown]) + more


def _compute_capability(labels: Mapping[str, str]) -> tuple[ComputeCapability | None, bool]:
    """From compute.major/minor; failing that the family's lowest capability (§4)."""
    major = _first_int(labels.get(LABEL_COMPUTE_MAJOR))
    if major is not None:
        return ComputeCapability(major, _first_int(labels.get(LABEL_COMPUTE_MINOR)) or 0), True
    family = labels.get(LABEL_FAMILY)
    if family in set(GpuFamily):
        return family_floor(GpuFamily(family)), False
    return None, False


def _first_int(*values: object) -> int | None:
    """The first value that reads as a non-negative integer (label or quantity string)."""
    for value in values:
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
    return None


@dataclass(frozen=True)
class GpuPod:
    """A pod holding GPUs on a node: what free capacity is computed from."""

    namespace: str
    name: str
    node: str
    gpus: int
    model: str | None = None  # its QuantizedModel (the model label), if one of ours


# Pods in these phases hold nothing: the scheduler no longer counts their requests.
_DONE_PHASES = frozenset({"Succeeded", "Failed"})


def read_gpu_pod(pod: Mapping[str, Any], model_label: str) -> GpuPod | None:
    """A bound, unfinished pod's GPU request (the larger of its containers' sum and any init
    container's, as the scheduler counts it); None when it holds no GPU."""
    spec = pod.get("spec") or {}
    metadata = pod.get("metadata") or {}
    node = spec.get("nodeName")
    if not node or (pod.get("status") or {}).get("phase") in _DONE_PHASES:
        return None

    def gpus(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        wanted = (resources.get("requests") or {}).get(GPU_RESOURCE) or (
            resources.get("limits") or {}
        ).get(GPU_RESOURCE)
        return _first_int(wanted) or 0

    running = sum(gpus(c) for c in spec.get("containers") or ())
    init = max((gpus(c) for c in spec.get("initContainers") or ()), default=0)
    held = max(running, init)
    if not held:
        return None
    return GpuPod(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        node=str(node),
        gpus=held,
        model=(metadata.get("labels") or {}).get(model_label),
    )


def requested_gpus(
    pods: Iterable[GpuPod], *, namespace: str = "", model: str | None = None
) -> dict[str, int]:
    """GPUs requested per node, leaving out the pods of `model` in `namespace` (a model being
    planned again must not see its own replicas and Jobs as taken)."""
    requested: dict[str, int] = {}
    for pod in pods:
        if model is not None and pod.namespace == namespace and pod.model == model:
            continue
        requested[pod.node] = requested.get(pod.node, 0) + pod.gpus
    return requested
