"""The cluster's GPUs and serving CPUs as the planner sees them: GPUs from GPU Feature Discovery
node labels, CPUs from Node Feature Discovery's cpuid labels (planning.cpu), with what the pods
bound to each node hold.

Labels and resource names: ../shared/reference/quantization.md §4. Selection never relies on the
product string (it varies by form factor and driver); unknown products work through the compute
capability and memory labels. A node without GPUs serves only where the cluster opts in: the
operator's `cpu_nodes` setting, or the node's `quantfleet.io/cpu-serving=true` label.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any, Final, NamedTuple

from kubernetes.utils import parse_quantity

from quantfleet.api.enums import CpuLevel, GpuFamily
from quantfleet.planning.cpu import LABEL_CPU_VENDOR, cpu_level
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

# A node without GPUs opts in (or, with "false", out) of CPU serving with this label.
LABEL_CPU_SERVING: Final = "quantfleet.io/cpu-serving"
# Never a serving node, whatever the settings say.
LABEL_CONTROL_PLANE: Final = "node-role.kubernetes.io/control-plane"

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
class CpuNode:
    """One node without GPUs that serves on its CPUs."""

    name: str
    level: CpuLevel
    vendor: str  # cpu-model.vendor_id: GenuineIntel, AuthenticAMD, ...
    cores: int  # allocatable CPUs, whole
    memory_bytes: int  # allocatable memory
    held: "Held"  # by the pods bound to it now (the model being planned aside)
    labelled: bool = True  # opted in by its own label, not only by the cpu_nodes setting

    @property
    def free_cores(self) -> int:
        return max(self.cores - math.ceil(self.held.millicores / 1000), 0)

    @property
    def free_memory_bytes(self) -> int:
        return max(self.memory_bytes - self.held.memory_bytes, 0)

    def fits(self, cores: int, memory_bytes: int) -> bool:
        """Whether one replica fits the node when it is empty."""
        return self.cores >= cores and self.memory_bytes >= memory_bytes

    def free_replicas(self, cores: int, memory_bytes: int) -> int:
        return min(self.free_cores // cores, self.free_memory_bytes // memory_bytes)


@dataclass(frozen=True)
class UnlabelledCpuNode:
    """A node without GPUs that Node Feature Discovery labels as able to serve but that has not
    opted in: named in messages, since a missing label is the usual reason no CPU node serves."""

    name: str


@dataclass(frozen=True)
class CpuPool:
    """Serving CPU nodes of one instruction-set level and vendor."""

    level: CpuLevel
    vendor: str
    nodes: tuple[CpuNode, ...]

    @property
    def max_memory_bytes(self) -> int:
        return max(node.memory_bytes for node in self.nodes)

    @property
    def labelled(self) -> bool:
        """Whether every node opted in by label (placement may then require the label)."""
        return all(node.labelled for node in self.nodes)

    def fits(self, cores: int, memory_bytes: int) -> bool:
        """Whether some node of the pool holds one replica when empty."""
        return any(node.fits(cores, memory_bytes) for node in self.nodes)

    def free_replicas(self, cores: int, memory_bytes: int) -> int:
        return sum(node.free_replicas(cores, memory_bytes) for node in self.nodes)

    def describe(self) -> str:
        """`cpu amx (GenuineIntel), up to 112 cores and 512 GiB/node (2 nodes, 200 cores free)`."""
        cores = max(node.cores for node in self.nodes)
        free = sum(node.free_cores for node in self.nodes)
        return (
            f"cpu {self.level} ({self.vendor}), up to {cores} cores and "
            f"{self.max_memory_bytes / 2**30:.0f} GiB/node ({len(self.nodes)} nodes, "
            f"{free} cores free)"
        )


def _gpu_pools(nodes: Iterable[GpuNode]) -> tuple[GpuPool, ...]:
    """Usable nodes grouped by GPU kind, newest compute capability and most memory first."""

    def kind(n: GpuNode) -> tuple[ComputeCapability, int, str, bool]:
        return (n.compute_capability, n.memory_mib, n.family, n.labelled_compute_capability)

    ordered = sorted(nodes, key=kind, reverse=True)
    return tuple(
        GpuPool(cc, GpuFamily(family), memory, labelled, tuple(members))
        for (cc, memory, family, labelled), members in groupby(ordered, key=kind)
    )


def _cpu_pools(nodes: Iterable[CpuNode]) -> tuple[CpuPool, ...]:
    """Serving CPU nodes grouped by level and vendor, newest level first."""

    def kind(n: CpuNode) -> tuple[int, str]:
        return (n.level.rank, n.vendor)

    ordered = sorted(nodes, key=kind, reverse=True)
    return tuple(
        CpuPool(list(CpuLevel)[rank], vendor, tuple(members))
        for (rank, vendor), members in groupby(ordered, key=kind)
    )


@dataclass(frozen=True)
class Inventory:
    nodes: tuple[GpuNode, ...]
    skipped: tuple[SkippedNode, ...] = ()
    cpu_nodes: tuple[CpuNode, ...] = ()
    unlabelled_cpu_nodes: tuple[UnlabelledCpuNode, ...] = ()
    # Grouped once when built: a pass asks several times, and an inventory never changes (not a
    # functools.cached_property, whose lock in Python 3.11 serialises every thread's first read).
    pools: tuple[GpuPool, ...] = field(init=False)
    cpu_pools: tuple[CpuPool, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pools", _gpu_pools(self.nodes))
        object.__setattr__(self, "cpu_pools", _cpu_pools(self.cpu_nodes))

    @property
    def families(self) -> tuple[GpuFamily, ...]:
        """Families present, oldest first."""
        present = {node.family for node in self.nodes}
        return tuple(family for family in GpuFamily if family in present)

    def describe_cpus(self) -> str:
        """One line naming every kind of serving CPU node present."""
        if not self.cpu_nodes:
            return _no_serving_cpus(self.unlabelled_cpu_nodes)
        return _bounded(pool.describe() for pool in self.cpu_pools)

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
    None when the node has no GPUs at all (it may still serve on its CPUs: read_cpu_node)."""
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


