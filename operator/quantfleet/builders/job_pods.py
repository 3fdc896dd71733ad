"""What a Job's pods hit, from their statuses: a container waiting for a reason that will not pass
by itself (its image missing, its config broken), a pod no node would take for longer than a
grace period, or a pod that ended without a result (OOM-killed, evicted, past its deadline,
killed). Pure: the pods come in as read (camelCase JSON), the time as an argument."""

from datetime import datetime

from quantfleet.api.results import one_line
from quantfleet.builders.children import Json
from quantfleet.builders.serving_status import FAILED_WAITING

# How long a pod may wait for a node before it counts as stuck: a cluster autoscaler adds a
# node in a few minutes, Kueue admits by quota (its Jobs stay suspended, so unaffected).
UNSCHEDULABLE_GRACE_SECONDS = 300


def stuck(pods: list[Json], now: datetime | None = None) -> str | None:
    """A Job pod container waiting on something that will not pass by itself, or (given `now`)
    a pod Unschedulable for longer than the grace period, in one line with the kubelet's or the
    scheduler's reason and message; None while every pod is merely on its way."""
    if now is not None and (refused := unschedulable(pods, now)):
        return refused
    for pod in _newest_first(pods):
        for status in _statuses(pod):
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FAILED_WAITING:
                message = waiting.get("message") or "-"
                return one_line(f"pod {pod['metadata']['name']}: {waiting['reason']}: {message}")
    return None


def ended(pods: list[Json]) -> str | None:
    """Why the newest pod that failed ended, in one line: the pod's own reason (Evicted,
    DeadlineExceeded) or its container's (OOMKilled, Error) with the exit code."""
    for pod in _newest_first(pods):
        status = pod.get("status") or {}
        name = pod["metadata"]["name"]
        if status.get("phase") != "Failed" and not any(_failed(s) for s in _statuses(pod)):
            continue
        if reason := status.get("reason"):
            return one_line(f"pod {name}: {reason}: {status.get('message') or '-'}")
        for container in _statuses(pod):
            if terminated := _failed(container):
                how = terminated.get("reason") or "Error"
                code = terminated.get("exitCode")
                return one_line(f"pod {name}: {how} (exit code {code})")
        return one_line(f"pod {name} failed")
    return None


def unschedulable(pods: list[Json], now: datetime) -> str | None:
    """The newest pod the scheduler has refused for longer than the grace period, in one line
    with the scheduler's message ("0/4 nodes are available: 4 Insufficient nvidia.com/gpu")."""
    for pod in _newest_first(pods):
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") != "PodScheduled" or condition.get("status") != "False":
                continue
            since = condition.get("lastTransitionTime")
            if condition.get("reason") != "Unschedulable" or not since:
                continue
            waited = (now - datetime.fromisoformat(since)).total_seconds()
            if waited >= UNSCHEDULABLE_GRACE_SECONDS:
                message = condition.get("message") or "-"
                name = pod["metadata"]["name"]
                return one_line(f"pod {name}: Unschedulable for {waited:.0f}s: {message}")
    return None


def _failed(status: Json) -> Json:
    """The container's terminated state (or last state) when it ended badly, else {}."""
    for state in (status.get("state") or {}, status.get("lastState") or {}):
        terminated = state.get("terminated") or {}
        if terminated and (terminated.get("exitCode") or 0) != 0:
            return dict(terminated)
    return {}


def _statuses(pod: Json) -> list[Json]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def _newest_first(pods: list[Json]) -> list[Json]:
    return sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp")), reverse=True)
