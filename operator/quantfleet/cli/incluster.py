"""The operator installed the way a platform team installs it, on a cluster with a real node:
`kubectl kustomize manifests/` rendered, the project's own images put in (imported into the
node, never pulled), and applied; storage for models as a PersistentVolume on that node. Used by
the real-node tests and `quantfleet demo --real-node`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from quantfleet.cli.localrun import MANIFESTS, OPERATOR_NAMESPACE
from quantfleet.kube.apply import apply
from quantfleet.testbed.realnode import REAL_NODE_LABEL
from quantfleet.testbed.wait import poll_until

OPERATOR_DEPLOYMENT = "quantfleet-operator"
OPERATOR_IMAGE = "ghcr.io/quantfleet/quantfleet-operator"


def render_manifests(kubectl: Path) -> list[dict[str, Any]]:
    """What `kubectl apply -k manifests/` would apply, rendered by kubectl's own kustomize."""
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def on_real_node(
    documents: list[dict[str, Any]], operator_image: str, env: dict[str, str]
) -> list[dict[str, Any]]:
    """The manifests with the operator Deployment running `operator_image` from the node's own
    image store (imagePullPolicy Never: there is no registry), on the real node, with `env`
    (the operator's settings: Job and vLLM images, CPU sizing) added."""
    for document in documents:
        if document["kind"] != "Deployment" or document["metadata"]["name"] != OPERATOR_DEPLOYMENT:
            continue
        pod = document["spec"]["template"]["spec"]
        pod["nodeSelector"] = {**pod.get("nodeSelector", {}), REAL_NODE_LABEL: "true"}
        [container] = [c for c in pod["containers"] if c["name"] == "operator"]
        container["image"] = operator_image
        container["imagePullPolicy"] = "Never"
        names = set(env)
        container["env"] = [e for e in container.get("env", []) if e["name"] not in names] + [
            {"name": name, "value": value} for name, value in env.items()
        ]
    return documents


def deploy_operator(
    api: client.ApiClient,
    kubectl: Path,
    operator_image: str,
    env: dict[str, str],
    timeout: float = 180.0,
) -> str:
    """Apply the manifests (CRDs, namespace, RBAC, Deployment, Service) for the real node and
    wait until the operator's pod is Ready; its name."""
    for document in on_real_node(render_manifests(kubectl), operator_image, env):
        apply(api, document, document["metadata"].get("namespace"))
    core = client.CoreV1Api(api)
    selector = "app.kubernetes.io/name=quantfleet,app.kubernetes.io/component=operator"

    def ready_pod() -> str | None:
        for pod in core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=selector).items:
            conditions = pod.status.conditions or []
            if any(c.type == "Ready" and c.status == "True" for c in conditions):
                return str(pod.metadata.name)
        return None

    return poll_until(ready_pod, timeout=timeout, what="the operator pod to turn Ready")


def node_volume(
    api: client.ApiClient, namespace: str, claim: str, folder: Path, size: str = "100Gi"
) -> str:
    """A PersistentVolumeClaim `claim` bound to a PersistentVolume of `folder` on the real node
    (a hostPath volume, as a local-path provisioner would make), writable by the pods' uid
    65532. Returns the PersistentVolume's name (cluster-scoped: the caller deletes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (folder, *folder.rglob("*")):
        _own(path)
    core = client.CoreV1Api(api)
    volume = f"node-{namespace}-{claim}"[:63]
    core.create_persistent_volume(
        {
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(folder), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": REAL_NODE_LABEL, "operator": "In", "values": ["true"]}
                                ]
                            }
                        ]
                    }
                },
            },
        }
    )
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": size}},
            },
        },
    )
    return volume


def _own(path: Path) -> None:
    """Pods run as 65532:65532 (Pod Security restricted): the volume is theirs."""
    os.chown(path, 65532, 65532, follow_symlinks=False)
