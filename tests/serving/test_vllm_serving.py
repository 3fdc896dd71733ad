"""Real vLLM (the CPU build in serving/.venv) serving what the quantize program writes, with the
argument list the operator's Deployment gives `vllm serve`, changed only where a CPU host must
(factories.vllm.cpu_host_args). One server per model and scheme, shared by the tests below it:
the module-scoped `served` fixture is parametrized, so pytest runs each server's tests together.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from factories.monitoring import dashboard_metrics
from factories.resources import ARTIFACT_ID, make_owner, make_plan, make_spec
from factories.vllm import (
    ADDED_ON_CPU,
    DROPPED_ON_CPU,
    SERVED_NAME,
    SERVING_PYTHON,
    VllmServer,
    VllmServers,
    baseline_args,
    build_tiny_deployment,
    cpu_host_args,
    deployment_args,
    vllm_container,
)
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.serving import build_deployment
from quantfleet.planning.compat import VLLM_CPU_KERNEL, VLLM_SCHEME_CLASS

# The linear kernel vLLM 0.32's CPU build selects per scheme on this host (AVX-512/AMX): the
# operator's CPU compatibility rows cite it (planning.compat). A GPU picks others (Marlin, CUTLASS).
CPU_KERNEL = VLLM_CPU_KERNEL
# vLLM's own line when a scheme has no kernel on the host (NVFP4 has none on the CPU).
NVFP4_FAILURE = "Failed to find a kernel that can implement the NVFP4 linear layer"
SOURCE_FIXTURE = {ModelKind.TEXT: "tiny_llama", ModelKind.VISION_LANGUAGE: "tiny_vlm"}
# What vLLM reads besides the weights, from the checkpoint directory itself (no --tokenizer).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
# Families a Prometheus scrape of the Deployment relies on (docs/serving.md).
METRIC_FAMILIES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
)
PROMPT = "the quick brown fox"
MAX_TOKENS = 16
REQUEST_TIMEOUT = 120.0


@dataclass(frozen=True)
class Case:
    """One server: a tiny model, quantized to `scheme` or (None) its BF16 source as a
    BenchmarkRun's baseline serves it."""

    kind: ModelKind
    scheme: Scheme | None

    @property
    def label(self) -> str:
        model = "text" if self.kind is ModelKind.TEXT else "vlm"
        return f"{model}-{self.scheme or 'BF16'}"


CASES = [
    Case(kind, scheme)
    for kind in (ModelKind.TEXT, ModelKind.VISION_LANGUAGE)
    for scheme in (None, *CPU_KERNEL)
]


@dataclass(frozen=True)
class Served:
    case: Case
    model: Path  # the directory vLLM loads
    args: list[str]  # the operator's argument list (model location first)
    server: VllmServer


# Greedy answers per case, kept so the W8A8-vs-BF16 comparison needs no server of its own.
GREEDY: dict[Case, str] = {}


def model_and_args(
    request: pytest.FixtureRequest, case: Case, checkpoint: Any
) -> tuple[Path, list[str]]:
    """What the operator would serve for `case`: the checkpoint with its Deployment's arguments,
    or the source with its baseline's."""
    source: Path = request.getfixturevalue(SOURCE_FIXTURE[case.kind])
    if case.scheme is None:
        return source, baseline_args(source, case.kind)
    model: Path = checkpoint(source, case.scheme)
    return model, deployment_args(model, case.kind, case.scheme)


def serve(
    request: pytest.FixtureRequest, case: Case, vllm_servers: VllmServers, measured: list[str]
) -> Served:
    model, args = model_and_args(request, case, request.getfixturevalue("checkpoint"))
    started = len(vllm_servers.started)
    server = vllm_servers.serve(model, args)
    if len(vllm_servers.started) > started:  # a new server, not the one already running
        measured.append(
            f"{case.label}: /health ready in {server.started_in:.1f} s, "
            f"RSS {rss_gib(server):.2f} GiB"
        )
    return Served(case, model, args, server)


