"""The Node index both kinds plan against: every Node kept in memory from one watch, so a pass
costs no API call for the inventory. Kopf passes it to every handler as the `gpu_nodes` keyword;
a handler that finds none fails instead of planning on no GPUs."""

from typing import Any

import kopf

from quantfleet.builders.children import Json

INDEX = "gpu_nodes"  # Kopf names an index after its function


@kopf.index("v1", "nodes")
def gpu_nodes(body: kopf.Body, name: str, **_: Any) -> dict[str, Json]:
    """When a Node appears or changes, keep its metadata, spec and status by name."""
    return {name: {key: body[key] for key in ("metadata", "spec", "status") if key in body}}


def listed(kwargs: dict[str, Any]) -> list[Json]:
    """The Nodes in the index, from the keywords Kopf passed a handler."""
    index: kopf.Index[str, Json] | None = kwargs.get(INDEX)
    if index is None:
        raise RuntimeError(
            f"Kopf passed no {INDEX} index: {__name__} is not imported by the handlers"
        )
    return [node for store in index.values() for node in store]
