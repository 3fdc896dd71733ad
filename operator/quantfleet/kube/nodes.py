"""Read the cluster's Node objects and the pods holding GPUs, CPU or memory for the inventory
(read-only; the RBAC grants list)."""

from typing import Any

from kubernetes import client

from quantfleet.api.contract import LABEL_MODEL
from quantfleet.planning.inventory import HeldPod, read_held_pod

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


def list_held_pods(api_client: client.ApiClient) -> list[HeldPod]:
    """Every bound, unfinished pod that requests GPUs, CPU or memory, in every namespace."""
    core = client.CoreV1Api(api_client)
    pods: list[HeldPod] = []
    token: str | None = None
    while True:
        page = core.list_pod_for_all_namespaces(
            limit=_PAGE_SIZE, _continue=token, field_selector="spec.nodeName!="
        )
        serialized: dict[str, Any] = api_client.sanitize_for_serialization(page)
        read = (read_held_pod(item, LABEL_MODEL) for item in serialized.get("items") or [])
        pods.extend(pod for pod in read if pod is not None)
        token = page.metadata._continue if page.metadata else None
        if not token:
            return pods
