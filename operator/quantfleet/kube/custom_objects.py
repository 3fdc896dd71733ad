"""Reading the operator's own kinds (QuantizedModel, BenchmarkRun) by name or by namespace."""

from kubernetes import client

from quantfleet.api.common import API_VERSION, GROUP, PLURALS, VERSION
from quantfleet.builders.children import Json
from quantfleet.kube import children
from quantfleet.kube.errors import api_errors


def read_custom(api: client.ApiClient, kind: str, namespace: str, name: str) -> Json | None:
    """The object of our `kind` as a dict, or None when it is gone."""
    reference = {"apiVersion": API_VERSION, "kind": kind}
    return children.read(api, {**reference, "metadata": {"namespace": namespace, "name": name}})


def list_custom(api: client.ApiClient, kind: str, namespace: str) -> list[Json]:
    """Every object of our `kind` in `namespace`."""
    with api_errors(f"listing {kind}s in {namespace}"):
        listed: Json = client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind]
        )
    items: list[Json] = listed.get("items", [])
    return items
