"""What a Job's pods hit reaches the step's condition: a stuck pod (missing image, broken config)
is PodFailing at once, a pod that ended badly is named in Failed and in a retry's message."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quantfleet.api.conditions import QuantizedModelCondition as Type
from quantfleet.api.conditions import Reason
from quantfleet.builders import job_pods
from quantfleet.builders.status import JobObservation, _job_condition

Json = dict[str, Any]


def pod(name: str, created: str, *, phase: str = "Running", reason: str | None = None,
        waiting: Json | None = None, terminated: Json | None = None,
        last: Json | None = None) -> Json:  # fmt: skip
    state = {"waiting": waiting} if waiting else {"terminated": terminated} if terminated else {}
    status: Json = {
        "phase": phase,
        "containerStatuses": [
            {"name": "job", "state": state, "lastState": {"terminated": last} if last else {}}
        ],
    }
    if reason:
        status["reason"], status["message"] = reason, f"the node said {reason}"
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


MISSING_IMAGE = {"reason": "ErrImageNeverPull", "message": 'image "x:1" is not present'}
OOM = {"reason": "OOMKilled", "exitCode": 137}
KILLED = {"reason": "Error", "exitCode": 137}


@pytest.mark.parametrize(
    ("pods", "want_stuck", "want_ended"),
    [
        pytest.param([pod("a", "1", waiting={"reason": "ContainerCreating"})], None, None,
                     id="creating-is-on-its-way"),
        pytest.param([pod("a", "1", waiting=MISSING_IMAGE)], "ErrImageNeverPull", None,
                     id="missing-image"),
        pytest.param([pod("a", "1", waiting={"reason": "CreateContainerConfigError"})],
                     "CreateContainerConfigError", None, id="broken-config"),
        pytest.param([pod("a", "1", phase="Failed", terminated=OOM)], None, "OOMKilled",
                     id="oom-killed"),
        pytest.param([pod("a", "1", phase="Failed", reason="Evicted")], None, "Evicted",
                     id="evicted"),
        pytest.param([pod("a", "1", phase="Failed", reason="DeadlineExceeded")], None,
                     "DeadlineExceeded", id="deadline"),
        pytest.param([pod("a", "1", phase="Failed", terminated=KILLED), pod("b", "2")], None,
                     "pod a: Error (exit code 137)", id="killed-then-retried"),
        pytest.param([pod("a", "1", phase="Succeeded", terminated={"exitCode": 0})], None, None,
                     id="succeeded"),
    ],
)  # fmt: skip
def test_job_pod_trouble(pods: list[Json], want_stuck: str | None, want_ended: str | None) -> None:
    stuck, ended = job_pods.stuck(pods), job_pods.ended(pods)

    assert (stuck is None) == (want_stuck is None)
    assert (ended is None) == (want_ended is None)
    if want_stuck:
        assert want_stuck in (stuck or "")
    if want_ended:
        assert want_ended in (ended or "")


def test_a_stuck_pod_fails_the_step_with_the_kubelets_reason() -> None:
    job = JobObservation("q-1", "Pending", pod_stuck="pod a: ErrImageNeverPull: not present")

    found = _job_condition(Type.QUANTIZED, job, str)

    assert (found.status, found.reason) == ("False", Reason.POD_FAILING)
    assert "ErrImageNeverPull" in found.message


def test_an_oom_killed_pod_is_named_when_the_job_fails_without_a_result() -> None:
    job = JobObservation(
        "q-1", "Failed", detail="Job has reached the specified backoff limit",
        pod_ended="pod a: OOMKilled (exit code 137)",
    )  # fmt: skip

    found = _job_condition(Type.QUANTIZED, job, str)

    assert (found.status, found.reason) == ("False", Reason.FAILED)
    assert "OOMKilled (exit code 137)" in found.message
    assert "backoff limit" in found.message


def test_a_retry_says_what_ended_the_pod_before() -> None:
    job = JobObservation("q-1", "Running", pod_ended="pod a: Error (exit code 137)")

    found = _job_condition(Type.QUANTIZED, job, str)

    assert (found.status, found.reason) == ("Unknown", Reason.RUNNING)
    assert "retrying after pod a: Error (exit code 137)" in found.message


def unscheduled(name: str, since: str) -> Json:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
        "lastTransitionTime": since,
    }
    return {
        "metadata": {"name": name, "creationTimestamp": since},
        "status": {"phase": "Pending", "conditions": [condition]},
    }


@pytest.mark.parametrize(
    ("waited", "want_stuck"),
    [
        pytest.param(job_pods.UNSCHEDULABLE_GRACE_SECONDS - 1, False, id="within-the-grace"),
        pytest.param(job_pods.UNSCHEDULABLE_GRACE_SECONDS, True, id="past-the-grace"),
    ],
)
def test_a_pod_no_node_takes_is_stuck_after_the_grace_period(waited: int, want_stuck: bool) -> None:
    since = datetime(2030, 1, 1, tzinfo=UTC)
    pods = [unscheduled("a", since.isoformat())]

    stuck = job_pods.stuck(pods, since + timedelta(seconds=waited))

    assert (stuck is not None) is want_stuck
    if want_stuck:
        assert stuck == (
            f"pod a: Unschedulable for {waited}s: 0/4 nodes are available: 4 Insufficient "
            "nvidia.com/gpu."
        )