def read_cpu_node(
    node: Mapping[str, Any], held: "Held | None" = None, cpu_nodes: bool = False
) -> CpuNode | SkippedNode | None:
    """Read a Node without GPUs as a serving CPU node, `held` taken by its pods. None when it
    does not serve: not opted in (`cpu_nodes` for all, or its own label), a control-plane node.
    Skipped (with why) when it opted in but cannot serve."""
    metadata = node.get("metadata") or {}
    spec = node.get("spec") or {}
    labels: Mapping[str, str] = metadata.get("labels") or {}
    opted = labels.get(LABEL_CPU_SERVING)
    if opted == "false" or not (cpu_nodes or opted == "true") or LABEL_CONTROL_PLANE in labels:
        return None
    name = str(metadata.get("name", "<unnamed>"))
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    level = cpu_level(labels)
    if level is None:
        return SkippedNode(name, "no Node Feature Discovery cpuid labels (AVX2 or newer)")
    if spec.get("unschedulable"):
        return SkippedNode(name, "cordoned (spec.unschedulable)")
    hard = [t for t in spec.get("taints") or () if t.get("effect") in HARD_TAINT_EFFECTS]
    if hard:
        return SkippedNode(name, f"reserved by taint {hard[0].get('key')}")
    try:
        cores = int(parse_quantity(allocatable.get("cpu", "0")))
        memory = int(parse_quantity(allocatable.get("memory", "0")))
    except ValueError:
        return SkippedNode(name, "unreadable allocatable cpu or memory")
    if cores < 1 or memory < 1:
        return SkippedNode(name, "no allocatable cpu or memory")
    return CpuNode(
        name=name,
        level=level,
        vendor=labels.get(LABEL_CPU_VENDOR, "unknown"),
        cores=cores,
        memory_bytes=memory,
        held=held or Held(),
        labelled=opted == "true",
    )


