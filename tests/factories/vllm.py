"""Real vLLM (the CPU build in serving/.venv) on loopback, one server at a time.

`VllmServers.serve(model_dir, args)` starts `vllm serve` with an argument list the operator's
serving builder produced, changed only where a CPU test host must differ (`cpu_host_args`), and
returns a running `VllmServer`; asking again for the same model and arguments returns the same
server, asking for another stops the one running first (each costs ~4 GiB and ~1 min here).
The checkpoints it serves come from `factories.models.quantize` (the real quantize program).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factories.gpus import DEV_INVENTORY
from factories.resources import ARTIFACT_ID, Json, make_owner, make_plan, make_run_owner, make_spec
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.benchmark import build_baseline_deployment
from quantfleet.builders.serving import build_deployment
from quantfleet.builders.serving_status import SELECTED_KERNEL
from quantfleet.planning.baseline import BaselinePlan, plan_baseline

REPO = Path(__file__).resolve().parents[2]
SERVING_ENV = REPO / "serving" / ".venv"
SERVING_PYTHON = SERVING_ENV / "bin" / "python"
VLLM = SERVING_ENV / "bin" / "vllm"
# The Deployment's startup probe allows 180 x 10 s; a tiny model on two cores needs ~1 min.
START_TIMEOUT = 600.0
# GiB of host RAM for the KV cache: on the CPU --gpu-memory-utilization is a share of host RAM.
KV_CACHE_GIB = "1"
# What a CPU test host changes in the Deployment's arguments, and why (docs/serving.md):
# - --gpu-memory-utilization is a share of *host RAM* on the CPU (0.9 of 24 GiB is refused); the
#   KV cache is sized by VLLM_CPU_KVCACHE_SPACE instead;
# - --port: a free loopback port instead of the container's 8000;
# - --enforce-eager (added): skips ~40 s of torch.compile warm-up per server, same outputs.
DROPPED_ON_CPU = ("--gpu-memory-utilization", "--port")
ADDED_ON_CPU = ("--enforce-eager",)
# Environment of every server: the KV cache in host RAM. VLLM_ENABLE_V1_MULTIPROCESSING is read
# only by vLLM's offline LLM engine; `vllm serve` 0.32 still starts its engine core as a process
# of its own (its log shows APIServer and EngineCore pids).
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": KV_CACHE_GIB, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


# The tiny models' context (factories.models) and the served name the tests' requests use.
TINY_CONTEXT = {ModelKind.TEXT: 512, ModelKind.VISION_LANGUAGE: 1024}
SERVED_NAME = "tiny"


def tiny_model_sections(kind: ModelKind, scheme: Scheme) -> dict[str, Any]:
    """The spec sections (source, output, serving) of a QuantizedModel of a tiny model in
    `scheme`, on claim `models`: what deployment_args builds from and e2e tests create."""
    serving: dict[str, object] = {"maxModelLength": TINY_CONTEXT[kind]}
    if kind is ModelKind.VISION_LANGUAGE:
        serving["imagesPerPrompt"] = 1
    return {
        "source": {"uri": "pvc://models/source", "kind": kind, "parametersBillions": 0.001},
        "output": {"uri": f"pvc://models/{scheme.lower()}"},
        "serving": serving,
    }


def tiny_spec(kind: ModelKind, scheme: Scheme) -> QuantizedModelSpec:
    """A QuantizedModel spec for a tiny model of `kind` quantized to `scheme`."""
    return make_spec(quantization={"scheme": scheme}, **tiny_model_sections(kind, scheme))


def vllm_container(pod_owner: Json) -> Json:
    """The vLLM container of a Deployment the operator built."""
    container: Json = pod_owner["spec"]["template"]["spec"]["containers"][0]
    return container


def build_tiny_deployment(kind: ModelKind, scheme: Scheme) -> Json:
    """The Deployment the operator builds for a QuantizedModel named `tiny` (tiny_spec)."""
    spec = tiny_spec(kind, scheme)
    return build_deployment(
        make_owner(SERVED_NAME),
        spec,
        spec.output.artifact_uri(ARTIFACT_ID),
        make_plan(spec),
        OperatorSettings(),
    )


def deployment_args(checkpoint: Path, kind: ModelKind, scheme: Scheme) -> list[str]:
    """The `vllm serve` arguments of the Deployment the operator builds for a QuantizedModel
    named `tiny` serving `checkpoint` (first word: the model location)."""
    args: list[str] = vllm_container(build_tiny_deployment(kind, scheme))["args"]
    # The model location comes first: the artifact's folder under the spec's output.
    assert args[0].endswith(f"{scheme.lower()}/{ARTIFACT_ID}"), args
    return [str(checkpoint), *args[1:]]


def baseline_args(source: Path, kind: ModelKind) -> list[str]:
    """The `vllm serve` arguments of a BenchmarkRun's BF16 baseline of that QuantizedModel: its
    unquantized `source`, planned on the simulated fleet as the operator plans it."""
    spec = tiny_spec(kind, Scheme.W8A8)
    plan = make_plan(spec)
    baseline = plan_baseline(plan.parameters, plan.target_families[0], DEV_INVENTORY)
    assert isinstance(baseline, BaselinePlan), baseline
    deployment = build_baseline_deployment(
        make_run_owner(), spec, SERVED_NAME, baseline, OperatorSettings()
    )
    args: list[str] = vllm_container(deployment)["args"]
    assert args[0].endswith("source"), args  # the model location comes first
    return [str(source), *args[1:]]


def serving_env_ready() -> bool:
    return VLLM.exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_host_args(args: Sequence[str], port: int) -> list[str]:
    """The Deployment's `vllm serve` arguments as a CPU test host runs them."""
    kept = [arg for arg in args if arg.split("=", 1)[0] not in DROPPED_ON_CPU]
    return [*kept, f"--port={port}", "--host=127.0.0.1", *ADDED_ON_CPU]


