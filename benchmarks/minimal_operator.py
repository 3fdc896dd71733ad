"""The least a Kopf operator can do: one child ConfigMap per QuantizedModel, owned by it. The
baseline of operator_scale.py, written as Kopf's documentation writes an operator."""

from typing import Any

import kopf
import kubernetes

OWNER_LABEL = "scale.quantfleet.io/owner"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # The same storage and peering choices as quantfleet's, so only the reconciler differs.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="minimal.test")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="minimal.test")
    settings.peering.standalone = True
    kubernetes.config.load_kube_config()


@kopf.on.create("quantfleet.io", "v1alpha1", "quantizedmodels")
def create_child(name: str, namespace: str, **_: Any) -> None:
    """When a QuantizedModel appears, create its ConfigMap."""
    child = {"metadata": {"name": f"{name}-child", "labels": {OWNER_LABEL: name}}, "data": {}}
    kopf.adopt(child)
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, child)
