"""Nothing lost (issue 14): a model whose output overlaps an earlier model's, or whose Job would
mount a ConfigMap, key or claim that does not exist, gets Quantized=False with the reason and no
Job."""

from typing import Any

import kopf
import pytest
from fake_kube import FakeKube
from handler_factories import make_model_body

from quantfleet.api.conditions import QuantizedModelCondition, Reason
from quantfleet.builders.storage import OutputUse, output_holder
from quantfleet.handlers import quantizedmodel, reconciler
from quantfleet.handlers.nodes import Fleet

Json = dict[str, Any]


def created(body: Json, at: str) -> Json:
    body["metadata"]["creationTimestamp"] = at
    return body


def use(body: Json) -> OutputUse:
    found = OutputUse.of(body)
    assert found is not None
    return found


def quantized(kube: FakeKube, name: str) -> Json:
    status = kube.objects[("QuantizedModel", "ml", name)]["status"]
    (condition,) = [
        c for c in status["conditions"] if c["type"] == QuantizedModelCondition.QUANTIZED
    ]
    return dict(condition)


def jobs(kube: FakeKube) -> list[str]:
    return [name for (kind, _, name) in kube.objects if kind == "Job"]


def indexed(*uses: OutputUse) -> dict[tuple[str, ...], list[OutputUse]]:
    """The outputs as the operator's Kopf index keeps them."""
    index: dict[tuple[str, ...], list[OutputUse]] = {}
    for each in uses:
        for key in each.keys:
            index.setdefault(key, []).append(each)
    return index


def reconcile(name: str, nodes: list[Json], outputs: tuple[OutputUse, ...] = ()) -> None:
    fleet = Fleet(nodes, (), indexed(*outputs))
    reconciler.reconcile_named(quantizedmodel.KIND, "ml", name, quantizedmodel.reconcile, fleet)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("pvc://models/qwen", "pvc://models/qwen", id="the-same-output"),
        pytest.param("pvc://models/qwen", "pvc://models/qwen/int8", id="inside-the-other"),
        pytest.param("pvc://models/qwen/int8", "pvc://models/qwen/", id="around-the-other"),
    ],
)
def test_the_later_of_two_overlapping_outputs_waits_naming_the_other(
    kube: FakeKube, fleet_nodes: list[Json], first: str, second: str
) -> None:
    older = kube.add(
        created(make_model_body("older", output={"uri": first}), "2030-01-01T00:00:00Z")
    )
    later = kube.add(
        created(
            make_model_body("later", output={"uri": second}, quantization={"scheme": "W8A8"}),
            "2030-01-01T00:00:05Z",
        )
    )
    outputs = (use(older), use(later))

    reconcile("older", fleet_nodes, outputs)
    reconcile("later", fleet_nodes, outputs)

    condition = quantized(kube, "later")
    assert (condition["status"], condition["reason"]) == ("False", Reason.OUTPUT_IN_USE)
    assert "ml/older" in condition["message"]
    assert [name.split("-quantize-")[0] for name in jobs(kube)] == ["older"]
    assert quantized(kube, "older")["reason"] != Reason.OUTPUT_IN_USE


@pytest.mark.parametrize(
    ("mine", "theirs", "want_held"),
    [
        pytest.param(("ml", "s3://b/q"), ("other", "s3://b/q/x"), True, id="a-bucket-is-shared"),
        pytest.param(("ml", "pvc://m/q"), ("other", "pvc://m/q"), False, id="claims-are-not"),
        pytest.param(("ml", "s3://b/q"), ("ml", "s3://b/qwen"), False, id="segment-wise"),
        pytest.param(("ml", "s3://b/q"), ("ml", "s3://c/q"), False, id="another-bucket"),
        pytest.param(("ml", "s3://b/q/x"), ("ml", "s3://b/"), True, id="the-whole-bucket"),
        pytest.param(("ml", "s3://b"), ("ml", "s3://b/q/x"), True, id="in-the-whole-bucket"),
        pytest.param(("ml", "pvc://m/q/x"), ("ml", "pvc://m/q/"), True, id="a-folder-of-a-claim"),
        pytest.param(("ml", "pvc://m/"), ("ml", "pvc://m/q"), True, id="the-whole-claim"),
        pytest.param(("ml", "pvc://m/q"), ("ml", "pvc://n/q"), False, id="another-claim"),
    ],
)
def test_output_holder(mine: tuple[str, str], theirs: tuple[str, str], want_held: bool) -> None:
    me = OutputUse(mine[0], "me", mine[1], "2030-01-01T00:00:05Z")
    them = OutputUse(theirs[0], "them", theirs[1], "2030-01-01T00:00:00Z")
    # What a pass looks at: the index's rivals of its own output, not every output.
    rivals = Fleet([], (), indexed(me, them)).rivals

    assert (output_holder(me, rivals(me)) == them) is want_held
    assert output_holder(them, rivals(them)) is None  # the earlier one is never held


