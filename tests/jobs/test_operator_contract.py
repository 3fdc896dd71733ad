"""The Jobs the operator builds call the programs with arguments the programs accept."""

import argparse
import json
from collections.abc import Callable
from typing import Any

import pytest

from factories import make_owner, make_run_owner
from quantfleet.api.benchmarkrun import BenchmarkRunSpec
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.benchmark import (
    SystemUnderTest,
    build_benchmark_job,
    runs_per_target,
    too_many_runs,
)
from quantfleet.builders.jobs import (
    artifact_id,
    build_evaluate_job,
    build_gpu_job_placement,
    build_quantize_job,
)
from quantfleet.kube.baseline_cache import cache_entries
from quantfleet.planning.inventory import GPU_RESOURCE
from quantfleet_jobs import benchmark, evaluate, quantize

OWNER = make_owner("q")
SPEC = QuantizedModelSpec.model_validate(
    {
        "source": {"uri": "hf://Qwen/Qwen2.5-VL-7B-Instruct", "revision": "main",
                   "kind": "vision-language"},
        "quantization": {"scheme": "W8A8", "ignore": ["re:.*lm_head", "re:.*visual.*"],
                         "calibration": {"dataset": "lmms-lab/flickr30k", "samples": 64}},
        "output": {"uri": "pvc://models/q"},
        "evaluation": {"tasks": ["chartqa", "mmmu"], "limit": 20},
    }
)  # fmt: skip


def quantize_job() -> dict[str, Any]:
    return build_quantize_job(
        OWNER, SPEC, Scheme.W8A8, build_gpu_job_placement(0, []), OperatorSettings()
    )


def evaluate_job() -> dict[str, Any]:
    return build_evaluate_job(
        OWNER, SPEC, artifact_id(SPEC, Scheme.W8A8), ModelKind.VISION_LANGUAGE,
        build_gpu_job_placement(0, []), 1, {"chartqa": {"metric": "m", "score": 0.5}},
        OperatorSettings(),
    )  # fmt: skip


def benchmark_job() -> dict[str, Any]:
    spec = BenchmarkRunSpec.model_validate(
        {
            "targets": [{"name": "fp8", "modelRef": {"name": "q"}}],
            "workloads": [{"name": "doc", "preset": "docvqa"}, {"name": "chat",
                                                                 "outputTokens": 64}],
            "scenarios": [{"kind": "latency"}, {"kind": "rate", "rates": [0.5, 2]}],
            "limits": {"maxRequests": 50, "maxSeconds": 120},
            "reportUri": "pvc://reports/bench",
        }
    )  # fmt: skip
    endpoint = SystemUnderTest("fp8", "http://q-vllm.ml.svc:8000", "q", "hf://Qwen/Qwen2.5-VL-7B")
    return build_benchmark_job(make_run_owner("b"), spec, endpoint, OperatorSettings())


@pytest.mark.parametrize(
    ("job", "parser", "module"),
    [
        pytest.param(
            quantize_job, quantize.build_parser, "quantfleet_jobs.quantize", id="quantize"
        ),
        pytest.param(
            evaluate_job, evaluate.build_parser, "quantfleet_jobs.evaluate", id="evaluate"
        ),
        pytest.param(
            benchmark_job, benchmark.build_parser, "quantfleet_jobs.benchmark", id="benchmark"
        ),
    ],
)
def test_the_program_accepts_the_jobs_arguments(
    job: Callable[[], dict[str, Any]],
    parser: Callable[[], argparse.ArgumentParser],
    module: str,
) -> None:
    container = job()["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", module]
    parsed = parser().parse_args(container["args"])  # a JobError on anything unknown
    assert parsed.termination_log == "/dev/termination-log"


def sweep_spec(steps: int | None, workloads: int = 2) -> BenchmarkRunSpec:
    scenario: dict[str, Any] = {"kind": "sweep"}
    if steps is not None:
        scenario["steps"] = steps
    return BenchmarkRunSpec.model_validate(
        {
            "targets": [{"name": "fp8", "modelRef": {"name": "q"}}],
            "workloads": [{"name": f"w{i}", "preset": "docvqa"} for i in range(workloads)],
            "scenarios": [scenario],
        }
    )


@pytest.mark.parametrize(
    ("steps", "want_sweep_steps", "want_runs", "want_refused"),
    [
        pytest.param(4, 4, 8, False, id="the spec's steps reach the program and are counted"),
        pytest.param(None, 10, 20, True, id="no steps: GuideLLM's ten, too many for two workloads"),
    ],
)
def test_sweep_steps_reach_the_program_and_count_against_the_cap(
    steps: int | None, want_sweep_steps: int, want_runs: int, want_refused: bool
) -> None:
    spec = sweep_spec(steps)
    endpoint = SystemUnderTest("fp8", "http://q-vllm.ml.svc:8000", "q", "hf://Qwen/Qwen2.5-VL-7B")
    owner = {**OWNER, "kind": "BenchmarkRun", "metadata": {**OWNER["metadata"], "name": "b"}}
    job = build_benchmark_job(owner, spec, endpoint, OperatorSettings())
    container = job["spec"]["template"]["spec"]["containers"][0]

    parsed = benchmark.build_parser().parse_args(container["args"])

    assert parsed.sweep_steps == want_sweep_steps
    assert runs_per_target(spec) == want_runs
    assert (too_many_runs(spec) is not None) == want_refused


@pytest.mark.parametrize("gpus", [pytest.param(1, id="one GPU"), pytest.param(4, id="four GPUs")])
def test_the_evaluate_job_runs_its_engine_across_the_gpus_it_asks_for(gpus: int) -> None:
    job = build_evaluate_job(
        OWNER, SPEC, artifact_id(SPEC, Scheme.W8A8), ModelKind.VISION_LANGUAGE,
        build_gpu_job_placement(0, []), gpus, {}, OperatorSettings(),
    )  # fmt: skip
    container = job["spec"]["template"]["spec"]["containers"][0]

    parsed = evaluate.build_parser().parse_args(container["args"])

    assert parsed.tensor_parallel_size == gpus
    assert container["resources"]["limits"][GPU_RESOURCE] == str(gpus)


def test_the_baseline_scores_the_operator_caches_are_reused_by_the_same_harness_version() -> None:
    args = evaluate.build_parser({}).parse_args(["--baseline=b", "--quantized=q"])
    scores = {"chartqa": evaluate.Score("relaxed_accuracy,none", 0.8, "0.0", 2)}
    result = evaluate.summarise(
        args, ["chartqa"], scores, scores, engine="server", baseline_cached=False,
        duration_seconds=0.0, versions={"lm-eval": "0.4.13"},
    )  # fmt: skip
    # What the operator passes back: its ConfigMap's entries (read_baseline_scores parses them).
    cached = {task: json.loads(entry) for task, entry in cache_entries(result).items()}

    text = json.dumps(cached)
    assert evaluate.known_scores(text, {"lm-eval": "0.4.13"}) == scores
    assert evaluate.known_scores(text, {"lm-eval": "0.5.0"}) == {}