@dataclass
class VllmServer:
    """One running `vllm serve`; its whole log is in `log_path`."""

    key: tuple[str, ...]
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started_in: float = 0.0  # seconds from start until /health answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def selected_kernels(self) -> dict[str, str]:
        """vLLM's own words on what it chose: compressed-tensors scheme class -> linear kernel."""
        return {scheme: kernel for kernel, scheme in SELECTED_KERNEL.findall(self.log())}

    def get(self, path: str, timeout: float = 30.0) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            body: bytes = response.read()
            return body.decode()

    def healthy(self) -> bool:
        try:
            self.get("/health", timeout=5)
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class VllmStartError(RuntimeError):
    """`vllm serve` exited or never turned healthy; the message ends with its log's last lines,
    `log` holds all of it."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


@dataclass
class VllmServers:
    """At most one live server; `serve` reuses it for the same model and arguments."""

    log_dir: Path
    current: VllmServer | None = None
    started: list[tuple[str, float]] = field(default_factory=list)  # (model, seconds)

    def serve(
        self, model: Path, args: Sequence[str], *, timeout: float = START_TIMEOUT
    ) -> VllmServer:
        """A healthy server of `model` with the Deployment's `args` (their first word, the
        model location, is replaced by `model`)."""
        key = (str(model), *args[1:])
        if self.current is not None and self.current.key == key and self.current.healthy():
            return self.current
        self.stop()
        port = free_port()
        log_path = self.log_dir / f"vllm-{port}-{model.name}.log"
        command = [str(VLLM), "serve", str(model), *cpu_host_args(args[1:], port)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **SERVER_ENV},
                start_new_session=True,  # stop() signals the whole group
            )
        server = VllmServer(key, process, port, log_path)
        began = time.monotonic()
        deadline = began + timeout
        while not server.healthy():
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                log = server.log()
                tail = "\n".join(log.splitlines()[-15:])
                raise VllmStartError(f"vllm serve {model.name} did not become ready:\n{tail}", log)
            time.sleep(1)
        server.started_in = time.monotonic() - began
        self.started.append((model.name, server.started_in))
        self.current = server
        return server

    def fail_to_serve(
        self, model: Path, args: Sequence[str], *, timeout: float = START_TIMEOUT
    ) -> str:
        """Start a server that must not come up; returns its log (raises if it did)."""
        try:
            self.serve(model, args, timeout=timeout)
        except VllmStartError as failure:
            return failure.log
        self.stop()
        raise AssertionError(f"vllm serve {model.name} came up, but it should have failed")

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None
