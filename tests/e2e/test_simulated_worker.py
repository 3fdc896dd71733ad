"""The simulated GPU worker and kwok's pod-complete-with-result Stage end quantfleet's Job pods
the way a real Job program would: exit code, and the result in the termination message."""

import json
from typing import Any

import pytest
from kubernetes import client

from quantfleet.api.results import FailureResult, QuantizeResult, parse_result
from quantfleet.testbed.wait import poll_until
from quantfleet.testbed.worker import (
    RESULT_ANNOTATION,
    SimulatedWorker,
    default_producer,
    simulated_failure,
)

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
QUANTFLEET_LABELS = {
    "app.kubernetes.io/managed-by": "quantfleet",
    "app.kubernetes.io/part-of": "quantfleet",
    "quantfleet.io/model": "tiny",
    "quantfleet.io/component": "quantize",
}


def job(name: str, labels: dict[str, str], args: list[str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "registry.invalid/quantfleet/jobs:1",
                            "command": ["python", "-m", "quantfleet_jobs.quantize"],
                            "args": args or [],
                        }
                    ],
                },
            },
        },
    }


def job_pod(core: client.CoreV1Api, namespace: str, name: str, phase: str) -> Any:
    """The Job's pod once it is in `phase`, else None."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    return next((pod for pod in pods if pod.status.phase == phase), None)


def finished(batch: client.BatchV1Api, namespace: str, name: str, condition: str) -> bool:
    status = batch.read_namespaced_job_status(name, namespace).status
    return any(c.type == condition and c.status == "True" for c in status.conditions or [])


def test_quantfleet_job_pod_waits_for_the_worker_then_completes_with_its_result(
    api_client: client.ApiClient, namespace: str, worker: SimulatedWorker
) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    worker.producer = lambda pod: None  # hold every pod Running for now
    batch.create_namespaced_job(
        namespace,
        job(
            "quantize",
            QUANTFLEET_LABELS,
            [
                "--source=pvc://models/tiny",
                "--scheme=W8A8",
                "--output=pvc://models/tiny-int8",
                "--model-kind=text",
            ],
        ),
    )
    # Another Job's pod, without our label, still completes through kwok's generic stage.
    batch.create_namespaced_job(namespace, job("unrelated", {"app": "other"}))

    running = poll_until(
        lambda: job_pod(core, namespace, "quantize", "Running"),
        timeout=TIMEOUT,
        what="the quantize Job's pod to run",
    )
    poll_until(
        lambda: finished(batch, namespace, "unrelated", "Complete"),
        timeout=TIMEOUT,
        what="the unlabelled Job to complete",
    )
    seen = worker.passes
    poll_until(lambda: worker.passes >= seen + 2, timeout=TIMEOUT, what="two worker passes")
    held = core.read_namespaced_pod(running.metadata.name, namespace)
    assert held.status.phase == "Running", "a quantfleet pod completed without a result"

    worker.producer = default_producer
    poll_until(
        lambda: finished(batch, namespace, "quantize", "Complete"),
        timeout=TIMEOUT,
        what="the quantize Job to complete",
    )

    pod = core.read_namespaced_pod(running.metadata.name, namespace)
    main = next(s for s in pod.status.container_statuses if s.name == "main")
    message = main.state.terminated.message
    result = parse_result(message)
    assert isinstance(result, QuantizeResult)
    assert (result.requested_scheme, result.scheme, result.output) == (
        "W8A8",
        "W8A8",
        "pvc://models/tiny-int8",
    )
    assert json.loads(message)["simulated"] is True
    assert result.device == "simulated"
    assert main.state.terminated.exit_code == 0
    assert pod.status.phase == "Succeeded"
    assert message == pod.metadata.annotations[RESULT_ANNOTATION]


def test_nonzero_exit_code_fails_the_pod_with_the_failure_result(
    api_client: client.ApiClient, namespace: str, worker: SimulatedWorker
) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    worker.producer = lambda pod: simulated_failure("quantize", "out of GPU memory", exit_code=3)
    batch.create_namespaced_job(namespace, job("quantize", QUANTFLEET_LABELS))

    poll_until(
        lambda: finished(batch, namespace, "quantize", "Failed"),
        timeout=TIMEOUT,
        what="the quantize Job to fail",
    )

    pod = job_pod(core, namespace, "quantize", "Failed")
    assert pod is not None
    terminated = pod.status.container_statuses[0].state.terminated
    result = parse_result(terminated.message)
    assert isinstance(result, FailureResult)
    assert result.reason == "SIMULATED: out of GPU memory"
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
