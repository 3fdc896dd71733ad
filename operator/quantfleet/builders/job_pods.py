"""What a Job's pods hit, from their statuses: a container waiting for a reason that will not pass
by itself (its image missing, its config broken), or a pod that ended without a result (OOM-killed,
evicted, past its deadline, killed). Pure: the pods come in as read (camelCase JSON)."""

from quantfleet.api.results import one_line
from quantfleet.builders.children import Json
from quantfleet.builders.serving_status import FAILED_WAITING


def stuck(pods: list[Json]) -> str | None:
    """A Job pod container waiting on something that will not pass by itself, in one line with
    the kubelet's reason and message; None while every pod is merely on its way."""
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
