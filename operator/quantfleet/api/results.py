"""The versioned result a Job program leaves in its pod's termination message for the operator.

Kubernetes caps a termination message at 4096 bytes, so every result is compact and
`dump_result` refuses one that does not fit. Imports only pydantic, the stdlib and the enums.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from quantfleet.api.contract import MAX_BENCHMARKS, MAX_REASON_CHARS, MAX_RESULT_BYTES, MAX_TASKS
from quantfleet.api.enums import Modality, ModelKind, Scheme

RESULT_SCHEMA_VERSION: Literal["v1"] = "v1"

ProgramName = Literal["quantize", "evaluate", "benchmark"]
# The library that writes a checkpoint: its version is in QuantizeResult.library_versions.
CHECKPOINT_LIBRARY = "compressed-tensors"


# Results are read by an operator that may be older than the program: unknown fields are
# ignored rather than refused, and a parsed result is a value (frozen).
_RESULT_CONFIG = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Percentiles(BaseModel):
    """A latency distribution summarised by three percentiles (of successful requests): in a
    benchmark result and, unchanged, in a BenchmarkRun's status."""

    model_config = _RESULT_CONFIG

    p50: float = Field(description="Median.")
    p90: float = Field(description="90th percentile.")
    p99: float = Field(description="99th percentile.")


class _Result(BaseModel):
    model_config = _RESULT_CONFIG

    schema_version: Literal["v1"] = Field(
        default=RESULT_SCHEMA_VERSION, description="Version of this result schema."
    )
    simulated: bool = Field(
        default=False,
        description="True when a test fleet's simulated worker made this result, not a real run.",
    )


class QuantizeResult(_Result):
    """What the quantize program produced, classified from the saved checkpoint."""

    program: Literal["quantize"] = Field(default="quantize", description="Program that ran.")
    outcome: Literal["Succeeded"] = Field(default="Succeeded", description="How the run ended.")
    output: str = Field(description="Where the compressed-tensors checkpoint was written.")
    model_kind: ModelKind = Field(description="Whether the source model takes images.")
    requested_scheme: Scheme = Field(description="The scheme the run was asked for.")
    scheme: Scheme | None = Field(
        description="Scheme classified from the saved config.json; null if none of ours."
    )
    format: str = Field(description="compressed-tensors format from the saved config.json.")
    recipe_overridden: bool = Field(description="Whether a recipe override replaced the default.")
    ignored_modules: int = Field(ge=0, description="Modules the checkpoint keeps unquantized.")
    calibration_samples: int = Field(ge=0, description="Calibration samples actually used.")
    size_before_bytes: int = Field(ge=0, description="Bytes of weights in the source checkpoint.")
    size_after_bytes: int = Field(ge=0, description="Bytes of weights in the quantized checkpoint.")
    compression_ratio: float = Field(ge=0, description="size_before_bytes / size_after_bytes.")
    duration_seconds: float = Field(ge=0, description="Wall time from start to published result.")
    device: str = Field(description="Device that ran calibration: cpu or cuda.")
    library_versions: dict[str, str] = Field(
        description="Versions of llmcompressor, compressed-tensors, transformers and torch."
    )


class TaskScore(BaseModel):
    """One task's baseline and quantized score and their ratio."""

    model_config = _RESULT_CONFIG

    task: str = Field(
        max_length=64,
        description="Task name as the QuantizedModel's spec gives it (mmmu, mgsm, ...); a name "
        "outside the CRD's vocabulary (a local task) as given.",
    )
    metric: str = Field(max_length=64, description="Metric reported for the task.")
    baseline: float = Field(description="Baseline score (0..1 for accuracy-like metrics).")
    quantized: float = Field(description="Quantized checkpoint's score on the same samples.")
    recovery: float | None = Field(
        description="quantized / baseline x 100; null when the baseline scored 0."
    )
    version: str | None = Field(
        default=None, max_length=32, description="The harness task's version, as it reported it."
    )
    samples: int | None = Field(default=None, ge=0, description="Samples scored per model.")


