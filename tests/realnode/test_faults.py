"""Faults on the real node reach the model's conditions with the pod's own reason: a quantize pod
killed mid-run (then retried), a quantize pod OOM-killed by its memory limit, a vLLM server that
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


def message_with(models: Models, name: str, kind: str, text: str) -> Json:
    """The model's `kind` condition once its message holds `text`."""
    return poll_until(
        lambda: text in (found := models.condition(name, kind)).get("message", "") and found,
        timeout=TIMEOUT,
        what=f"{text!r} in the {kind} condition of {name}",
    )


def test_a_killed_quantize_pod_is_retried_and_a_failing_server_is_named(
    models_namespace: tuple[str, Path], real_api: client.ApiClient
) -> None:
    namespace, _ = models_namespace
    models = Models(real_api, namespace)
    body = tiny_vlm_model("faulty")
    body["spec"]["serving"]["extraArgs"] = ["--no-such-flag"]
    models.create(body)
    victims = poll_until(
        lambda: processes_of("--output=pvc://models/out/faulty"),
        timeout=TIMEOUT,
        what="the quantize program to run",
    )

    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    killed = message_with(models, "faulty", "Quantized", "exit code 137")
    assert "Error (exit code 137)" in killed["message"], killed
    models.wait_condition("faulty", "Quantized", "True", timeout=TIMEOUT)

    crashing = models.wait_condition(
        "faulty", "Ready", "False", reason="ServingFailed", timeout=TIMEOUT
    )
    assert "no-such-flag" in crashing["message"], crashing

    models.patch_spec(
        "faulty", {"serving": {"extraArgs": [], "image": "localhost/quantfleet-missing:0"}}
    )

    missing = message_with(models, "faulty", "Ready", "localhost/quantfleet-missing:0")
    assert missing["reason"] == "ServingFailed", missing
    assert any(word in missing["message"] for word in ("ErrImagePull", "ImagePullBackOff"))
    models.delete("faulty")
    poll_until(
        lambda: not models.pods("faulty"),
        timeout=TIMEOUT,
        what="the pods of faulty to go (they hold the node's cores)",
    )


def test_a_quantize_pod_over_its_memory_limit_fails_as_oomkilled(
    models_namespace: tuple[str, Path], real_api: client.ApiClient
) -> None:
    namespace, _ = models_namespace
    models = Models(real_api, namespace)
    body = tiny_vlm_model("starved")
    # The program's imports alone hold 548 MiB of anonymous memory (RssAnon in /proc/self/status
    # after `import torch, transformers, llmcompressor`), which the kernel cannot reclaim; at
    # 800Mi it ran to the end (its shared libraries' pages are reclaimable). The limit sits
    # below what Python holds before it imports torch: near torch's libraries (at 384Mi and at
    # 128Mi) the pod thrashed on their pages for 15 minutes instead of being OOM-killed, the
    # kernel reclaiming them as fast as they were read back. At 32Mi it still thrashed, on
    # Python's own pages, but was OOM-killed within 380 s (2026-12-06).
    memory = {"memory": "32Mi"}
    body["spec"]["quantization"]["resources"] = {"requests": memory, "limits": memory}
    models.create(body)

    failed = models.wait_condition("starved", "Quantized", "False", timeout=TIMEOUT)

    assert failed["reason"] == "Failed", failed
    assert "OOMKilled (exit code 137)" in failed["message"], failed
