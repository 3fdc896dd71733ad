"""Issue 32, serving continuity: the promoted checkpoint serves until another one is promoted,
whatever becomes of newer revisions; and `replicas: 0` reads as scaled to zero, not Ready."""

from typing import Any

import pytest
from fake_kube import FakeKube
from handler_factories import (
    make_evaluate_result,
    make_model_body,
    make_quantize_result,
    make_run_body,
)

from quantfleet.api.conditions import Reason
from quantfleet.api.enums import Scheme
from quantfleet.api.quantizedmodel import QuantizedModel
from quantfleet.api.results import AnyResult, FailureResult
from quantfleet.builders.status import JobPhase
from quantfleet.builders.storage import local_path
from quantfleet.handlers import benchmarkrun, quantizedmodel, reconciler
from quantfleet.handlers.model_pass import Pass, plan_for
from quantfleet.handlers.nodes import Fleet
from quantfleet.planning.inventory import HeldPod, build_inventory
from quantfleet.planning.planner import Plan

Json = dict[str, Any]
MODEL = ("QuantizedModel", "ml", "qwen")
DEPLOYMENT = ("Deployment", "ml", "qwen-vllm")
SERVICE = ("Service", "ml", "qwen-vllm")
Outcome = tuple[JobPhase, AnyResult | None] | None  # None: the Job succeeds with a result


def reconcile(nodes: list[Json], passes: int = 1, pods: tuple[HeldPod, ...] = ()) -> None:
    for _ in range(passes):
        reconciler.reconcile_named(
            quantizedmodel.KIND, "ml", "qwen", quantizedmodel.reconcile, Fleet(nodes, pods)
        )


def conditions(kube: FakeKube) -> dict[str, tuple[str, str, str]]:
    status = kube.objects[MODEL]["status"]
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def served_path(kube: FakeKube) -> str:
    """The checkpoint folder the vLLM Deployment loads (its first argument)."""
    container = kube.objects[DEPLOYMENT]["spec"]["template"]["spec"]["containers"][0]
    path: str = container["args"][0]
    return path


def change_spec(kube: FakeKube, **sections: Json) -> None:
    """Edit the stored model's spec as `kubectl apply` would: new sections, a new generation."""
    body = kube.objects[MODEL]
    for key, value in sections.items():
        body["spec"][key] = {**body["spec"].get(key, {}), **value}
    body["metadata"]["generation"] += 1


def serve_first_artifact(
    kube: FakeKube, nodes: list[Json], pods: tuple[HeldPod, ...] = (), **spec: Json
) -> str:
    """A model taken to a Ready Deployment of its first artifact (approved under Manual);
    returns that artifact's URI."""
    kube.outcomes["quantize"] = ("Succeeded", make_quantize_result())
    kube.outcomes["evaluate"] = ("Succeeded", make_evaluate_result(99.5))
    kube.add(make_model_body(**spec))
    reconcile(nodes, 3, pods)  # the quantize Job, the evaluate Job, the verdict
    artifact = kube.objects[MODEL]["status"]["artifact"]
    if conditions(kube)["Promoted"][1] == Reason.AWAITING_APPROVAL:
        change_spec(kube, serving={"approvedArtifact": artifact["id"]})
        reconcile(nodes, 1, pods)
    kube.objects[DEPLOYMENT]["status"] = {"readyReplicas": 1}  # the controller's report
    reconcile(nodes, 1, pods)
    assert conditions(kube)["Ready"][0] == "True"
    assert served_path(kube) == local_path(artifact["uri"])
    uri: str = artifact["uri"]
    return uri


FAILED_QUANTIZE = FailureResult(program="quantize", reason="source hf://x/y is not reachable")
FAILED_EVALUATE = FailureResult(program="evaluate", reason="lm-eval: task gsm8k failed")
NEW_CALIBRATION = {"calibration": {"samples": 256}}  # a new artifact id, the same scheme


