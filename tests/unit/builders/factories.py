"""Small factories for the reconciler's builders: an owner body, a spec, a plan on the dev fleet."""

from typing import Any

from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.planning.capacity import source_parameters
from quantfleet.planning.inventory import build_inventory
from quantfleet.planning.planner import Plan, PlanRequest, plan_placement
from quantfleet.testbed.fleet import build_nodes, load_fleet

Json = dict[str, Any]


def make_owner(name: str = "qwen", namespace: str = "ml") -> Json:
    return {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "QuantizedModel",
        "metadata": {"name": name, "namespace": namespace, "uid": "u-1", "generation": 1},
    }


def make_spec(**overrides: Any) -> QuantizedModelSpec:
    """A valid spec; keyword overrides replace whole sections (source=..., serving=...)."""
    spec: Json = {
        "source": {
            "uri": "hf://Qwen/Qwen2.5-VL-7B-Instruct",
            "kind": "vision-language",
            "parametersBillions": 8.3,
        },
        "quantization": {"scheme": "FP8_DYNAMIC"},
        "output": {"uri": "pvc://models/qwen-fp8"},
        **overrides,
    }
    return QuantizedModelSpec.model_validate(spec)


def make_plan(spec: QuantizedModelSpec) -> Plan:
    """The planner's plan for `spec` on the default simulated fleet."""
    plan = plan_placement(
        PlanRequest(
            parameters=source_parameters(spec.source.parameters_billions or 8.3),
            scheme=spec.quantization.scheme,
            objective=spec.quantization.resolved_objective,
        ),
        build_inventory(build_nodes(load_fleet())),
    )
    assert isinstance(plan, Plan), plan
    return plan
