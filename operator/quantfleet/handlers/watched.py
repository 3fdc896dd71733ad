"""What the passes read, kept in memory from watches so that a pass that changes nothing costs
the API server nothing: our own kinds and every child the operator manages (Jobs, their pods,
Deployments and their pods, Services, ConfigMaps), in one Kopf index (`watched`), which
`quantfleet.kube.cache.Cache` reads. Kopf fills indexes before it calls any other handler, so
the first passes after a start already see every child."""

from typing import Any

import kopf

from quantfleet.api.common import GROUP, PLURALS, VERSION
from quantfleet.api.contract import LABEL_MANAGED_BY, MANAGED_BY
from quantfleet.kube import cache

INDEX = "watched"  # Kopf names an index by its handler's id
CHILDREN = (
    ("batch/v1", "jobs", "Job"),
    ("v1", "pods", "Pod"),
    ("apps/v1", "deployments", "Deployment"),
    ("v1", "services", "Service"),
    ("v1", "configmaps", "ConfigMap"),
)
MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}


def _indexer(kind: str) -> Any:
    async def index(body: kopf.Body, **_: Any) -> dict[cache.Key, bytes]:
        """When an object appears or changes, keep it (slimmed, packed) under each of its keys."""
        return cache.indexed(body, kind)

    return index


def _observer(kind: str) -> Any:
    async def observed(event: kopf.RawEvent, **_: Any) -> None:
        """Once the index has an object's news (Kopf indexes before it calls other handlers),
        a write of ours it is as new as, or a deletion of ours it reports, is not kept."""
        reported = {"kind": kind, "metadata": event["object"]["metadata"]}
        if event["type"] == "DELETED":
            cache.gone(reported)
        else:
            cache.seen(reported)

    return observed


for _group_version, _plural, _kind in CHILDREN:
    kopf.index(_group_version, _plural, id=INDEX, labels=MANAGED)(_indexer(_kind))
    kopf.on.event(_group_version, _plural, id=f"{INDEX}-seen", labels=MANAGED)(_observer(_kind))
for _kind, _plural in PLURALS.items():
    kopf.index(GROUP, VERSION, _plural, id=INDEX)(_indexer(_kind))
    kopf.on.event(GROUP, VERSION, _plural, id=f"{INDEX}-seen")(_observer(_kind))


def view(kwargs: dict[str, Any], api: Any) -> cache.Cache:
    """The cache over the index Kopf passed a handler."""
    index: kopf.Index[cache.Key, bytes] | None = kwargs.get(INDEX)
    if index is None:
        raise RuntimeError(f"Kopf passed no {INDEX} index: {__name__} is not imported")
    return cache.Cache(api, index)
