"""The committed CRDs match the models, and their schemas are structural and fully described."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quantfleet.api.crd import custom_resource_definitions
from quantfleet.cli.crds import render
from quantfleet.cli.main import main

ROOT = Path(__file__).parents[3]
CRDS = custom_resource_definitions()


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path."""
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def openapi(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("name", sorted(CRDS))
def test_committed_crd_matches_the_models(name: str) -> None:
    committed = (ROOT / "crds" / name).read_text()
    assert committed == render()[name], "crds/ drifted from the models: run `quantfleet crds`"


def test_crds_check_command_flags_drift(tmp_path: Path) -> None:
    assert main(["crds", "--output", str(tmp_path)]) == 0
    assert main(["crds", "--check", "--output", str(tmp_path)]) == 0
    (tmp_path / "quantfleet.io_benchmarkruns.yaml").write_text("stale\n")
    assert main(["crds", "--check", "--output", str(tmp_path)]) == 1


@pytest.mark.parametrize("name", sorted(CRDS))
def test_every_field_is_described(name: str) -> None:
    undescribed = [
        path
        for path, node in walk(openapi(CRDS[name]))
        if path.count(".") >= 2 and not path.endswith(("[]", "{}")) and not node.get("description")
    ]
    assert undescribed == []


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schema_is_structural(name: str) -> None:
    for path, node in walk(openapi(CRDS[name])):
        leftovers = {"$ref", "anyOf", "allOf", "oneOf", "title", "default"} & node.keys()
        assert not leftovers, f"{path} keeps {leftovers}"
        has_type = "type" in node or node.get("x-kubernetes-int-or-string")
        assert has_type, f"{path} has no type"
        assert not isinstance(node.get("exclusiveMinimum"), int | float) or isinstance(
            node.get("exclusiveMinimum"), bool
        )


# The fields of apiextensions.k8s.io/v1 JSONSchemaProps: the API server refuses a CRD whose
# schema has any other (strict decoding, e.g. JSON Schema's propertyNames).
JSON_SCHEMA_PROPS = {
    "id", "$schema", "$ref", "description", "type", "format", "title", "default", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
    "maxItems", "minItems", "uniqueItems", "multipleOf", "enum", "maxProperties",
    "minProperties", "required", "items", "allOf", "oneOf", "anyOf", "not", "properties",
    "additionalProperties", "patternProperties", "dependencies", "additionalItems",
    "definitions", "externalDocs", "example", "nullable", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type", "x-kubernetes-map-type", "x-kubernetes-validations",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schema_uses_only_what_a_crd_schema_has(name: str) -> None:
    for path, node in walk(openapi(CRDS[name])):
        assert node.keys() <= JSON_SCHEMA_PROPS, f"{path}: {node.keys() - JSON_SCHEMA_PROPS}"


def test_a_map_keyed_by_an_enum_checks_its_keys_with_cel() -> None:
    recovery = openapi(CRDS["quantfleet.io_quantizedmodels.yaml"])["properties"]["status"]
    by_modality = recovery["properties"]["recovery"]["properties"]["byModality"]

    assert by_modality["x-kubernetes-validations"] == [
        {"rule": "self.all(k, k in ['vision', 'text'])", "message": "keys are 'vision', 'text'"}
    ]


def test_crds_name_group_scope_and_status() -> None:
    for crd in CRDS.values():
        spec = crd["spec"]
        assert spec["group"] == "quantfleet.io"
        assert spec["scope"] == "Namespaced"
        assert spec["names"]["categories"] == ["quantfleet"]
        assert spec["versions"][0]["subresources"] == {"status": {}}


def test_printer_columns_show_what_a_platform_team_scans() -> None:
    columns = {
        crd["spec"]["names"]["kind"]: [
            c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
        ]
        for crd in CRDS.values()
    }
    assert {"Scheme", "GPU", "Recovery", "Ready", "Age"} <= set(columns["QuantizedModel"])
    assert {"Workloads", "Best-Speedup", "Status", "Age"} <= set(columns["BenchmarkRun"])


def test_cross_field_rules_reach_the_schema() -> None:
    quantization = openapi(CRDS["quantfleet.io_quantizedmodels.yaml"])["properties"]["spec"][
        "properties"
    ]["quantization"]
    rules = [rule["rule"] for rule in quantization["x-kubernetes-validations"]]
    assert "!has(self.objective) || self.scheme == 'auto'" in rules
