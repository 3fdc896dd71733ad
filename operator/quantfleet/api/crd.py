"""Generate the CustomResourceDefinitions from the API models: structural, described, validated.

Pydantic's JSON Schema is turned into a Kubernetes structural schema: `$ref` inlined, titles and
defaults dropped (defaults live in the models), Optional as `nullable`, exclusive bounds in
OpenAPI v3 form, a map keyed by an enum as a CEL rule on its keys. CEL rules come from the
models' `rules` (`api.common.Rule`).
"""

from typing import Any

from pydantic import BaseModel

from quantfleet.api.benchmarkrun import BenchmarkRun, BenchmarkRunSpec, BenchmarkRunStatus
from quantfleet.api.common import BENCHMARK_RUNS, GROUP, QUANTIZED_MODELS, VERSION
from quantfleet.api.quantizedmodel import (
    QuantizedModel,
    QuantizedModelSpec,
    QuantizedModelStatus,
)

Schema = dict[str, Any]

DROPPED_KEYS = {"title", "default", "additionalProperties", "$defs"}


def _structural(node: Any, defs: dict[str, Schema]) -> Any:
    """Rewrite one JSON Schema node (recursively) into its structural OpenAPI v3 form."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        referenced = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**referenced, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    variants = node.get("anyOf")
    if variants is not None:
        others = [v for v in variants if v != {"type": "null"}]
        if len(others) == 1 and len(others) < len(variants):
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return {**_structural({**others[0], **rest}, defs), "nullable": True}
    out: Schema = {}
    for key, value in node.items():
        if key in DROPPED_KEYS and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "propertyNames":  # a map keyed by an enum: CEL, as a CRD has no propertyNames
            keys = ", ".join(f"'{name}'" for name in _structural(value, defs)["enum"])
            rule = {"rule": f"self.all(k, k in [{keys}])", "message": f"keys are {keys}"}
            out.setdefault("x-kubernetes-validations", []).append(rule)
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _structural(value, defs)
    return out


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of one model, with camelCase field names."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    result: Schema = _structural(schema, schema.get("$defs", {}))
    return result


def _column(name: str, json_path: str, kind: str = "string", priority: int = 0) -> Schema:
    column: Schema = {"name": name, "type": kind, "jsonPath": json_path}
    if priority:
        column["priority"] = priority
    return column


AGE = _column("Age", ".metadata.creationTimestamp", "date")


def _crd(
    kind: type[BaseModel],
    plural: str,
    short_names: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[Schema],
) -> Schema:
    name = kind.__name__
    root: Schema = {
        "type": "object",
        "description": (kind.__doc__ or "").strip(),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "quantfleet.io/v1alpha1."},
            "kind": {"type": "string", "description": f"{name}."},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec),
            "status": structural_schema(status),
        },
    }
    if rules := getattr(kind, "rules", ()):
        # At the root CEL sees metadata.name (and generateName) only: the name rules.
        root["x-kubernetes-validations"] = [rule.schema() for rule in rules]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": name,
                "listKind": f"{name}List",
                "plural": plural,
                "singular": name.lower(),
                "shortNames": short_names,
                "categories": ["quantfleet"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [*columns, AGE],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _condition(condition_type: str) -> str:
    return f'.status.conditions[?(@.type=="{condition_type}")].status'


def custom_resource_definitions() -> dict[str, Schema]:
    """Every CRD of the API, keyed by the file name it is written to under crds/."""
    quantized_model = _crd(
        QuantizedModel,
        QUANTIZED_MODELS,
        ["qm", "qmodel"],
        QuantizedModelSpec,
        QuantizedModelStatus,
        [
            _column("Scheme", ".status.plan.scheme"),
            _column("Hardware", ".status.plan.hardware"),
            _column("GPU", ".status.plan.gpuFamily"),
            _column("GPUs", ".status.plan.gpusPerReplica", "integer", priority=1),
            _column("Recovery", ".status.recovery.overall", "number"),
            # Test fleets' simulated worker: never let a synthesised figure pass for a measured one.
            _column("Simulated", ".status.recovery.simulated", "boolean"),
            _column("Promoted", _condition("Promoted"), priority=1),
            _column("Ready", _condition("Ready")),
            _column("Endpoint", ".status.serving.endpoint", priority=1),
        ],
    )
    benchmark_run = _crd(
        BenchmarkRun,
        BENCHMARK_RUNS,
        ["br"],
        BenchmarkRunSpec,
        BenchmarkRunStatus,
        [
            _column("Workloads", ".status.workloads"),
            _column("Best-Speedup", ".status.bestSpeedup", "number"),
            _column("Simulated", ".status.results[0].simulated", "boolean"),
            _column("Status", '.status.conditions[?(@.status=="True")].type'),
        ],
    )
    return {
        f"{GROUP}_{QUANTIZED_MODELS}.yaml": quantized_model,
        f"{GROUP}_{BENCHMARK_RUNS}.yaml": benchmark_run,
    }
