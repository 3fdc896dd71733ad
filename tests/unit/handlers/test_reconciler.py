"""The skeleton both kinds share: an invalid spec, the status writer, the Node index."""

from collections.abc import Callable
from typing import Any

import kopf
import pytest
from fake_kube import FakeKube
from handler_factories import make_model_body, make_run_body

from quantfleet.api.common import MAX_MESSAGE_CHARS
from quantfleet.api.conditions import BenchmarkRunCondition, QuantizedModelCondition
from quantfleet.handlers import benchmarkrun, nodes, quantizedmodel, reconciler, runtime, watched
from quantfleet.handlers.nodes import Fleet
from quantfleet.handlers.startup import FINALIZER
from quantfleet.planning.inventory import HeldPod

Json = dict[str, Any]
Reconcile = Callable[[Json, list[Json]], object]


@pytest.mark.parametrize(
    ("body", "reconcile", "want_conditions"),
    [
        pytest.param(
            make_model_body(quantization={"scheme": "NOT_A_SCHEME"}),
            quantizedmodel.reconcile,
            {QuantizedModelCondition.PLANNED: "False"},
            id="QuantizedModel: not planned",
        ),
        pytest.param(
            make_run_body(targets=[]),
            benchmarkrun.reconcile,
            {
                BenchmarkRunCondition.RUNNING: "False",
                BenchmarkRunCondition.SUCCEEDED: "False",
                BenchmarkRunCondition.FAILED: "True",
            },
            id="BenchmarkRun: failed",
        ),
    ],
)
def test_an_invalid_spec_sets_conditions_and_observed_generation_and_stops(
    kube: FakeKube, body: Json, reconcile: Reconcile, want_conditions: dict[str, str]
) -> None:
    """Issue 10 part 4: the kinds differed (observedGeneration written by BenchmarkRun only)."""
    body["metadata"]["generation"] = 3
    kube.add(body)

    with pytest.raises(kopf.PermanentError, match="Invalid spec"):
        reconcile(body, [])

    status = kube.objects[(body["kind"], "ml", body["metadata"]["name"])]["status"]
    assert status["observedGeneration"] == 3
    assert {c["type"]: c["status"] for c in status["conditions"]} == want_conditions
    for condition in status["conditions"]:
        assert condition["reason"] == "InvalidSpec"
        assert condition["observedGeneration"] == 3
        assert 0 < len(condition["message"]) <= MAX_MESSAGE_CHARS

    kube.clear_log()
    with pytest.raises(kopf.PermanentError):
        reconcile(kube.read_custom(None, body["kind"], "ml", body["metadata"]["name"]) or {}, [])
    assert kube.writes == []  # the same refusal again: nothing new to write


def test_the_status_writer_writes_nothing_when_only_transition_times_differ(
    kube: FakeKube,
) -> None:
    condition = {"type": "Ready", "status": "True", "reason": "DeploymentReady"}
    body = kube.add(
        {
            **make_model_body(),
            "status": {"conditions": [{**condition, "lastTransitionTime": "2030-01-01T00:00:00Z"}]},
        }
    )

    wrote = reconciler.write_status(
        body, {"conditions": [{**condition, "lastTransitionTime": "2031-01-01T00:00:00Z"}]}
    )

    assert wrote is False
    assert kube.writes == []


def test_the_status_writer_sends_nulls_for_nested_removals(kube: FakeKube) -> None:
    old = {"children": {"quantizeJob": "q", "deployment": "qwen-vllm"}, "serving": {"x": 1}}
    body = kube.add({**make_model_body(), "status": old})

    assert reconciler.write_status(body, {"children": {"quantizeJob": "q"}})

    assert kube.status_patches == [{"children": {"deployment": None}, "serving": None}]
    assert kube.objects[("QuantizedModel", "ml", "qwen")]["status"] == {
        "children": {"quantizeJob": "q"}
    }


def test_the_node_index_is_declared_once() -> None:
    indexers = [
        handler.id
        for handler in kopf.get_default_registry()._indexing.get_all_handlers()
        if handler.id in (nodes.NODES_INDEX, nodes.PODS_INDEX)
    ]
    assert sorted(indexers) == [nodes.NODES_INDEX, nodes.PODS_INDEX]


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(
            lambda kw: quantizedmodel.HANDLERS.changed(name="q", namespace="ml", **kw),
            id="QuantizedModel",
        ),
        pytest.param(
            lambda kw: benchmarkrun.HANDLERS.changed(name="b", namespace="ml", **kw),
            id="BenchmarkRun",
        ),
    ],
)
def test_a_handler_without_the_node_index_fails_loudly(
    kube: FakeKube, handler: Callable[[Json], None]
) -> None:
    """Issue 10 part 4: BenchmarkRun read the index with kwargs.get and planned on no GPUs."""
    with pytest.raises(RuntimeError, match=nodes.NODES_INDEX):
        handler({})
    assert kube.writes == []


def test_the_indexes_list_every_node_and_gpu_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "api_client", lambda: None)
    index = {"a": [{"metadata": {"name": "a"}}], "b": [{"metadata": {"name": "b"}}]}
    pod = HeldPod("ml", "p", "a", 2)
    fleet = nodes.listed(
        {nodes.NODES_INDEX: index, nodes.PODS_INDEX: {"a": [pod]}, watched.INDEX: {}}
    )
    assert [n["metadata"]["name"] for n in fleet.nodes] == ["a", "b"]
    assert list(fleet.pods) == [pod]


def test_the_finalizer_an_older_operator_left_is_taken_off(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """Kopf's per-object timers put FINALIZER on every object; without them nothing removes it
    and a deleted model would hang, so a pass takes it off (and keeps anyone else's)."""
    body = make_model_body()
    body["metadata"].update(finalizers=["example.com/keep", FINALIZER], resourceVersion="7")
    kube.add(body)
    reconciler.reconcile_named(
        quantizedmodel.KIND, "ml", "qwen", quantizedmodel.reconcile, Fleet(fleet_nodes)
    )
    stored = kube.objects[("QuantizedModel", "ml", "qwen")]
    assert stored["metadata"]["finalizers"] == ["example.com/keep"]
    assert ("patch", "QuantizedModel", "qwen") in kube.writes