@pytest.mark.parametrize(
    ("spec", "change", "quantize", "evaluate", "want_conditions"),
    [
        pytest.param(
            {"serving": {"promotion": "Manual"}}, {"quantization": NEW_CALIBRATION},
            None, ("Succeeded", make_evaluate_result(99.5)),
            {"Promoted": ("False", Reason.AWAITING_APPROVAL)},
            id="manual: a new artifact awaiting approval leaves the approved one serving",
        ),
        pytest.param(
            {}, {"quantization": NEW_CALIBRATION},
            None, ("Succeeded", make_evaluate_result(90.0)),
            {"Promoted": ("False", Reason.BELOW_GATE)},
            id="automatic: a new revision below the gate leaves the promoted one serving",
        ),
        pytest.param(
            {}, {"quantization": NEW_CALIBRATION},
            ("Failed", FAILED_QUANTIZE), None,
            {"Quantized": ("False", Reason.FAILED), "Promoted": ("Unknown", Reason.WAITING)},
            id="a new revision's quantize Job failed",
        ),
        pytest.param(
            {}, {"quantization": NEW_CALIBRATION},
            None, ("Failed", FAILED_EVALUATE),
            {"Evaluated": ("False", Reason.FAILED), "Promoted": ("Unknown", Reason.WAITING)},
            id="a new revision's evaluation failed",
        ),
        pytest.param(
            {}, {"quantization": NEW_CALIBRATION},
            ("Running", None), None,
            {"Quantized": ("Unknown", Reason.RUNNING), "Promoted": ("Unknown", Reason.WAITING)},
            id="spec changed: the new revision still quantizing",
        ),
        pytest.param(
            {}, {"output": {"uri": "pvc://models/qwen-fp8-v2"}},
            ("Running", None), None,
            {"Quantized": ("Unknown", Reason.RUNNING)},
            id="output moved: the promoted checkpoint is still loaded from where it was written",
        ),
        pytest.param(
            {}, {"quantization": {"scheme": "W4A16"}},
            None, ("Succeeded", make_evaluate_result(90.0)),
            {"Promoted": ("False", Reason.BELOW_GATE)},
            id="scheme changed and the new scheme misses the gate: the FP8 checkpoint serves",
        ),
    ],
)  # fmt: skip
def test_the_promoted_artifact_serves_whatever_becomes_of_a_newer_revision(
    kube: FakeKube,
    fleet_nodes: list[Json],
    spec: Json,
    change: Json,
    quantize: Outcome,
    evaluate: Outcome,
    want_conditions: dict[str, tuple[str, str]],
) -> None:
    promoted_uri = serve_first_artifact(kube, fleet_nodes, **spec)
    scheme = Scheme(change.get("quantization", {}).get("scheme", Scheme.FP8_DYNAMIC))
    kube.outcomes["quantize"] = quantize or ("Succeeded", make_quantize_result(scheme))
    kube.outcomes["evaluate"] = evaluate or kube.outcomes["evaluate"]
    change_spec(kube, **change)
    kube.clear_log()

    reconcile(fleet_nodes, 3)

    got = conditions(kube)
    assert {kind: got[kind][:2] for kind in want_conditions} == want_conditions
    status = kube.objects[MODEL]["status"]
    ready_state, ready_reason, ready_message = got["Ready"]
    assert (ready_state, ready_reason) == ("True", Reason.DEPLOYMENT_READY)
    assert f"serving artifact {promoted_uri.rsplit('/', 1)[1]}" in ready_message
    assert served_path(kube) == local_path(promoted_uri)
    assert status["promotedArtifact"]["uri"] == promoted_uri
    assert status["serving"]["endpoint"] == "http://qwen-vllm.ml.svc:8000/v1"
    assert ("delete", "Deployment", "qwen-vllm") not in kube.writes
    assert ("delete", "Service", "qwen-vllm") not in kube.writes
    assert ("apply", "Deployment", "qwen-vllm") not in kube.writes  # nothing rolled either


