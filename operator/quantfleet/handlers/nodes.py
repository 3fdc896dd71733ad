"""The fleet both kinds plan against, kept in memory from watches so a pass costs no API call
for it: every Node (the inventory), every pod that holds GPUs, CPU or memory (their free
capacity), and every QuantizedModel's output location (who writes where). Kopf passes the indexes
to every handler as the `gpu_nodes`, `gpu_pods` and `model_outputs` keywords (the first two named
from when they held GPUs only); a handler that finds none fails instead of planning on no
nodes. The indexers are coroutines: Kopf runs them at once in its event loop, where a function
would wait for a thread behind the passes, each watch event held in memory meanwhile."""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import kopf
from kubernetes import client

from quantfleet.api.common import GROUP, QUANTIZED_MODELS, VERSION
from quantfleet.api.contract import LABEL_MODEL
from quantfleet.builders.children import Json
from quantfleet.builders.storage import OutputUse
from quantfleet.handlers import runtime, watched
from quantfleet.kube.cache import Cache, flatten, interned
from quantfleet.planning.inventory import (
    HeldPod,
    Inventory,
    build_inventory,
    read_held_pod,
    requested,
)

Value = TypeVar("Value")
NODES_INDEX = "gpu_nodes"  # Kopf names an index after its function
PODS_INDEX = "gpu_pods"
OUTPUTS_INDEX = "model_outputs"


@kopf.index("v1", "nodes")
async def gpu_nodes(body: kopf.Body, name: str, **_: Any) -> dict[str, Json]:
    """When a Node appears or changes, keep by name what the inventory reads of it: its
    metadata (less managedFields), spec and allocatable and capacity (not the images it holds,
    which on a real node are most of its status)."""
    status = body.get("status") or {}
    metadata = {key: value for key, value in body["metadata"].items() if key != "managedFields"}
    kept = {
        "metadata": metadata,
        "spec": body.get("spec") or {},
        "status": {key: status[key] for key in ("allocatable", "capacity") if key in status},
    }
    return {name: interned(kept)}


@kopf.index("v1", "pods")
async def gpu_pods(body: kopf.Body, **_: Any) -> dict[str, HeldPod] | None:
    """Keep each bound, unfinished pod that requests GPUs, CPU or memory by its node; others
    are not kept."""
    pod = read_held_pod(body, LABEL_MODEL)
    return {pod.node: pod} if pod else None


@kopf.index(GROUP, VERSION, QUANTIZED_MODELS)
async def model_outputs(body: kopf.Body, **_: Any) -> dict[tuple[str, ...], OutputUse] | None:
    """When a QuantizedModel appears or changes, keep where it writes, by storage (a claim of its
    namespace, or a bucket) and by storage and folder; it stays there until the model is
    gone."""
    use = OutputUse.of(dict(body))
    return dict.fromkeys(use.keys, use) if use else None


@dataclass(frozen=True)
class Fleet:
    """The Nodes, the GPU pods and the models' outputs, as one pass sees them, and the cache of
    everything else it reads (a fleet without a cluster has an empty one)."""

    nodes: Iterable[Json]
    pods: Iterable[HeldPod] = ()
    outputs: Mapping[tuple[str, ...], Iterable[OutputUse]] = field(default_factory=dict)
    cache: Cache = field(default_factory=lambda: Cache(cast(client.ApiClient, None), {}))

    def inventory(
        self, namespace: str = "", model: str | None = None, cpu_nodes: bool = False
    ) -> Inventory:
        """The inventory with free GPUs, cores and memory, the pods of `model` in `namespace`
        not counted; every NFD-labelled node without GPUs serves on CPUs when `cpu_nodes`."""
        taken = requested(self.pods, namespace=namespace, model=model)
        return build_inventory(self.nodes, taken, cpu_nodes)

    def rivals(self, use: OutputUse) -> list[OutputUse]:
        """The models' outputs that may overlap `use` (one index lookup, not a walk of all)."""
        return [rival for key in use.rivals for rival in list(self.outputs.get(key, ()))]


@dataclass(frozen=True)
class Flattened(Generic[Value]):
    """The values of a Kopf index, iterated when a pass needs them (not copied per trigger)."""

    index: Mapping[Any, Iterable[Value]]

    def __iter__(self) -> Iterator[Value]:
        return iter(flatten(self.index))


def listed(kwargs: dict[str, Any]) -> Fleet:
    """The fleet in the indexes, from the keywords Kopf passed a handler."""
    nodes: kopf.Index[str, Json] | None = kwargs.get(NODES_INDEX)
    pods: kopf.Index[str, HeldPod] | None = kwargs.get(PODS_INDEX)
    if nodes is None or pods is None:
        raise RuntimeError(
            f"Kopf passed no {NODES_INDEX}/{PODS_INDEX} index: {__name__} is not imported by "
            "the handlers"
        )
    outputs: kopf.Index[tuple[str, ...], OutputUse] | None = kwargs.get(OUTPUTS_INDEX)
    return Fleet(
        nodes=Flattened(nodes),
        pods=Flattened(pods),
        outputs=outputs or {},
        cache=watched.view(kwargs, runtime.api_client()),
    )