@pytest.fixture(scope="module", params=CASES, ids=[case.label for case in CASES])
def served(
    request: pytest.FixtureRequest, vllm_servers: VllmServers, measured: list[str]
) -> Served:
    case: Case = request.param
    return serve(request, case, vllm_servers, measured)


def rss_gib(server: VllmServer) -> float:
    """Resident memory of the server and every process it started."""
    root = psutil.Process(server.process.pid)
    processes = [root, *root.children(recursive=True)]
    return sum(process.memory_info().rss for process in processes) / 2**30


def post(server: VllmServer, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of a POST to the server; errors are returned, not raised."""
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def png_data_url(seed: int = 0) -> str:
    """A 64 x 64 RGB gradient as a data: URL (Qwen2-VL's processor resizes it to 56 x 56)."""
    from PIL import Image

    image = Image.new("RGB", (64, 64))
    image.putdata([((x * 4 + seed) % 256, y * 4, 128) for y in range(64) for x in range(64)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def images_allowed(args: list[str]) -> int:
    """The Deployment's --limit-mm-per-prompt for images."""
    (limit,) = [a.split("=", 1)[1] for a in args if a.startswith("--limit-mm-per-prompt=")]
    images: int = json.loads(limit)["image"]
    return images


def chat(server: VllmServer, images: int = 0) -> tuple[int, dict[str, Any]]:
    """A greedy chat completion of PROMPT with `images` pictures, exactly MAX_TOKENS long
    (ignore_eos: a random tiny model may stop at once)."""
    content: str | list[dict[str, Any]] = PROMPT
    if images:
        pictures = [
            {"type": "image_url", "image_url": {"url": png_data_url(seed)}}
            for seed in range(images)
        ]
        content = [*pictures, {"type": "text", "text": PROMPT}]
    return post(
        server,
        "/v1/chat/completions",
        {
            "model": SERVED_NAME,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0,
            "max_tokens": MAX_TOKENS,
            "ignore_eos": True,
        },
    )


def greedy_answer(served: Served) -> str:
    """The model's greedy answer to PROMPT at the Deployment's image limit; asserts the reply."""
    images = images_allowed(served.args) if served.case.kind is ModelKind.VISION_LANGUAGE else 0
    status, reply = chat(served.server, images)
    assert status == 200, reply
    (choice,) = reply["choices"]
    assert choice["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == MAX_TOKENS
    answer: str = choice["message"]["content"]
    assert answer.strip(), reply
    GREEDY[served.case] = answer
    return answer


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus text format -> {sample name with labels: value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


# --- Per server ------------------------------------------------------------------------------
def test_vllm_selected_the_scheme_class_the_operator_expects_and_the_cpu_kernel(
    served: Served,
) -> None:
    kernels = served.server.selected_kernels()

    if served.case.scheme is None:
        assert kernels == {}, "the BF16 source took a quantized kernel"
    else:
        scheme = served.case.scheme
        assert kernels == {VLLM_SCHEME_CLASS[scheme]: CPU_KERNEL[scheme]}


def test_chat_completions_answer_greedily_within_the_deployments_image_limit(
    served: Served, measured: list[str]
) -> None:
    answer = greedy_answer(served)
    measured.append(f"{served.case.label}: greedy answer to {PROMPT!r}: {answer!r}")

    if served.case.kind is ModelKind.VISION_LANGUAGE:
        allowed = images_allowed(served.args)
        status, text_only = chat(served.server, images=0)
        assert status == 200, text_only
        status, with_images = chat(served.server, images=allowed)
        assert status == 200, with_images
        assert with_images["usage"]["prompt_tokens"] > text_only["usage"]["prompt_tokens"]
        status, refused = chat(served.server, images=allowed + 1)
        assert status == 400, refused
        assert f"At most {allowed} image(s) may be provided in one prompt" in json.dumps(refused)


def test_metrics_serve_vllms_families(served: Served) -> None:
    status, _ = chat(served.server)
    assert status == 200
    samples = metric_samples(served.server.get("/metrics"))
    names = {re.split(r"[{ ]", sample, maxsplit=1)[0] for sample in samples}

    missing = [f for f in METRIC_FAMILIES if not {f, f + "_total", f + "_count"} & names]
    assert not missing, sorted(n for n in names if n.startswith("vllm:"))
    ttft = [v for s, v in samples.items() if s.startswith("vllm:time_to_first_token_seconds_count")]
    assert sum(ttft) >= 1


def test_the_dashboards_serving_queries_read_metrics_this_server_exports(served: Served) -> None:
    status, _ = chat(served.server)
    assert status == 200
    samples = metric_samples(served.server.get("/metrics"))
    names = {re.split(r"[{ ]", sample, maxsplit=1)[0] for sample in samples}

    assert dashboard_metrics("vllm:") - names == set()


def test_health_turns_ready_within_the_startup_probe(served: Served) -> None:
    # The baseline's pod is the model's own pod template (builders.benchmark), so one probe.
    scheme = served.case.scheme or Scheme.W8A8
    probe = vllm_container(build_tiny_deployment(served.case.kind, scheme))["startupProbe"]
    allowed = probe["periodSeconds"] * probe["failureThreshold"]

    assert probe["httpGet"]["path"] == "/health"
    assert served.server.get("/health") == ""
    assert 0 < served.server.started_in < allowed


def test_the_served_directory_alone_carries_the_tokenizer_and_processor(served: Served) -> None:
    files = {path.name for path in served.model.iterdir()}

    assert not [a for a in served.args if a.startswith("--tokenizer")]  # vLLM read them from here
    assert set(TOKENIZER_FILES) <= files
    if served.case.kind is ModelKind.VISION_LANGUAGE:
        # transformers 5 keeps the image processor in processor_config.json (4.x: preprocessor_).
        processor = json.loads((served.model / "processor_config.json").read_text())
        assert processor["image_processor"]["image_processor_type"] == "Qwen2VLImageProcessor"


# --- Across servers --------------------------------------------------------------------------
def test_nvfp4_fails_on_the_cpu_with_vllms_reason(
    tiny_llama: Path, checkpoint: Any, vllm_servers: VllmServers, measured: list[str]
) -> None:
    model = checkpoint(tiny_llama, Scheme.NVFP4)
    log = vllm_servers.fail_to_serve(model, deployment_args(model, ModelKind.TEXT, Scheme.NVFP4))

    lines = [line.strip() for line in log.splitlines() if NVFP4_FAILURE in line]
    assert lines, log[-3000:]
    # It failed inside the scheme class the operator expects (the traceback names it).
    assert VLLM_SCHEME_CLASS[Scheme.NVFP4] in log
    measured.append(f"text-NVFP4 (refused, as expected): {lines[-1]}")


def test_greedy_output_of_w8a8_and_bf16_is_recorded(
    request: pytest.FixtureRequest, vllm_servers: VllmServers, measured: list[str]
) -> None:
    answers = {}
    for scheme in (None, Scheme.W8A8):
        case = Case(ModelKind.TEXT, scheme)
        answers[case.label] = GREEDY.get(case) or greedy_answer(
            serve(request, case, vllm_servers, measured)
        )

    # Recorded, not compared: a tiny random model's greedy path may legitimately differ.
    same = len(set(answers.values())) == 1
    measured.append(f"W8A8 vs BF16 greedy (text): {'identical' if same else 'different'}")
    assert all(answer.strip() for answer in answers.values())


def in_serving_env(program: str, payload: object) -> Any:
    """Run `program` with serving/.venv's Python (vLLM importable); it reads JSON `payload` from
    stdin and prints its JSON answer as the last line."""
    done = subprocess.run(
        [str(SERVING_PYTHON), "-c", program],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


LIST_SCHEME_CLASSES = """
import json
from vllm.model_executor.layers.quantization.compressed_tensors import schemes
print(json.dumps(schemes.__all__))
"""
# vLLM's own `vllm serve` parser and engine arguments, as the server builds them.
PARSE_ARGS = """
import json, sys
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
parsed = []
for args in json.load(sys.stdin):
    namespace = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", *args])
    engine = AsyncEngineArgs.from_cli_args(namespace)
    parsed.append([engine.model, engine.load_format, engine.tensor_parallel_size, namespace.port])
print(json.dumps(parsed))
"""


def test_vllm_knows_every_scheme_class_the_operator_names() -> None:
    classes = set(in_serving_env(LIST_SCHEME_CLASSES, None))

    assert set(VLLM_SCHEME_CLASS.values()) <= classes


# (source, output, the load format vLLM must take): every location, and a 400B hub model that
# the plan spreads over several GPUs.
LOCATIONS = [
    ("pvc://models/src", "pvc://models/q", "auto"),
    ("pvc://models/src", "s3://bucket/q", "runai_streamer"),
    ("hf://x/y", "pvc://models/q", "auto"),
]


def test_vllms_own_parser_takes_the_deployments_arguments() -> None:
    # Parsed by vLLM 0.32 itself, as `vllm serve` parses them (the s3:// list cannot be served
    # here: the serving environment has no runai extra; docs/serving.md).
    built = []
    for source, output, _ in LOCATIONS:
        spec = make_spec(
            source={"uri": source, "parametersBillions": 400 if "hf://" in source else 8.3},
            output={"uri": output},
            serving={"imagesPerPrompt": 2, "maxModelLength": 4096, "extraArgs": ["--seed=1"]},
        )
        plan = make_plan(spec)
        deployment = build_deployment(
            make_owner(), spec, spec.output.artifact_uri(ARTIFACT_ID), plan, OperatorSettings()
        )
        built.append((vllm_container(deployment)["args"], plan.tensor_parallel_size))
    # And a CPU replica's (spec.placement.hardware cpu): no --gpu-memory-utilization there.
    cpu_spec = make_spec(quantization={"scheme": "W8A8"}, placement={"hardware": "cpu"})
    cpu_plan = make_plan(cpu_spec)
    assert cpu_plan.cpu is not None
    cpu_deployment = build_deployment(
        make_owner(),
        cpu_spec,
        cpu_spec.output.artifact_uri(ARTIFACT_ID),
        cpu_plan,
        OperatorSettings(),
    )
    built.append((vllm_container(cpu_deployment)["args"], 1))

    parsed = in_serving_env(PARSE_ARGS, [args for args, _ in built])

    formats = [load_format for _, _, load_format in LOCATIONS] + ["auto"]
    want = [
        [args[0], load_format, tensor_parallel, 8000]
        for (args, tensor_parallel), load_format in zip(built, formats, strict=True)
    ]
    assert parsed == want
    assert len({tensor_parallel for _, tensor_parallel in built}) > 1  # TP > 1 among them


# --- The argument lists ----------------------------------------------------------------------
def flag(arg: str) -> str:
    return arg.split("=", 1)[0]


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_served_arguments_differ_from_the_operators_only_where_a_cpu_host_must(
    case: Case,
) -> None:
    model = Path("/models/tiny")
    args = (
        baseline_args(model, case.kind)
        if case.scheme is None
        else deployment_args(model, case.kind, case.scheme)
    )
    port = 1234
    served = cpu_host_args(args[1:], port)
    added = [f"--port={port}", "--host=127.0.0.1", *ADDED_ON_CPU]

    # Every flag the CPU host drops is one the operator sets (else DROPPED_ON_CPU is stale) ...
    assert {flag(a) for a in args[1:] if a not in served} == set(DROPPED_ON_CPU)
    # ... the rest is kept, in order, and the CPU host only appends its own ...
    assert served == [a for a in args[1:] if flag(a) not in DROPPED_ON_CPU] + added
    # ... none of which the operator already sets (else the test would silently override it).
    assert not {flag(a) for a in args[1:]} & ({flag(a) for a in added} - set(DROPPED_ON_CPU))
