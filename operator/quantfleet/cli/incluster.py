"""The operator installed the way a platform team installs it, on a cluster with a real node: the
Helm chart (charts/quantfleet, whose defaults render manifests/) with the project's own images
(imported into the node, never pulled) and this machine's sizing as values; storage for models as
a PersistentVolume on that node. Used by the real-node tests and `quantfleet demo --real-node`."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from quantfleet.api.contract import MOUNT_ROOT, RUN_AS
from quantfleet.cli.localrun import (
    CHART,
    MANIFESTS,
    OPERATOR_NAMESPACE,
    InstallError,
    install_crds,
    load_documents,
)
from quantfleet.kube.apply import apply
from quantfleet.testbed.realnode import REAL_NODE_LABEL
from quantfleet.testbed.wait import poll_until

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


def operator_settings(images: dict[str, str]) -> dict[str, str]:
    """The operator's settings on the real node (the chart's `settings`): our images, CPU
    replicas sized for this 2-core machine (one core each, so a model and its BF16 baseline fit
    side by side), and the evaluation tasks from the models claim (no hub to download them)."""
    return {
        "jobsImage": images["jobs"],
        "cpuVllmImage": images["vllm-cpu"],
        "cpuCoresPerReplica": "1",
        "cpuKvCacheGib": "1",
        "evaluationTasks": f"pvc://{MODELS_CLAIM}/{TASKS_FOLDER}",
    }


def operator_values(operator_image: str, settings: dict[str, str]) -> Json:
    """The chart's values on the real node: `operator_image` from the node's own image store
    (pullPolicy Never: there is no registry), on the real node, with `settings`, and without a
    CPU request: the node has 2 cores, a model's vLLM replica and its BF16 baseline take one
    each, and the operator's 100m would leave the baseline Pending (Insufficient cpu)."""
    repository, tag = operator_image.rsplit(":", 1)
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "nodeSelector": {REAL_NODE_LABEL: "true"},
        "resources": {"requests": {"cpu": None}},  # null removes the chart's default
        "settings": settings,
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


def deploy_operator(
    api: client.ApiClient,
    kubeconfig: Path,
    bin_dir: Path,
    operator_image: str,
    settings: dict[str, str],
    timeout: float = 180.0,
) -> str:
    """Install the operator as the README's Helm install does (its namespace from
    manifests/namespace.yaml, then `helm upgrade --install` of the chart) with the real node's
    values, and wait until its pod is Ready; the pod's name. InstallError with Helm's one line
    where the kustomize install holds the operator (the chart refuses to take it over). The
    CRDs are applied from crds/ first: Helm installs a chart's CRDs only where they are missing
    and never upgrades them, and a dev cluster outlives a change to them."""
    install_crds(api)
    apply(api, load_documents(MANIFESTS / "namespace.yaml")[0], None)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        yaml.safe_dump(operator_values(operator_image, settings), values)
        values.flush()
        helm = [str(bin_dir / "helm"), f"--kubeconfig={kubeconfig}"]
        install = ["upgrade", "--install", "quantfleet", str(CHART)]
        where = ["--namespace", OPERATOR_NAMESPACE, "--values", values.name]
        done = subprocess.run([*helm, *install, *where], capture_output=True, text=True)
        if done.returncode != 0:
            # Helm's own line (the chart's check of the other install method says what to do).
            reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise InstallError(f"helm {' '.join(install)} failed: {reason[0]}")
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
