"""Faults on the real node reach the model's conditions with the pod's own reason: a quantize pod
killed mid-run (then retried), a quantize pod OOM-killed by its memory limit, a vLLM server that
crash-loops, and a vLLM image the node does not have."""

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from kubernetes import client

from factories import Models
from quantfleet.api.contract import RUN_AS
from quantfleet.cli.incluster import MODELS_CLAIM, TINY_VLM, tiny_vlm_model
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


def oversized(model: Path, to: Path, vocabulary: int) -> None:
    """A copy of `model` whose embedding and LM head have `vocabulary` rows, stored as float32:
    loading converts them to the config's bfloat16, in memory the kernel cannot reclaim."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, to)
    config = json.loads((to / "config.json").read_text())
    config["text_config"]["vocab_size"] = vocabulary
    (to / "config.json").write_text(json.dumps(config))
    weights = load_file(model / "model.safetensors")
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        weights[key] = torch.zeros((vocabulary, weights[key].shape[1]), dtype=torch.float32)
    save_file(weights, to / "model.safetensors")
    for path in (to, *to.iterdir()):
        os.chown(path, RUN_AS, RUN_AS)


def test_a_quantize_pod_over_its_memory_limit_fails_as_oomkilled(
    models_namespace: tuple[str, Path], real_api: client.ApiClient
) -> None:
    namespace, folder = models_namespace
    models = Models(real_api, namespace)
    # 1.5M rows of 128: 750 MiB once converted, on top of the 548 MiB of anonymous memory the
    # program's imports hold. At 800Mi the tiny model itself ran to the end. A limit below the
    # imports instead (384Mi, 128Mi, 32Mi) made the pod thrash on its libraries' pages, which
    # the kernel reclaims and the program reads back, for 6 to 15 minutes before any OOM kill.
    oversized(folder / TINY_VLM, folder / "oversized", vocabulary=1_500_000)
    body = tiny_vlm_model("starved")
    body["spec"]["source"]["uri"] = f"pvc://{MODELS_CLAIM}/oversized"
    memory = {"memory": "800Mi"}
    body["spec"]["quantization"]["resources"] = {"requests": memory, "limits": memory}
    models.create(body)

    failed = models.wait_condition("starved", "Quantized", "False", timeout=TIMEOUT)

    assert failed["reason"] == "Failed", failed
    assert "OOMKilled (exit code 137)" in failed["message"], failed
