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

from quantfleet.api.contract import MOUNT_ROOT, RUN_AS
from quantfleet.cli.localrun import MANIFESTS, OPERATOR_NAMESPACE
from quantfleet.kube.apply import apply
from quantfleet.testbed.realnode import REAL_NODE_LABEL
from quantfleet.testbed.wait import poll_until

OPERATOR_DEPLOYMENT = "quantfleet-operator"
MODELS_CLAIM = "models"
TASKS_FOLDER = "tasks"
TINY_VLM = "tiny-vlm"
# The local stand-in for the study's ChartQA (testbed.tinymodels.write_local_study_task).
TINY_VLM_TASK = "chartqa"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
Json = dict[str, Any]


def operator_env(images: dict[str, str]) -> dict[str, str]:
    """The operator's settings on the real node: our images, CPU replicas sized for this
    2-core machine (one core each, so a model and its BF16 baseline fit side by side), and the
    evaluation tasks from the models claim (no hub to download them from)."""
    return {
        "QUANTFLEET_JOBS_IMAGE": images["jobs"],
        "QUANTFLEET_CPU_VLLM_IMAGE": images["vllm-cpu"],
        "QUANTFLEET_CPU_CORES_PER_REPLICA": "1",
        "QUANTFLEET_CPU_KV_CACHE_GIB": "1",
        "QUANTFLEET_EVALUATION_TASKS": f"pvc://{MODELS_CLAIM}/{TASKS_FOLDER}",
    }


TINY_VLM_GATE = 80


def tiny_vlm_model(name: str = TINY_VLM) -> Json:
    """A QuantizedModel of the tiny Qwen2-VL in the models claim: INT8 W8A8 on the real CPU
    node, calibrated on synthetic data, gated on the local task, served by vLLM-CPU."""
    return {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "QuantizedModel",
        "metadata": {"name": name},
        "spec": {
            "source": {
                "uri": f"pvc://{MODELS_CLAIM}/{TINY_VLM}",
                "kind": "vision-language",
                "parametersBillions": 0.01,
            },
            "quantization": {
                "scheme": "W8A8",
                "calibration": {"dataset": "synthetic", "samples": 8, "maxSequenceLength": 128},
            },
            "output": {"uri": f"pvc://{MODELS_CLAIM}/out/{name}"},
            # A random 10M-parameter model's replies are noise that W8A8 moves: served by
            # vLLM-CPU, as the evaluate Job scores it, its chrF recovery was 89.86% (2026-12-06).
            "evaluation": {"tasks": [TINY_VLM_TASK], "limit": 4, "minRecovery": TINY_VLM_GATE},
            # The tiny model has 1024 positions (vLLM refuses more).
            "serving": {"replicas": 1, "imagesPerPrompt": 1, "maxModelLength": 1024},
            "placement": {"hardware": "cpu"},
        },
    }


def tiny_vlm_benchmark(name: str, model: str = TINY_VLM) -> Json:
    """A BenchmarkRun of the model against its BF16 baseline: the study's visual-reasoning
    workload (a 640x480 image), latency and throughput, a few requests each. Its pods ask for
    memory only: the model's replica and the baseline's take the node's 2 cores."""
    return {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "BenchmarkRun",
        "metadata": {"name": name},
        "spec": {
            "targets": [{"name": "w8a8", "modelRef": {"name": model}}],
            "baseline": {"modelRef": {"name": model}},
            "workloads": [{"name": "vr", "preset": "visual-reasoning"}],
            "scenarios": [{"kind": "latency"}, {"kind": "throughput"}],
            "limits": {"maxRequests": 8, "maxSeconds": 120},
            "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "4Gi"}},
        },
    }


def prepare_models(api: client.ApiClient, namespace: str, folder: Path) -> str:
    """A restricted `namespace` whose models claim (on the real node) holds the tiny Qwen2-VL and
    the local task; returns the PersistentVolume's name."""
    # Imported here: building the tiny model needs the jobs extra (torch, transformers).
    from quantfleet.testbed.tinymodels import build_tiny_qwen2_vl, write_local_study_task

    apply(
        api,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": RESTRICTED},
        },
        None,
    )
    if not (folder / TINY_VLM / "config.json").exists():
        build_tiny_qwen2_vl(folder / TINY_VLM)
    tasks = folder / TASKS_FOLDER
    tasks.mkdir(parents=True, exist_ok=True)
    write_local_study_task(
        tasks, TINY_VLM_TASK, seen_at=Path(MOUNT_ROOT) / MODELS_CLAIM / TASKS_FOLDER
    )
    return node_volume(api, namespace, MODELS_CLAIM, folder)


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
    (the operator's settings: Job and vLLM images, CPU sizing) added, and without a CPU request:
    the node has 2 cores, a model's vLLM replica and its BF16 baseline take one each, and the
    operator's 100m would leave the baseline Pending (Insufficient cpu)."""
    for document in documents:
        if document["kind"] != "Deployment" or document["metadata"]["name"] != OPERATOR_DEPLOYMENT:
            continue
        pod = document["spec"]["template"]["spec"]
        pod["nodeSelector"] = {**pod.get("nodeSelector", {}), REAL_NODE_LABEL: "true"}
        [container] = [c for c in pod["containers"] if c["name"] == "operator"]
        container["image"] = operator_image
        container["imagePullPolicy"] = "Never"
        container.get("resources", {}).get("requests", {}).pop("cpu", None)
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
    """Our pods run as RUN_AS (Pod Security restricted): the volume is theirs."""
    os.chown(path, RUN_AS, RUN_AS, follow_symlinks=False)
