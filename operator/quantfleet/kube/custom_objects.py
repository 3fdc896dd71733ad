"""Reading the operator's own kinds (QuantizedModel, BenchmarkRun) by name or by namespace, from
the cache the watches keep."""

from quantfleet.builders.children import Json
from quantfleet.kube.cache import Cache


def read_custom(kube: Cache, kind: str, namespace: str, name: str) -> Json | None:
    """The object of our `kind` as a dict, or None when it is gone."""
    return kube.get(kind, namespace, name)


def list_custom(kube: Cache, kind: str, namespace: str) -> list[Json]:
    """Every object of our `kind` in `namespace`."""
    return kube.of_kind(kind, namespace)