RECIPE = {"recipe": {"configMapRef": {"name": "recipes", "key": "fp8.yaml"}}}


@pytest.mark.parametrize(
    ("spec", "objects", "want_message"),
    [
        pytest.param(
            {"quantization": {"scheme": "FP8_DYNAMIC", **RECIPE}},
            [],
            "ConfigMap ml/recipes not found (spec.quantization.recipe.configMapRef)",
            id="a-missing-recipe-configmap",
        ),
        pytest.param(
            {"quantization": {"scheme": "FP8_DYNAMIC", **RECIPE}},
            [{"kind": "ConfigMap", "metadata": {"name": "recipes", "namespace": "ml"}, "data": {}}],
            "ConfigMap ml/recipes has no key fp8.yaml (spec.quantization.recipe.configMapRef)",
            id="a-missing-key",
        ),
        pytest.param(
            {"source": {"uri": "pvc://weights/qwen", "parametersBillions": 7.6}},
            [],
            "PersistentVolumeClaim ml/weights not found (spec.source.uri)",
            id="a-missing-source-claim",
        ),
    ],
)
def test_a_missing_reference_is_a_condition_and_no_job(
    kube: FakeKube, fleet_nodes: list[Json], spec: Json, objects: list[Json], want_message: str
) -> None:
    for body in objects:
        kube.add(body)
    kube.add(make_model_body(**spec))

    reconcile("qwen", fleet_nodes)

    condition = quantized(kube, "qwen")
    assert (condition["status"], condition["reason"]) == ("False", Reason.REFERENCE_NOT_FOUND)
    assert condition["message"] == want_message
    assert jobs(kube) == []


def test_once_the_reference_exists_the_job_is_made(kube: FakeKube, fleet_nodes: list[Json]) -> None:
    kube.add(make_model_body(quantization={"scheme": "FP8_DYNAMIC", **RECIPE}))
    reconcile("qwen", fleet_nodes)
    kube.add(
        {
            "kind": "ConfigMap",
            "metadata": {"name": "recipes", "namespace": "ml"},
            "data": {"fp8.yaml": "x"},
        }
    )

    reconcile("qwen", fleet_nodes)

    assert len(jobs(kube)) == 1
    assert quantized(kube, "qwen")["reason"] == Reason.RUNNING


def test_a_pass_the_api_server_refuses_for_good_still_writes_a_condition(
    kube: FakeKube, fleet_nodes: list[Json], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(api: object, manifest: Json) -> None:
        raise kopf.PermanentError("creating Job ml/qwen-quantize-x: API refused with 422")

    monkeypatch.setattr(kube, "create_job", refuse)
    kube.add(make_model_body())

    with pytest.raises(kopf.PermanentError):
        reconcile("qwen", fleet_nodes)

    status = kube.objects[("QuantizedModel", "ml", "qwen")]["status"]
    (ready,) = [c for c in status["conditions"] if c["type"] == QuantizedModelCondition.READY]
    assert (ready["status"], ready["reason"]) == ("False", Reason.RECONCILE_FAILED)
    assert "API refused with 422" in ready["message"]
    assert status["observedGeneration"] == 1
