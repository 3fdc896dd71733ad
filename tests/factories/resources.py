"""QuantizedModels and BenchmarkRuns: owner bodies for the builders, validated specs, the plan on
the simulated fleet, and whole objects to create on the API server. Keyword overrides replace
whole spec sections (`source=...`, `serving=...`, `targets=...`)."""

import uuid
from typing import Any

from factories.gpus import DEV_INVENTORY
from quantfleet.api.benchmarkrun import BenchmarkRunSpec
from quantfleet.api.common import API_VERSION
from quantfleet.api.enums import Hardware
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.planning.capacity import source_parameters
from quantfleet.planning.planner import Plan, PlanRequest, plan_placement

Json = dict[str, Any]
SOURCE: Json = {
    "uri": "hf://Qwen/Qwen2.5-VL-7B-Instruct",
    "kind": "vision-language",
    "parametersBillions": 8.3,
}


# An artifact id as builders.jobs.artifact_id makes them: the checkpoint's folder under the output.
ARTIFACT_ID = "0a1b2c3d4e"


def make_owner(
    name: str = "qwen", namespace: str = "ml", *, kind: str = "QuantizedModel", uid: str = "u-1"
) -> Json:
    """The parent object as a handler receives it: what builders read for owner references."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1},
    }


def make_run_owner(name: str = "cmp", namespace: str = "ml") -> Json:
    return make_owner(name, namespace, kind="BenchmarkRun", uid="u-2")


def quantized_model_spec(**overrides: Any) -> Json:
    """A valid QuantizedModel spec of a 7B vision-language model in FP8, as the API takes it."""
    return {
        "source": dict(SOURCE),
        "quantization": {"scheme": "FP8_DYNAMIC"},
        "output": {"uri": "pvc://models/qwen-fp8"},
        **overrides,
    }


def make_spec(**overrides: Any) -> QuantizedModelSpec:
    """`quantized_model_spec(...)`, validated."""
    return QuantizedModelSpec.model_validate(quantized_model_spec(**overrides))


def make_plan(spec: QuantizedModelSpec) -> Plan:
    """The planner's plan for `spec` on the default simulated fleet."""
    billions = spec.source.parameters_billions or SOURCE["parametersBillions"]
    plan = plan_placement(
        PlanRequest(
            parameters=source_parameters(billions),
            scheme=spec.quantization.scheme,
            objective=spec.quantization.resolved_objective,
            hardware=spec.placement.hardware or Hardware.GPU,
        ),
        DEV_INVENTORY,
    )
    assert isinstance(plan, Plan), plan
    return plan


def make_run_spec(**overrides: Any) -> BenchmarkRunSpec:
    """A valid BenchmarkRun spec: one QuantizedModel target against its BF16 baseline, two
    workloads (the docvqa preset and a text chat shape), latency and throughput."""
    spec: Json = {
        "targets": [{"name": "fp8", "modelRef": {"name": "qwen-fp8"}}],
        "baseline": {"modelRef": {"name": "qwen-fp8"}},
        "workloads": [
            {"name": "doc", "preset": "docvqa"},
            {"name": "chat", "outputTokens": 64, "promptTokens": 256},
        ],
        "scenarios": [{"kind": "latency"}, {"kind": "throughput"}],
        **overrides,
    }
    return BenchmarkRunSpec.model_validate(spec)


def make_quantized_model(name: str, scheme: str = "FP8_DYNAMIC", **spec: Any) -> Json:
    """A QuantizedModel to create: the 7B vision-language model, written to s3:// (no volumes)
    under a prefix of its own (a bucket is shared across namespaces: a model elsewhere with the
    same name and output would hold it, OutputInUse); `quantization=` adds to the scheme, other
    overrides replace sections."""
    quantization = {"scheme": scheme, **spec.pop("quantization", {})}
    output = f"s3://models/{name}-{uuid.uuid4().hex[:8]}"
    return {
        "apiVersion": API_VERSION,
        "kind": "QuantizedModel",
        "metadata": {"name": name},
        "spec": quantized_model_spec(
            **{"output": {"uri": output}, **spec, "quantization": quantization}
        ),
    }


def make_benchmark_run(name: str, **spec: Any) -> Json:
    """A BenchmarkRun to create: two workloads (docvqa, captioning), latency and throughput,
    20 requests each; pass `targets=` (and `baseline=`)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "BenchmarkRun",
        "metadata": {"name": name},
        "spec": {
            "workloads": [
                {"name": "doc", "preset": "docvqa"},
                {"name": "cap", "preset": "captioning"},
            ],
            "scenarios": [{"kind": "latency"}, {"kind": "throughput"}],
            "limits": {"maxRequests": 20},
            **spec,
        },
    }
