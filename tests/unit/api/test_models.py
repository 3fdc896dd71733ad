"""The API models accept the samples, reject every malformed manifest, and apply defaults."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from factories import make_spec
from factories.resources import SOURCE
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
    ("min_recovery", "want_refusal"),
    [
        pytest.param(0.99, "minRecovery is a percentage (99 means 99%)", id="a-fraction"),
        pytest.param(1, "minRecovery is a percentage (99 means 99%)", id="one-reads-as-a-fraction"),
        pytest.param(1.5, "minRecovery is at least 50", id="just-above-a-fraction"),
        pytest.param(49.9, "minRecovery is at least 50", id="just-below-half"),
        pytest.param(50, None, id="half-is-the-lowest-gate"),
        pytest.param(99, None, id="the-8-bit-figure"),
        pytest.param(200, None, id="the-highest-gate"),
    ],
)
def test_a_gate_below_half_is_refused_naming_a_fraction_as_such(
    min_recovery: float, want_refusal: str | None
) -> None:
    try:
        make_spec(evaluation={"minRecovery": min_recovery})
    except ValidationError as error:
        refusal: str | None = str(error)
    else:
        refusal = None

    if want_refusal is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert f"minRecovery: {want_refusal}" in refusal


RECIPE = "quantization.recipe.configMapRef"
RECIPE_REF_BIDI = {"name": "\u2067recipes\u2069", "key": "recipe.yaml"}
RECIPE_KEY_TAB = {"name": "recipes", "key": "recipe\t.yaml"}


@pytest.mark.parametrize(
    ("overrides", "want_field"),
    [
        pytest.param(
            {"source": {**SOURCE, "tokenSecretRef": {"name": "hub\ntoken", "key": "t"}}},
            "source.tokenSecretRef.name",
            id="secret-name-with-a-newline",
        ),
        pytest.param(
            {"source": {**SOURCE, "tokenSecretRef": {"name": "hub-token\n", "key": "t"}}},
            "source.tokenSecretRef.name",
            id="secret-name-ending-in-a-newline",
        ),
        pytest.param(
            {"source": {**SOURCE, "tokenSecretRef": {"name": "hub\u202etoken", "key": "t"}}},
            "source.tokenSecretRef.name",
            id="secret-name-with-a-right-to-left-override",
        ),
        pytest.param(
            {"source": {**SOURCE, "tokenSecretRef": {"name": "hub-token", "key": "t\x00"}}},
            "source.tokenSecretRef.key",
            id="secret-key-with-a-nul",
        ),
        pytest.param(
            {"quantization": {"scheme": "W8A8", "recipe": {"configMapRef": RECIPE_REF_BIDI}}},
            f"{RECIPE}.name",
            id="configmap-name-with-an-isolate",
        ),
        pytest.param(
            {"quantization": {"scheme": "W8A8", "recipe": {"configMapRef": RECIPE_KEY_TAB}}},
            f"{RECIPE}.key",
            id="configmap-key-with-a-tab",
        ),
        pytest.param(
            {"quantization": {"scheme": "W8A8", "calibration": {"dataset": "pvc://Sets/a"}}},
            "quantization.calibration.dataset",
            id="pvc-dataset-claim-in-upper-case",
        ),
        pytest.param(
            {"quantization": {"scheme": "W8A8", "calibration": {"dataset": "org/set\u2066"}}},
            "quantization.calibration.dataset",
            id="hub-dataset-with-an-isolate",
        ),
        pytest.param(
            {"source": {**SOURCE, "revision": "main\x85"}},
            "source.revision",
            id="revision-with-a-c1-control",
        ),
    ],
)
def test_a_reference_name_with_control_or_bidi_characters_is_refused_naming_the_field(
    overrides: dict[str, Any], want_field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make_spec(**overrides)

    assert any(names_field(error, want_field) for error in caught.value.errors()), (
        caught.value.errors()
    )


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            {"source": {**SOURCE, "tokenSecretRef": {"name": "hub.tokens-1", "key": "HF_TOKEN"}}},
            id="secret-subdomain-name-and-upper-case-key",
        ),
        pytest.param(
            {"quantization": {"scheme": "W8A8", "calibration": {"dataset": "pvc://sets"}}},
            id="a-whole-claim",
        ),
        pytest.param(
            {"quantization": {"scheme": "W8A8", "calibration": {"dataset": "HuggingFaceH4/a_b"}}},
            id="hub-dataset-in-mixed-case",
        ),
        pytest.param({"source": {**SOURCE, "revision": "refs/pr/12"}}, id="revision-with-slashes"),
    ],
)
def test_reference_names_kubernetes_and_the_hub_allow_are_accepted(
    overrides: dict[str, Any],
) -> None:
    make_spec(**overrides)


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
