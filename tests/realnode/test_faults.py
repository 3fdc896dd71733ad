"""Faults on the real node reach the model's conditions with the pod's own reason: a quantize pod
killed mid-run, a quantize pod OOM-killed by its namespace's memory limit, a vLLM server that
crash-loops, and a vLLM image the node does not have."""

import os
import signal
from pathlib import Path
from typing import Any

from kubernetes import client

from factories import Models
from quantfleet.cli.incluster import tiny_vlm_model
from quantfleet.testbed.wait import poll_until

Json = dict[str, Any]
TIMEOUT = 900.0


def model(name: str, **serving: object) -> Json:
    body = tiny_vlm_model(name)
    body["spec"]["serving"].update(serving)
    return body


def processes_of(needle: str) -> list[int]:
    """Host PIDs whose command line holds `needle` (the node's processes are this machine's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmdline:
                found.append(int(entry.name))
    return found


def test_quantize_pod_killed_mid_run_is_named_then_retried(
    models_namespace: tuple[str, Path], real_api: client.ApiClient
) -> None:
    namespace, _ = models_namespace
    models = Models(real_api, namespace)
    models.create(model("killed"))
    marker = "--output=pvc://models/out/killed"
    victims = poll_until(
        lambda: processes_of(marker), timeout=TIMEOUT, what="the quantize program to run"
    )

    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    retrying = poll_until(
        lambda: (
            "exit code 137" in models.condition("killed", "Quantized").get("message", "")
            and models.condition("killed", "Quantized")
        ),
        timeout=TIMEOUT,
        what="the kill to reach the Quantized condition",
    )
    assert "Error (exit code 137)" in retrying["message"], retrying
    models.wait_condition("killed", "Quantized", "True", timeout=TIMEOUT)


def test_quantize_pod_oom_killed_by_the_namespace_limit_fails_with_oomkilled(
    models_namespace: tuple[str, Path], real_api: client.ApiClient
) -> None:
    namespace, _ = models_namespace
    # The operator asks 1 GiB for this 10M-parameter model's quantize pod (no limit); the
    # program peaks at 1.18 GB RSS here (`/usr/bin/time -v`), so a 1 GiB default limit kills it.
    limits = {"default": {"memory": "1Gi"}, "type": "Container"}
    client.CoreV1Api(real_api).create_namespaced_limit_range(
        namespace, {"metadata": {"name": "small"}, "spec": {"limits": [limits]}}
    )
    models = Models(real_api, namespace)
    try:
        models.create(model("starved"))

        failed = models.wait_condition("starved", "Quantized", "False", timeout=TIMEOUT)
    finally:
        client.CoreV1Api(real_api).delete_namespaced_limit_range("small", namespace)

    assert failed["reason"] == "Failed"
    assert "OOMKilled (exit code 137)" in failed["message"], failed


def test_crash_looping_server_and_missing_image_reach_ready_with_the_pods_reason(
    models_namespace: tuple[str, Path], real_api: client.ApiClient
) -> None:
    namespace, _ = models_namespace
    models = Models(real_api, namespace)
    models.create(model("faulty", extraArgs=["--no-such-flag"]))

    crashing = models.wait_condition(
        "faulty", "Ready", "False", reason="ServingFailed", timeout=TIMEOUT
    )
    assert "no-such-flag" in crashing["message"], crashing

    models.patch_spec(
        "faulty", {"serving": {"extraArgs": [], "image": "localhost/quantfleet-missing:0"}}
    )
    missing = poll_until(
        lambda: (
            "quantfleet-missing"
            in (found := models.condition("faulty", "Ready")).get("message", "")
            and found
        ),
        timeout=TIMEOUT,
        what="the missing image to reach the Ready condition",
    )
    assert missing["reason"] == "ServingFailed"
    assert any(word in missing["message"] for word in ("ErrImagePull", "ImagePullBackOff"))