class EvaluateResult(_Result):
    """Baseline vs quantized scores and recovery, computed as the study does."""

    program: Literal["evaluate"] = Field(default="evaluate", description="Program that ran.")
    outcome: Literal["Succeeded"] = Field(default="Succeeded", description="How the run ended.")
    engine: Literal["server", "vllm", "hf"] = Field(
        description="What scored the models: a vLLM server per checkpoint over its OpenAI API "
        "(server), in-process vLLM or transformers (hf)."
    )
    baseline: str = Field(description="Baseline model reference (URI or path).")
    baseline_revision: str | None = Field(
        default=None, description="Baseline revision, part of the baseline cache key."
    )
    quantized: str = Field(description="Quantized checkpoint reference (URI or path).")
    limit: int | None = Field(description="Per-task sample limit; part of the cache key.")
    baseline_cached: bool = Field(description="Whether baseline scores came from a cache.")
    tasks: list[TaskScore] = Field(
        max_length=MAX_TASKS, description="Per-task scores and recovery."
    )
    baseline_average: float = Field(description="Mean of the baseline task scores.")
    quantized_average: float = Field(description="Mean of the quantized task scores.")
    recovery: float | None = Field(
        description="Overall recovery: quantized_average / baseline_average x 100 (ratio of "
        "averages, not the mean of per-task ratios); null when the baseline averaged 0."
    )
    recovery_by_modality: dict[Modality, float | None] = Field(
        default_factory=dict,
        description="Recovery over each modality's tasks alone (vision, text), as the overall.",
    )
    duration_seconds: float = Field(ge=0, description="Wall time of the run.")
    library_versions: dict[str, str] = Field(description="Versions of lm-eval and the engine.")


class BenchmarkMeasurement(BaseModel):
    """One GuideLLM benchmark (a workload under one scenario, rate or sweep step), summarised."""

    model_config = _RESULT_CONFIG

    workload: str = Field(max_length=64, description="Workload name (image size, tokens).")
    scenario: str = Field(
        max_length=64,
        description="The run's label (contract.run_label): latency, throughput, rate@R, "
        "sweep:synchronous, sweep:throughput, sweep@R.",
    )
    requests_per_second: float = Field(description="Successful requests per second.")
    output_tokens_per_second: float = Field(description="Generated tokens per second.")
    ttft_ms: Percentiles = Field(description="Time to first token, milliseconds.")
    itl_ms: Percentiles = Field(description="Inter-token latency, milliseconds.")
    latency_s: Percentiles = Field(description="Request latency, seconds.")
    successful: int = Field(ge=0, description="Requests that succeeded.")
    errored: int = Field(ge=0, description="Requests that failed.")
    error_rate: float = Field(ge=0, le=1, description="errored / (successful + errored).")


class BenchmarkResult(_Result):
    """GuideLLM's report, reduced to what the operator compares across schemes."""

    program: Literal["benchmark"] = Field(default="benchmark", description="Program that ran.")
    outcome: Literal["Succeeded"] = Field(default="Succeeded", description="How the run ended.")
    target: str = Field(description="OpenAI-compatible endpoint that was benchmarked.")
    model: str = Field(description="Served model name requests were sent for.")
    runs: list[BenchmarkMeasurement] = Field(
        max_length=MAX_BENCHMARKS, description="One entry per workload x scenario."
    )
    max_error_rate: float = Field(ge=0, le=1, description="Error rate above which a run fails.")
    report: str = Field(description="Where GuideLLM's full report was written.")
    duration_seconds: float = Field(ge=0, description="Wall time of the run.")
    library_versions: dict[str, str] = Field(description="Version of GuideLLM.")


class FailureResult(_Result):
    """A run that failed: a one-line reason, never a traceback or a secret."""

    program: ProgramName = Field(description="Program that ran.")
    outcome: Literal["Failed"] = Field(default="Failed", description="How the run ended.")
    reason: str = Field(
        max_length=MAX_REASON_CHARS, pattern=r"^[^\n\r]*$", description="One-line cause."
    )


AnyResult = QuantizeResult | EvaluateResult | BenchmarkResult | FailureResult
# `program` and `outcome` are literals, so pydantic's smart union picks exactly one model.
_ANY_RESULT: TypeAdapter[AnyResult] = TypeAdapter(AnyResult)


class ResultTooLargeError(ValueError):
    """A serialised result would not fit in a termination message."""


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """Collapse `text` to a single line of at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def dump_result(result: AnyResult) -> str:
    """Serialise compactly with camelCase keys; raise if it exceeds the 4 KB message cap."""
    text = result.model_dump_json(by_alias=True)
    size = len(text.encode())
    if size > MAX_RESULT_BYTES:
        raise ResultTooLargeError(f"result is {size} bytes, over the {MAX_RESULT_BYTES}-byte cap")
    return text


def parse_result(text: str) -> AnyResult:
    """Read a result back from a termination message (the operator's side)."""
    return _ANY_RESULT.validate_json(text)
