"""Helpers for the integration suite: reading manifests and creating custom resources."""

from pathlib import Path
from typing import Any

from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"


def crd_files() -> list[Path]:
    return sorted(CRD_DIR.glob("*.yaml"))


def create_custom_object(
    api_client: client.ApiClient,
    crds: dict[str, dict[str, Any]],
    body: dict[str, Any],
    namespace: str,
    dry_run: bool = False,
) -> Any:
    """Create `body` (a custom resource of one of `crds`) in `namespace`.

    Unknown fields are rejected (`fieldValidation=Strict`), as kubectl does by default; without
    it the API server silently prunes them and a misspelt field would pass unnoticed.
    """
    crd = crds[body["kind"]]
    group, version = body["apiVersion"].split("/")
    body = {**body, "metadata": {**body.get("metadata", {}), "namespace": namespace}}
    return client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        group,
        version,
        namespace,
        crd["spec"]["names"]["plural"],
        body,
        dry_run="All" if dry_run else None,
        field_validation="Strict",
    )


def pod(name: str, **spec: Any) -> dict[str, Any]:
    """A one-container pod manifest; `spec` overrides or adds pod spec fields. The image is
    never pulled: pods on simulated nodes are run by kwok, not by a container runtime."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "registry.invalid/quantfleet/noop:1"}],
            **spec,
        },
    }


def events_for(api_client: client.ApiClient, namespace: str, kind: str, name: str) -> list[Any]:
    """The core/v1 events about one object."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    return list(
        client.CoreV1Api(api_client).list_namespaced_event(namespace, field_selector=selector).items
    )