def read_unlabelled_cpu_node(node: Mapping[str, Any]) -> UnlabelledCpuNode | None:
    """A Node without GPUs that would serve on its CPUs but carries neither value of the opt-in
    label (read_cpu_node found it not serving); None for any other node. A node labelled false
    or a control-plane node stays out of it: opting those in is not the fix."""
    metadata = node.get("metadata") or {}
    labels: Mapping[str, str] = metadata.get("labels") or {}
    if labels.get(LABEL_CPU_SERVING) in ("true", "false") or LABEL_CONTROL_PLANE in labels:
        return None
    if cpu_level(labels) is None:
        return None
    return UnlabelledCpuNode(str(metadata.get("name", "<unnamed>")))


def _no_serving_cpus(unlabelled: tuple[UnlabelledCpuNode, ...]) -> str:
    """Why no CPU node serves and how to opt nodes in, naming the nodes that lack only the
    label: NFD labels them on its own, the opt-in is the step a cluster forgets."""
    opt_in = f"{LABEL_CPU_SERVING}=true"
    if not unlabelled:
        return f"no CPU nodes opted in to serving ({opt_in} or the operator's --cpu-nodes)"
    count = f"{len(unlabelled)} node{'s' if len(unlabelled) > 1 else ''}"
    names = _bounded((node.name for node in unlabelled), separator=", ")
    return (
        f"no CPU nodes opted in to serving: {count} with Node Feature Discovery cpuid labels "
        f"but without {opt_in} ({names}); label those that should serve "
        f"(`kubectl label node {unlabelled[0].name} {opt_in}`) or serve every such node with "
        "the operator's --cpu-nodes"
    )


def build_inventory(
    nodes: Iterable[Mapping[str, Any]],
    held: Mapping[str, "Held"] | None = None,
    cpu_nodes: bool = False,
) -> Inventory:
    """The inventory of a list of Node objects, with what pods hold per node name: GPU nodes,
    and the nodes without GPUs that serve on CPUs (all with NFD labels when `cpu_nodes`,
    otherwise those labelled quantfleet.io/cpu-serving=true) or lack only that label."""
    taken = held or {}
    gpu: list[GpuNode] = []
    cpu: list[CpuNode] = []
    skipped: list[SkippedNode] = []
    unlabelled: list[UnlabelledCpuNode] = []
    for node in nodes:
        read = _read_node(node, cpu_nodes, taken.get((node.get("metadata") or {}).get("name", "")))
        if isinstance(read, GpuNode):
            gpu.append(read)
        elif isinstance(read, CpuNode):
            cpu.append(read)
        elif isinstance(read, SkippedNode):
            skipped.append(read)
        elif isinstance(read, UnlabelledCpuNode):
            unlabelled.append(read)
    return Inventory(
        nodes=tuple(gpu),
        skipped=tuple(skipped),
        cpu_nodes=tuple(cpu),
        unlabelled_cpu_nodes=tuple(unlabelled),
    )


# Nodes as read, with what pods hold on them, by (uid, resourceVersion, cpu_nodes, held): a pass
# plans against every node, and a node and what is held on it change far less often than passes
# run (a thousand models against 238 nodes spent half of each pass reading them again, then a
# third copying each into a node with its pods' GPUs). Emptied when full: each pass adds about one
# (the node holding its own model's pods, left out), each a few hundred bytes.
ReadNode = GpuNode | CpuNode | SkippedNode | UnlabelledCpuNode | None
_read: dict[tuple[object, object, bool, "Held | None"], ReadNode] = {}
_READ_KEPT = 2_000


