"""The API models accept the samples, reject every malformed manifest, and apply defaults."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from factories import make_spec
from quantfleet.api.benchmarkrun import BenchmarkRun, Workload
from quantfleet.api.enums import Scheme, WorkloadPreset
from quantfleet.api.quantizedmodel import QuantizedModel, QuantizedModelSpec

ROOT = Path(__file__).parents[3]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))
CORPUS = sorted((ROOT / "tests" / "corpus" / "invalid").glob("*.yaml"))
MODELS: dict[str, type[BaseModel]] = {
    "QuantizedModel": QuantizedModel,
    "BenchmarkRun": BenchmarkRun,
}


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def expected_field(path: Path) -> str:
    """The `# field:` header of a corpus file, in pydantic's dotted form (tasks[0] -> tasks.0)."""
    header = path.read_text().splitlines()[0]
    assert header.startswith("# field: "), f"{path.name} lacks its '# field:' header"
    return header.removeprefix("# field: ").replace("[", ".").replace("]", "")


def names_field(error: dict[str, Any], field: str) -> bool:
    """An error names the field when its location is the field, or encloses it and says its name."""
    location = ".".join(str(part) for part in error["loc"])
    last = field.rsplit(".", 1)[-1]
    return location == field or (field.startswith(location) and last in error["msg"])


def test_there_are_samples_and_a_large_corpus() -> None:
    assert len(SAMPLES) >= 5
    assert len(CORPUS) >= 60


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_is_valid(path: Path) -> None:
    document = load(path)
    if document["kind"] != "Kustomization":
        MODELS[document["kind"]].model_validate(document)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_malformed_manifest_is_rejected_naming_the_field(path: Path) -> None:
    document = load(path)
    field = expected_field(path)
    with pytest.raises(ValidationError) as caught:
        MODELS[document["kind"]].model_validate(document)
    errors = caught.value.errors()
    assert any(names_field(error, field) for error in errors), (field, errors)


@pytest.mark.parametrize(
    ("scheme", "min_recovery", "want_gate"),
    [
        pytest.param(Scheme.FP8_DYNAMIC, None, 99.0, id="fp8-defaults-to-the-8-bit-figure"),
        pytest.param(Scheme.W8A8, None, 99.0, id="int8-defaults-to-the-8-bit-figure"),
        pytest.param(Scheme.W4A16, None, 96.0, id="w4a16-defaults-to-the-4-bit-figure"),
        pytest.param(Scheme.W4A16, 97.5, 97.5, id="an-explicit-gate-wins"),
    ],
)
def test_promotion_gate(scheme: Scheme, min_recovery: float | None, want_gate: float) -> None:
    spec = make_spec(evaluation={"minRecovery": min_recovery})
    assert spec.min_recovery(scheme) == want_gate


@pytest.mark.parametrize(
    ("workload", "want_shape"),
    [
        pytest.param({"preset": "docvqa"}, (1680, 2240, 64, 128), id="docvqa-is-the-study-shape"),
        pytest.param({"preset": "captioning"}, (480, 360, 0, 128), id="captioning-has-no-prompt"),
        pytest.param(
            {"imageWidth": 64, "imageHeight": 32, "promptTokens": 8, "outputTokens": 4},
            (64, 32, 8, 4),
            id="custom-shape-as-given",
        ),
        pytest.param({"outputTokens": 16}, (0, 0, 0, 16), id="text-only-custom-shape"),
    ],
)
def test_workload_shape(workload: dict[str, Any], want_shape: tuple[int, ...]) -> None:
    assert Workload.model_validate({"name": "w", **workload}).shape() == want_shape


def test_defaults_live_in_the_model() -> None:
    spec = make_spec()
    assert spec.serving.enabled
    assert spec.serving.replicas == 1
    assert spec.quantization.calibration.samples == 512
    assert spec.quantization.resolved_objective == "balanced"


def test_camel_case_round_trip_keeps_every_field() -> None:
    spec = make_spec(serving={"imagesPerPrompt": 2, "maxModelLength": 4096})
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["serving"]["imagesPerPrompt"] == 2
    assert QuantizedModelSpec.model_validate(dumped) == spec


def test_presets_cover_every_workload_preset() -> None:
    for preset in WorkloadPreset:
        Workload.model_validate({"name": "w", "preset": preset})
