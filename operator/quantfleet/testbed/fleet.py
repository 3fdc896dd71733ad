"""The simulated GPU fleet: a declarative file of node pools, turned into kwok-managed Node
objects that carry GPU Feature Discovery labels and `nvidia.com/gpu` capacity."""

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quantfleet.planning.inventory import LABEL_CPU_SERVING

# kwok manages only the nodes carrying this annotation (`--manage-nodes-with-annotation-selector`),
# kwok's own convention, so a real node that joins by mistake is never faked.
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
# Says on every node, for people and tools alike, that it is no real machine.
SIMULATED_LABEL = "quantfleet.io/simulated"

POOL_LABEL = "quantfleet.io/node-pool"
GPU_RESOURCE = "nvidia.com/gpu"


class GpuSpec(BaseModel):
    """The GPUs of each node in a pool, as GPU Feature Discovery would label them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    product: str = Field(description="NVML product name with spaces as dashes, e.g. Tesla-T4")
    family: str = Field(description="Architecture family from compute capability, e.g. hopper")
    compute_major: int = Field(alias="computeMajor", ge=1, description="Compute capability major")
    compute_minor: int = Field(alias="computeMinor", ge=0, description="Compute capability minor")
    memory_mib: int = Field(alias="memoryMiB", gt=0, description="Memory per GPU in MiB")
    count: int = Field(gt=0, description="GPUs per node")


class Taint(BaseModel):
    """A node taint, as in the Node API."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="Taint key, e.g. nvidia.com/gpu")
    value: str = Field(default="", description="Taint value")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        description="What the taint does to pods that do not tolerate it"
    )


class NodePool(BaseModel):
    """Identical simulated nodes named `<fleet prefix>-<pool>-<index>`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Pool name")
    nodes: int = Field(gt=0, le=1000, description="Number of nodes in the pool")
    cpu: str = Field(default="16", description="CPU capacity per node")
    memory: str = Field(default="64Gi", description="Memory capacity per node")
    ephemeral_storage: str = Field(
        default="2Ti",
        alias="ephemeralStorage",
        description="Local disk per node (a quantize Job downloads its source there)",
    )
    pods: str = Field(default="110", description="Pod capacity per node")
    gpu: GpuSpec | None = Field(default=None, description="GPUs per node; none for CPU nodes")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra node labels")
    taints: list[Taint] = Field(default_factory=list, description="Node taints")


class Fleet(BaseModel):
    """A fleet file: the node pools to simulate."""

    model_config = ConfigDict(extra="forbid")

    name_prefix: str = Field(
        default="sim", alias="namePrefix", description="Prefix of every node name"
    )
    pools: list[NodePool] = Field(min_length=1, description="Node pools")

    def without_cpu_serving(self) -> "Fleet":
        """The fleet less its pools opted in to serving on CPUs (a real node takes their place)."""
        pools = [p for p in self.pools if p.labels.get(LABEL_CPU_SERVING) != "true"]
        return self.model_copy(update={"pools": pools})


class FleetFileError(ValueError):
    """A fleet file that cannot be read or does not match the format."""


def default_fleet_text() -> str:
    """The fleet file shipped with the package."""
    return resources.files("quantfleet.testbed").joinpath("fleet.yaml").read_text()


def load_fleet(path: Path | None = None) -> Fleet:
    """Read and validate a fleet file; the packaged default when `path` is None."""
    try:
        text = default_fleet_text() if path is None else path.read_text()
        return Fleet.model_validate(yaml.safe_load(text))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise FleetFileError(f"Fleet file {path or 'fleet.yaml (default)'}: {error}") from error


def gpu_labels(gpu: GpuSpec) -> dict[str, str]:
    """The labels GPU Feature Discovery sets for these GPUs."""
    return {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": gpu.product,
        "nvidia.com/gpu.family": gpu.family,
        "nvidia.com/gpu.compute.major": str(gpu.compute_major),
        "nvidia.com/gpu.compute.minor": str(gpu.compute_minor),
        "nvidia.com/gpu.memory": str(gpu.memory_mib),
        "nvidia.com/gpu.count": str(gpu.count),
    }


def build_nodes(fleet: Fleet) -> list[dict[str, Any]]:
    """Node manifests for every node of the fleet, status (capacity) included."""
    nodes = []
    for pool in fleet.pools:
        for index in range(pool.nodes):
            name = f"{fleet.name_prefix}-{pool.name}-{index}"
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                SIMULATED_LABEL: "true",
                POOL_LABEL: pool.name,
                **(gpu_labels(pool.gpu) if pool.gpu else {}),
                **pool.labels,
            }
            capacity = {
                "cpu": pool.cpu,
                "memory": pool.memory,
                "ephemeral-storage": pool.ephemeral_storage,
                "pods": pool.pods,
            }
            if pool.gpu:
                capacity[GPU_RESOURCE] = str(pool.gpu.count)
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE},
                    },
                    "spec": {"taints": [taint.model_dump() for taint in pool.taints]},
                    "status": {"capacity": capacity, "allocatable": dict(capacity)},
                }
            )
    return nodes
