"""Server-side apply of manifests (CRDs, samples) and the CRD readiness check."""

from typing import Any

from kubernetes import client
from kubernetes.dynamic import DynamicClient

FIELD_MANAGER = "quantfleet"


def apply(api_client: client.ApiClient, document: dict[str, Any], namespace: str | None) -> None:
    """Create or update `document` by server-side apply, as `kubectl apply --server-side` does.

    Discovery is refreshed on every call, so a kind whose CRD was applied a moment ago is found.
    """
    dynamic = DynamicClient(api_client)
    resource = dynamic.resources.get(api_version=document["apiVersion"], kind=document["kind"])
    dynamic.server_side_apply(
        resource,
        body=document,
        namespace=namespace if resource.namespaced else None,
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
        field_validation="Strict",
    )


def crd_established(api_client: client.ApiClient, name: str) -> bool:
    """Whether the CRD called `name` is Established (its kind can be served)."""
    crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(name)
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)
