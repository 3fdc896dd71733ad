"""Placement on the simulated GPU fleet by the real Job controller and kube-scheduler; kwok
plays the kubelet, so pods "run" and "complete" without any container (simulated)."""

from typing import Any

import pytest
from kubernetes import client

from quantfleet.testbed.wait import poll_until

from .helpers import events_for, pod

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def require_gpu_family(*families: str) -> dict[str, Any]:
    term = {"key": "nvidia.com/gpu.family", "operator": "In", "values": list(families)}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [term]}]
            }
        }
    }


def job_condition(batch: client.BatchV1Api, name: str, namespace: str, kind: str) -> bool:
    job = batch.read_namespaced_job_status(name, namespace)
    conditions = job.status.conditions or []
    return any(c.type == kind and c.status == "True" for c in conditions)


def test_gpu_job_is_scheduled_by_affinity_and_completes(
    api_client: client.ApiClient, namespace: str
) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    template = pod(
        "unused",
        affinity=require_gpu_family("hopper"),
        tolerations=[GPU_TOLERATION],
    )
    template["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "2"}}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "quantize-on-hopper"},
        "spec": {"backoffLimit": 0, "template": {"spec": template["spec"]}},
    }

    batch.create_namespaced_job(namespace, job)
    poll_until(
        lambda: job_condition(batch, "quantize-on-hopper", namespace, "Complete"),
        timeout=TIMEOUT,
        what="Job quantize-on-hopper to be Complete",
    )

    (job_pod,) = core.list_namespaced_pod(
        namespace, label_selector="batch.kubernetes.io/job-name=quantize-on-hopper"
    ).items
    node = core.read_node(job_pod.spec.node_name)
    scheduled = [
        event
        for event in events_for(api_client, namespace, "Pod", job_pod.metadata.name)
        if event.reason == "Scheduled"
    ]
    assert job_pod.metadata.owner_references[0].kind == "Job"
    assert job_pod.status.phase == "Succeeded"
    assert node.metadata.labels["nvidia.com/gpu.family"] == "hopper"
    assert node.metadata.labels["quantfleet.io/simulated"] == "true"
    assert [event.reporting_component or event.source.component for event in scheduled] == [
        "default-scheduler"
    ]


def test_pod_no_node_satisfies_stays_pending_with_failed_scheduling(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    # The fleet has no Volta GPUs, so no node satisfies the affinity.
    core.create_namespaced_pod(
        namespace,
        pod("wants-volta", affinity=require_gpu_family("volta"), tolerations=[GPU_TOLERATION]),
    )

    failed = poll_until(
        lambda: [
            event
            for event in events_for(api_client, namespace, "Pod", "wants-volta")
            if event.reason == "FailedScheduling"
        ],
        timeout=TIMEOUT,
        what="a FailedScheduling event for pod wants-volta",
    )

    waiting = core.read_namespaced_pod("wants-volta", namespace)
    assert waiting.status.phase == "Pending"
    assert waiting.spec.node_name is None
    assert "didn't match Pod's node affinity/selector" in failed[0].message


def test_a_pod_marked_not_ready_by_the_node_controller_turns_ready_again(
    api_client: client.ApiClient, namespace: str
) -> None:
    """The node controller marks a lost node's pods Ready=False; a kubelet that reconnects
    reports them Ready again, and so must the simulated one (a served model stayed at 0 ready)."""
    core = client.CoreV1Api(api_client)
    spec = pod("serving", affinity=require_gpu_family("hopper"), tolerations=[GPU_TOLERATION])
    spec["spec"]["restartPolicy"] = "Always"
    core.create_namespaced_pod(namespace, spec)

    def ready() -> bool:
        found = core.read_namespaced_pod_status("serving", namespace).status
        return found.phase == "Running" and any(
            c.type == "Ready" and c.status == "True" for c in found.conditions or []
        )

    poll_until(ready, timeout=TIMEOUT, what="pod serving to be Ready")
    marked = {"type": "Ready", "status": "False", "reason": "NodeLost"}  # as MarkPodsNotReady
    core.patch_namespaced_pod_status("serving", namespace, {"status": {"conditions": [marked]}})
    poll_until(ready, timeout=TIMEOUT, what="pod serving to be Ready again")
