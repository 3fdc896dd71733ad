"""The result schema shared with the operator: camelCase, versioned, one line, at most 4 KB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.results import (
    MAX_RESULT_BYTES,
    BenchmarkMeasurement,
    BenchmarkResult,
    FailureResult,
    Percentiles,
    QuantizeResult,
    ResultTooLargeError,
    dump_result,
    one_line,
    parse_result,
)
from quantfleet_jobs.checkpoints import classify


def make_quantize_result(**overrides: object) -> QuantizeResult:
    fields: dict[str, object] = {
        "output": "s3://bucket/model-w4a16",
        "model_kind": ModelKind.VISION_LANGUAGE,
        "requested_scheme": Scheme.W4A16,
        "scheme": Scheme.W4A16,
        "format": "pack-quantized",
        "recipe_overridden": False,
        "ignored_modules": 130,
        "calibration_samples": 512,
        "size_before_bytes": 16_000_000_000,
        "size_after_bytes": 5_000_000_000,
        "compression_ratio": 3.2,
        "duration_seconds": 1800.5,
        "device": "cuda",
        "library_versions": {"llmcompressor": "0.14.0.1", "torch": "2.14.0"},
    }
    fields.update(overrides)
    return QuantizeResult.model_validate(fields)


def make_run(i: int) -> BenchmarkMeasurement:
    p = Percentiles(p50=1.0, p90=2.0, p99=3.0)
    return BenchmarkMeasurement(
        workload=f"docvqa-{i}", scenario="throughput", requests_per_second=1.5,
        output_tokens_per_second=190.0, ttft_ms=p, itl_ms=p, latency_s=p,
        successful=100, errored=0, error_rate=0.0,
    )  # fmt: skip


def test_quantize_result_round_trips_with_camel_case_keys_and_version() -> None:
    text = dump_result(make_quantize_result())
    data = json.loads(text)
    assert data["schemaVersion"] == "v1"
    assert data["program"] == "quantize"
    assert data["sizeBeforeBytes"] == 16_000_000_000
    assert data["modelKind"] == "vision-language"
    assert parse_result(text) == make_quantize_result()


def test_a_full_benchmark_result_fits_in_a_termination_message() -> None:
    result = BenchmarkResult(
        target="http://qwen2-5-vl-7b-w4a16.models.svc:8000", model="Qwen/Qwen2.5-VL-7B-Instruct",
        runs=[make_run(i) for i in range(12)], max_error_rate=0.05,
        report="/results/benchmark.json", duration_seconds=3600.0,
        library_versions={"guidellm": "0.8.1"},
    )  # fmt: skip
    assert len(dump_result(result).encode()) <= MAX_RESULT_BYTES


def test_a_result_over_4kb_is_refused() -> None:
    result = make_quantize_result(library_versions={f"lib{i}": "x" * 40 for i in range(100)})
    with pytest.raises(ResultTooLargeError, match="4096"):
        dump_result(result)


def test_failure_reason_must_be_one_line() -> None:
    with pytest.raises(ValidationError):
        FailureResult(program="quantize", reason="line one\nline two")
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 5000)) == 512


@pytest.mark.parametrize(
    ("fmt", "weights", "activations", "want"),
    [
        pytest.param(
            "float-quantized",
            (8, "float"),
            (8, "float", True),
            Scheme.FP8_DYNAMIC,
            id="fp8-dynamic",
        ),
        pytest.param(
            "float-quantized", (8, "float"), (8, "float", False), None, id="fp8-static-is-not-ours"
        ),
        pytest.param("int-quantized", (8, "int"), (8, "int", True), Scheme.W8A8, id="int8-w8a8"),
        pytest.param("pack-quantized", (4, "int"), None, Scheme.W4A16, id="int4-weight-only"),
        pytest.param("pack-quantized", (8, "int"), None, None, id="w8a16-is-not-ours"),
        pytest.param(
            "nvfp4-pack-quantized", (4, "float"), (4, "float", "local"), Scheme.NVFP4, id="nvfp4"
        ),
    ],
)
def test_classify_reads_the_scheme_from_config_json(
    fmt: str,
    weights: tuple[int, str],
    activations: tuple[int, str, object] | None,
    want: Scheme | None,
) -> None:
    group: dict[str, object] = {"weights": {"num_bits": weights[0], "type": weights[1]}}
    if activations:
        group["input_activations"] = {
            "num_bits": activations[0], "type": activations[1], "dynamic": activations[2]
        }  # fmt: skip
    config = {
        "quantization_config": {
            "quant_method": "compressed-tensors",
            "format": fmt,
            "config_groups": {"group_0": group},
        }
    }
    assert classify(config) == (want, fmt)
    assert classify({}) == (None, "none")


def test_a_program_whose_result_is_too_large_fails_with_a_reason(tmp_path: Path) -> None:
    from quantfleet_jobs.common import (
        JobArgumentParser,
        add_common_arguments,
        env_defaults,
        run_program,
    )

    parser = JobArgumentParser()
    add_common_arguments(parser, env_defaults())
    log = tmp_path / "log"
    too_large = make_quantize_result(library_versions={f"lib{i}": "x" * 40 for i in range(100)})

    code = run_program("quantize", parser, lambda _: too_large, ["--termination-log", str(log)])

    assert code == 1
    result = parse_result(log.read_text())
    assert isinstance(result, FailureResult)
    assert "over the 4096-byte cap" in result.reason
