"""Kueue quotas with the real Kueue controller (built from its Go module by tools/kubebin) on the
real control plane: the operator submits its Jobs suspended to a LocalQueue, Kueue admits them
within its ClusterQueue's GPUs, the SIMULATED worker completes their pods on kwok's GPU nodes."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from factories import Models, make_quantized_model
from quantfleet.api.contract import LABEL_COMPONENT
from quantfleet.kube.apply import apply
from quantfleet.testbed.binaries import find_binaries
from quantfleet.testbed.cluster import ClusterState
from quantfleet.testbed.kueue import GROUP_VERSION, start_kueue
from quantfleet.testbed.processes import stop
from quantfleet.testbed.wait import poll_until
from quantfleet.testbed.worker import SimulatedResults, SimulatedWorker

pytestmark = pytest.mark.integration

Json = dict[str, Any]
QUEUE = "gpus"
QUOTA_GPUS = 1
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def kueue(
    cluster: ClusterState, api_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The Kueue controller, running; yields its log."""
    bin_dir = find_binaries().kubebin.parent
    started = start_kueue(cluster, api_client, bin_dir, tmp_path_factory.mktemp("kueue"))
    yield started.log
    stop([started.record])


@pytest.fixture
def gpu_queue(api_client: client.ApiClient, namespace: str, kueue: Path) -> Iterator[str]:
    """A ClusterQueue of QUOTA_GPUS GPUs (CPU, memory and disk without a real limit) and the
    LocalQueue QUEUE in the test's namespace that submits to it."""
    cluster_queue = f"{namespace}-gpus"[:63]
    quotas = {"cpu": "1000", "memory": "100Ti", "ephemeral-storage": "1000Ti"}
    quotas["nvidia.com/gpu"] = str(QUOTA_GPUS)
    flavor = {
        "name": "any",
        "resources": [{"name": k, "nominalQuota": v} for k, v in quotas.items()],
    }
    groups = [{"coveredResources": list(quotas), "flavors": [flavor]}]
    for kind, name, spec, where in (
        ("ResourceFlavor", "any", {}, None),
        ("ClusterQueue", cluster_queue, {"namespaceSelector": {}, "resourceGroups": groups}, None),
        ("LocalQueue", QUEUE, {"clusterQueue": cluster_queue}, namespace),
    ):
        metadata = {"name": name, **({"namespace": where} if where else {})}
        body = {"apiVersion": GROUP_VERSION, "kind": kind, "metadata": metadata, "spec": spec}
        apply(api_client, body, where)
    yield cluster_queue
    group, version = GROUP_VERSION.split("/")
    client.CustomObjectsApi(api_client).delete_cluster_custom_object(
        group, version, "clusterqueues", cluster_queue
    )


def quantize_job(models: Models, name: str) -> Any:
    """The model's quantize Job, or None."""
    jobs = [j for j in models.jobs(name) if j.metadata.labels.get(LABEL_COMPONENT) == "quantize"]
    return jobs[0] if jobs else None


def test_the_job_beyond_the_quota_waits_in_kueue_then_runs_when_one_finishes(
    models: Models, worker: SimulatedWorker, gpu_queue: str, api_client: client.ApiClient
) -> None:
    # The worker holds every pod Running: the first admitted quantize Job keeps its GPU.
    worker.producer = lambda pod: None
    for name in ("first", "second"):
        placement = {"queueName": QUEUE}
        models.create(make_quantized_model(name, "W4A16", placement=placement))

    def one_running_one_queued() -> tuple[str, str] | None:
        jobs = {name: quantize_job(models, name) for name in ("first", "second")}
        if not all(jobs.values()):
            return None
        running = [n for n, job in jobs.items() if not job.spec.suspend]
        queued = [n for n, job in jobs.items() if job.spec.suspend]
        return (running[0], queued[0]) if len(running) == len(queued) == 1 else None

    admitted, waiting = poll_until(
        one_running_one_queued, timeout=TIMEOUT, what="Kueue to admit one quantize Job of two"
    )
    # The operator says why the second waits, and Kueue's own Workload says it is the quota.
    queued = models.wait_condition(waiting, "Quantized", "Unknown", reason="Queued")
    assert f"queued in Kueue LocalQueue {QUEUE}" in queued["message"]
    custom = client.CustomObjectsApi(api_client)
    group, version = GROUP_VERSION.split("/")

    def quota_message() -> str | None:
        workloads = custom.list_namespaced_custom_object(
            group, version, models.namespace, "workloads"
        )["items"]
        held = quantize_job(models, waiting).metadata.name
        for workload in workloads:
            owners = workload["metadata"].get("ownerReferences") or []
            if any(owner["name"] == held for owner in owners):
                for condition in (workload.get("status") or {}).get("conditions") or []:
                    if condition["type"] == "QuotaReserved" and condition["status"] == "False":
                        return str(condition["message"])
        return None

    message = poll_until(quota_message, timeout=TIMEOUT, what="Kueue's reason for the wait")
    assert "nvidia.com/gpu" in message, message

    worker.producer = SimulatedResults()
    models.wait_condition(admitted, "Quantized", "True", timeout=TIMEOUT)
    models.wait_condition(waiting, "Quantized", "True", timeout=TIMEOUT)
    first, second = quantize_job(models, admitted), quantize_job(models, waiting)
    # Kueue unsuspended the second only once the first had finished and freed the GPU.
    assert second.status.start_time >= first.status.completion_time