def test_a_spec_change_plans_the_new_revision_afresh_but_moves_nothing_that_serves(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """The new revision is planned afresh (the best GPU family, free again); the promoted
    artifact keeps the family it serves on while that has room: no roll for a revision that
    may never be promoted."""
    body = make_model_body()
    plan = plan_for(Pass(body, QuantizedModel.model_validate(body), build_inventory(fleet_nodes),
                         Fleet([]).cache), 7_600_000_000)  # fmt: skip
    assert isinstance(plan, Plan)
    best = plan.target_families[0]
    full = tuple(
        HeldPod("ml", f"other-{node['metadata']['name']}", node["metadata"]["name"], 8, "other")
        for node in fleet_nodes
        if node["metadata"]["labels"].get("nvidia.com/gpu.family") == best
    )
    serve_first_artifact(kube, fleet_nodes, full)
    served_on = kube.objects[MODEL]["status"]["promotedArtifact"]["gpuFamily"]
    assert served_on != best
    kube.outcomes["quantize"] = ("Running", None)
    change_spec(kube, quantization=NEW_CALIBRATION)
    kube.clear_log()

    reconcile(fleet_nodes)  # the other pods are gone: `best` is free again

    status = kube.objects[MODEL]["status"]
    assert status["plan"]["gpuFamily"] == best
    assert status["promotedArtifact"]["gpuFamily"] == served_on
    assert kube.writes_of("apply") == []


def test_approving_the_new_artifact_rolls_the_deployment_to_it(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    first = serve_first_artifact(kube, fleet_nodes, serving={"promotion": "Manual"})
    change_spec(kube, quantization=NEW_CALIBRATION)
    reconcile(fleet_nodes, 3)
    second = kube.objects[MODEL]["status"]["artifact"]
    assert second["uri"] != first
    assert served_path(kube) == local_path(first)

    change_spec(kube, serving={"approvedArtifact": second["id"]})
    reconcile(fleet_nodes)

    assert conditions(kube)["Promoted"][:2] == ("True", Reason.APPROVED)
    assert served_path(kube) == local_path(second["uri"])
    assert kube.objects[MODEL]["status"]["promotedArtifact"]["id"] == second["id"]


def test_serving_disabled_then_enabled_serves_the_promoted_artifact_again(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """The record outlives the Deployment: re-enabling serves what was promoted, not the newer
    revision that awaits approval."""
    first = serve_first_artifact(kube, fleet_nodes, serving={"promotion": "Manual"})
    change_spec(kube, quantization=NEW_CALIBRATION, serving={"enabled": False})
    reconcile(fleet_nodes, 3)
    assert DEPLOYMENT not in kube.objects
    assert conditions(kube)["Ready"][:2] == ("False", Reason.SERVING_DISABLED)

    change_spec(kube, serving={"enabled": True})
    reconcile(fleet_nodes)

    assert served_path(kube) == local_path(first)
    assert conditions(kube)["Promoted"][:2] == ("False", Reason.AWAITING_APPROVAL)


def test_scaled_to_zero_is_not_ready_and_advertises_no_endpoint(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """`replicas: 0` reported Ready=True ("0/0 vLLM replicas ready") with an endpoint that
    nothing answered behind; a BenchmarkRun started against it."""
    serve_first_artifact(kube, fleet_nodes)
    change_spec(kube, serving={"replicas": 0})
    kube.add(make_run_body(targets=[{"name": "fp8", "modelRef": {"name": "qwen"}}]))
    kube.clear_log()

    reconcile(fleet_nodes)
    reconciler.reconcile_named(
        benchmarkrun.KIND, "ml", "bench", benchmarkrun.reconcile, Fleet(fleet_nodes)
    )

    ready_state, ready_reason, ready_message = conditions(kube)["Ready"]
    assert (ready_state, ready_reason) == ("False", Reason.SCALED_TO_ZERO)
    assert "spec.serving.replicas is 0" in ready_message
    status = kube.objects[MODEL]["status"]
    assert "endpoint" not in status["serving"]
    assert kube.objects[DEPLOYMENT]["spec"]["replicas"] == 0  # kept, scaled: a scale-up is quick
    assert SERVICE in kube.objects
    assert kube.writes_of("create") == []  # no benchmark Job against nothing
    run = {
        c["type"]: c for c in kube.objects[("BenchmarkRun", "ml", "bench")]["status"]["conditions"]
    }
    assert Reason.SCALED_TO_ZERO in run["Running"]["message"]
    assert not [e for e in kube.events if e[0] == Reason.SCALED_TO_ZERO]  # a choice, no Warning
