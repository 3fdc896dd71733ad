"""Small factories for the handler tests: a QuantizedModel or BenchmarkRun body, and the results
its Jobs report."""

from typing import Any

from quantfleet.api.common import API_VERSION
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.results import EvaluateResult, QuantizeResult, TaskScore

Json = dict[str, Any]


def make_model_body(name: str = "qwen", namespace: str = "ml", **spec: Any) -> Json:
    """A QuantizedModel as the API returns it; keyword overrides replace whole spec sections."""
    return {
        "apiVersion": API_VERSION,
        "kind": "QuantizedModel",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "source": {"uri": "hf://Qwen/Qwen2.5-7B-Instruct", "parametersBillions": 7.6},
            "quantization": {"scheme": "FP8_DYNAMIC"},
            "output": {"uri": f"pvc://models/{name}-fp8"},
            **spec,
        },
    }


def make_run_body(name: str = "bench", namespace: str = "ml", **spec: Any) -> Json:
    """A BenchmarkRun of one plain endpoint; keyword overrides replace whole spec sections."""
    return {
        "apiVersion": API_VERSION,
        "kind": "BenchmarkRun",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": "2030-01-01T00:00:00Z",
        },
        "spec": {
            "targets": [
                {"name": "plain", "endpoint": {"url": "http://vllm:8000", "model": "qwen"}}
            ],
            "workloads": [{"name": "chat", "promptTokens": 128, "outputTokens": 64}],
            "scenarios": [{"kind": "latency"}],
            **spec,
        },
    }


def make_quantize_result(scheme: Scheme = Scheme.FP8_DYNAMIC, **overrides: Any) -> QuantizeResult:
    fields: Json = {
        "output": "pvc://models/qwen-fp8",
        "model_kind": ModelKind.TEXT,
        "requested_scheme": scheme,
        "scheme": scheme,
        "format": "float-quantized",
        "recipe_overridden": False,
        "ignored_modules": 1,
        "calibration_samples": 0,
        "size_before_bytes": 15_200_000_000,
        "size_after_bytes": 8_100_000_000,
        "compression_ratio": 1.88,
        "duration_seconds": 600.0,
        "device": "cuda",
        "library_versions": {},
        **overrides,
    }
    return QuantizeResult(**fields)


def make_evaluate_result(recovery: float = 99.5) -> EvaluateResult:
    quantized = 0.8 * recovery / 100
    return EvaluateResult(
        engine="vllm",
        baseline="hf://Qwen/Qwen2.5-7B-Instruct",
        quantized="pvc://models/qwen-fp8",
        limit=None,
        baseline_cached=False,
        tasks=[
            TaskScore(
                task="gsm8k",
                metric="exact_match",
                baseline=0.8,
                quantized=quantized,
                recovery=recovery,
            )
        ],
        baseline_average=0.8,
        quantized_average=quantized,
        recovery=recovery,
        duration_seconds=300.0,
        library_versions={},
    )
