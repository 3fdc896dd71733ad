"""Read the cluster's Node objects for the GPU inventory (read-only; the RBAC grants list)."""

from typing import Any

from kubernetes import client

# Big clusters: list in pages so one response stays bounded.
_PAGE_SIZE = 500


def list_nodes(api_client: client.ApiClient) -> list[dict[str, Any]]:
    """Every Node, as Kubernetes JSON (camelCase) dicts like those in a fleet file."""
    core = client.CoreV1Api(api_client)
    nodes: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = core.list_node(limit=_PAGE_SIZE, _continue=token)
        serialized: dict[str, Any] = api_client.sanitize_for_serialization(page)
        nodes.extend(serialized.get("items") or [])
        token = page.metadata._continue if page.metadata else None
        if not token:
            return nodes
