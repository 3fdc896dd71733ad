"""Reading a Job: one that Kueue holds (suspended, with its queue label) is Queued, never failed."""

from typing import Any

import pytest
from kubernetes import client

from quantfleet.kube.children import observe_job


def job(suspend: bool | None, labels: dict[str, str], active: int = 0) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name="q", labels=labels),
        spec=client.V1JobSpec(suspend=suspend, template=client.V1PodTemplateSpec()),
        status=client.V1JobStatus(active=active),
    )


@pytest.mark.parametrize(
    ("manifest", "phase", "detail"),
    [
        (job(True, {"kueue.x-k8s.io/queue-name": "gpus"}), "Queued", "Kueue LocalQueue gpus"),
        (job(False, {"kueue.x-k8s.io/queue-name": "gpus"}, active=1), "Running", ""),
        (job(False, {"kueue.x-k8s.io/queue-name": "gpus"}), "Pending", ""),
        # Suspended by someone else than Kueue: not ours to explain.
        (job(True, {}), "Pending", ""),
    ],
)
def test_a_job_held_by_kueue_is_queued(
    monkeypatch: pytest.MonkeyPatch, manifest: client.V1Job, phase: str, detail: str
) -> None:
    def read(self: Any, name: str, namespace: str) -> client.V1Job:
        return manifest

    monkeypatch.setattr(client.BatchV1Api, "read_namespaced_job", read)
    monkeypatch.setattr("quantfleet.kube.children.list_pods", lambda *args: [])
    seen = observe_job(client.ApiClient(), "ns", "q")
    assert seen is not None
    assert seen.phase == phase
    assert detail in seen.detail