def _read_node(node: Mapping[str, Any], cpu_nodes: bool, held: "Held | None") -> ReadNode:
    """A node as read_gpu_node, read_cpu_node or read_unlabelled_cpu_node read it, `held` taken
    by its pods, once per version and holding."""
    metadata = node.get("metadata") or {}
    key = (metadata.get("uid"), metadata.get("resourceVersion"), cpu_nodes, held)
    if key[1] is not None and key in _read:
        return _read[key]
    read = (
        read_gpu_node(node)
        or read_cpu_node(node, None, cpu_nodes)
        or read_unlabelled_cpu_node(node)
    )
    if held is not None and isinstance(read, GpuNode):
        read = replace(read, requested_gpus=held.gpus)
    elif held is not None and isinstance(read, CpuNode):
        read = replace(read, held=held)
    if key[1] is not None:
        if len(_read) >= _READ_KEPT:
            _read.clear()
        _read[key] = read
    return read


def _bounded(items: Iterable[str], shown: int = 3, separator: str = "; ") -> str:
    """Join the first few items and count the rest: condition messages must stay short."""
    listed = list(items)
    more = f"{separator}and {len(listed) - shown} more" if len(listed) > shown else ""
    return separator.join(listed[:shown]) + more


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


class Held(NamedTuple):
    """What pods request on a node: GPUs, CPU (millicores) and memory (bytes)."""

    gpus: int = 0
    millicores: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True)
class HeldPod:
    """A pod holding GPUs, CPU or memory on a node: what free capacity is computed from."""

    namespace: str
    name: str
    node: str
    gpus: int
    model: str | None = None  # its QuantizedModel (the model label), if one of ours
    millicores: int = 0
    memory_bytes: int = 0


# Pods in these phases hold nothing: the scheduler no longer counts their requests.
_DONE_PHASES = frozenset({"Succeeded", "Failed"})


def read_held_pod(pod: Mapping[str, Any], model_label: str) -> HeldPod | None:
    """A bound, unfinished pod's requests of GPUs, CPU and memory (per resource the larger of
    its containers' sum and any init container's, as the scheduler counts them); None when it
    requests none of them."""
    spec = pod.get("spec") or {}
    metadata = pod.get("metadata") or {}
    node = spec.get("nodeName")
    if not node or (pod.get("status") or {}).get("phase") in _DONE_PHASES:
        return None
    containers = spec.get("containers") or ()
    inits = spec.get("initContainers") or ()

    def held(resource: str, scale: int) -> int:
        def wanted(container: Mapping[str, Any]) -> int:
            resources = container.get("resources") or {}
            value = (resources.get("requests") or {}).get(resource) or (
                resources.get("limits") or {}
            ).get(resource)
            return _quantity(value, scale)

        running = sum(wanted(c) for c in containers)
        return max(running, max((wanted(c) for c in inits), default=0))

    gpus, millicores, memory = held(GPU_RESOURCE, 1), held("cpu", 1000), held("memory", 1)
    if not (gpus or millicores or memory):
        return None
    return HeldPod(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        node=str(node),
        gpus=gpus,
        model=(metadata.get("labels") or {}).get(model_label),
        millicores=millicores,
        memory_bytes=memory,
    )


def requested(
    pods: Iterable[HeldPod], *, namespace: str = "", model: str | None = None
) -> dict[str, Held]:
    """What pods request per node, leaving out the pods of `model` in `namespace` (a model
    being planned again must not see its own replicas and Jobs as taken)."""
    # Summed as plain integers: every pass sums every pod in the fleet.
    sums: dict[str, list[int]] = {}
    for pod in pods:
        if model is not None and pod.model == model and pod.namespace == namespace:
            continue
        total = sums.setdefault(pod.node, [0, 0, 0])
        total[0] += pod.gpus
        total[1] += pod.millicores
        total[2] += pod.memory_bytes
    return {node: Held(*total) for node, total in sums.items()}


def _quantity(value: object, scale: int) -> int:
    """A resource quantity (`2`, `500m`, `64Gi`) times `scale`, rounded up; 0 when unreadable."""
    if value is None:
        return 0
    try:
        amount: int = math.ceil(parse_quantity(value) * scale)  # parse_quantity is untyped
        return amount
    except ValueError:
        return 0
