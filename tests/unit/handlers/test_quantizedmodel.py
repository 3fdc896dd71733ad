"""The QuantizedModel handler's steps and passes against an in-memory kube layer: what each step
creates, keeps and deletes, and that a settled model costs no writes."""

import asyncio
from typing import Any

import pytest
from fake_kube import FakeKube
from handler_factories import make_evaluate_result, make_model_body, make_quantize_result
from prometheus_client import REGISTRY

from factories import make_node
from factories.pods import NVFP4_LOG, NVFP4_LOG_TAIL, make_serving_pod, running, terminated, waiting
from quantfleet.api.conditions import QuantizedModelCondition, Reason
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MODEL
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.quantizedmodel import QuantizedModel, QuantizedModelStatus
from quantfleet.builders.promotion import Promotion
from quantfleet.builders.status import Observed
from quantfleet.handlers import metrics, quantizedmodel, reconciler
from quantfleet.handlers.model_pass import Pass, plan_for
from quantfleet.handlers.nodes import Fleet
from quantfleet.handlers.quantizedmodel import ensure_evaluate_job, ensure_quantize_job, serve
from quantfleet.planning.inventory import HeldPod, build_inventory
from quantfleet.planning.planner import Plan, Unplaceable

Json = dict[str, Any]
PROMOTED = Promotion(True, Reason.PASSED_GATE, "recovery 99.50% meets the 99% gate")
BELOW_GATE = Promotion(False, Reason.BELOW_GATE, "recovery 90.00% is 9.00 points below")
SERVED = [("Deployment", "qwen-vllm"), ("Service", "qwen-vllm")]


def make_pass(nodes: list[Json], **spec: Any) -> Pass:
    body = make_model_body(**spec)
    return Pass(body, QuantizedModel.model_validate(body), build_inventory(nodes), Fleet([]).cache)


def planned(step: Pass) -> Plan:
    plan = plan_for(step, 7_600_000_000)
    assert isinstance(plan, Plan), plan
    return plan


def reconcile_named(name: str, nodes: list[Json], pods: tuple[HeldPod, ...] = ()) -> None:
    reconciler.reconcile_named(
        quantizedmodel.KIND, "ml", name, quantizedmodel.reconcile, Fleet(nodes, pods)
    )


def stored_status(kube: FakeKube, name: str = "qwen") -> Json:
    status: Json = kube.objects[("QuantizedModel", "ml", name)]["status"]
    return status


def conditions(kube: FakeKube, name: str = "qwen") -> dict[str, str]:
    return {c["type"]: c["status"] for c in stored_status(kube, name)["conditions"]}


@pytest.mark.parametrize(
    ("with_gpus", "want_placed"),
    [
        pytest.param(True, True, id="the simulated fleet places an 8B FP8 model"),
        pytest.param(False, False, id="no GPU nodes: unplaceable, with a reason"),
    ],
)
def test_plan_for(fleet_nodes: list[Json], with_gpus: bool, want_placed: bool) -> None:
    step = make_pass(fleet_nodes if with_gpus else [])
    plan = plan_for(step, 7_600_000_000)
    assert isinstance(plan, Plan) is want_placed
    if not want_placed:
        assert isinstance(plan, Unplaceable)
        assert plan.reason == Reason.NO_GPU_NODES


def test_ensure_quantize_job_creates_one_job_and_deletes_those_for_old_inputs(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    step = make_pass(fleet_nodes)
    old = {"kind": "Job", "metadata": {"namespace": "ml", "name": "qwen-quantize-old"}}
    old["metadata"]["labels"] = {LABEL_MODEL: "qwen", LABEL_COMPONENT: "quantize"}
    kube.add(old)

    first = ensure_quantize_job(step, Scheme.FP8_DYNAMIC, 7_600_000_000, None)
    again = ensure_quantize_job(step, Scheme.FP8_DYNAMIC, 7_600_000_000, None)

    assert first.name == again.name
    assert first.name.startswith("qwen-quantize-")
    assert kube.writes == [
        ("create", "Job", first.name),
        ("delete", "Job", "qwen-quantize-old"),
    ]


@pytest.mark.parametrize(
    ("cached", "want_cache_write"),
    [
        pytest.param({}, True, id="scores the cache lacks are added to it"),
        pytest.param(
            {"gsm8k": {"metric": "exact_match", "score": 0.8}},
            False,
            id="scores already cached are not written again",
        ),
    ],
)
def test_ensure_evaluate_job_fills_the_baseline_cache(
    kube: FakeKube, fleet_nodes: list[Json], cached: Json, want_cache_write: bool
) -> None:
    step = make_pass(fleet_nodes)
    kube.scores = dict(cached)
    kube.outcomes["evaluate"] = ("Succeeded", make_evaluate_result())
    plan = planned(step)
    ensure_evaluate_job(step, "abc123", ModelKind.TEXT, plan)
    kube.clear_log()

    evaluate = ensure_evaluate_job(step, "abc123", ModelKind.TEXT, plan)

    assert evaluate.phase == "Succeeded"
    assert (("ConfigMap", "baseline-cache") in kube.writes_of("apply")) is want_cache_write
    assert "gsm8k" in kube.scores


@pytest.mark.parametrize(
    ("promotion", "serving", "live", "want_applied", "want_deleted", "want_served"),
    [
        pytest.param(PROMOTED, {}, False, SERVED, [], True, id="promoted: applied and served"),
        pytest.param(PROMOTED, {}, True, [], [], True, id="promoted, already live: no writes"),
        pytest.param(
            PROMOTED,
            {"enabled": False},
            True,
            [],
            SERVED,
            False,
            id="serving disabled: the live Deployment and Service are deleted",
        ),
        pytest.param(
            BELOW_GATE,
            {},
            True,
            [],
            SERVED,
            False,
            id="nothing promoted (status names none): what is live is deleted",
        ),
        pytest.param(
            BELOW_GATE,
            {},
            False,
            [],
            [],
            False,
            id="not promoted and nothing live: no DELETE is sent",
        ),
        pytest.param(
            None,
            {},
            True,
            [],
            [],
            False,
            id="no verdict, no record (a status from before issue 32): what is live stays",
        ),
    ],
)
def test_serve(
    kube: FakeKube,
    fleet_nodes: list[Json],
    promotion: Promotion | None,
    serving: Json,
    live: bool,
    want_applied: list[tuple[str, str]],
    want_deleted: list[tuple[str, str]],
    want_served: bool,
) -> None:
    step = make_pass(fleet_nodes, serving=serving)
    plan = planned(step)
    if live:
        serve(make_pass(fleet_nodes), Observed(1, plan, "abc123", promotion=PROMOTED))
        kube.clear_log()

    observed = serve(step, Observed(1, plan, "abc123", promotion=promotion))

    assert kube.writes_of("apply") == want_applied
    assert kube.writes_of("delete") == want_deleted
    assert (observed.deployment is not None) is want_served
    assert (observed.endpoint is not None) is want_served


def serve_then_settle(kube: FakeKube, nodes: list[Json], pods: tuple[HeldPod, ...] = ()) -> None:
    """A model taken through quantize and evaluate to a served Deployment."""
    kube.outcomes["quantize"] = ("Succeeded", make_quantize_result())
    kube.outcomes["evaluate"] = ("Succeeded", make_evaluate_result())
    kube.add(make_model_body())
    for _ in range(3):  # creates the quantize Job, then the evaluate Job, then serves
        reconcile_named("qwen", nodes, pods)
    assert stored_status(kube)["children"]["deployment"] == "qwen-vllm"


def test_after_serving_is_disabled_a_second_pass_writes_and_deletes_nothing(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """Issue 10 part 2: the status kept status.children.deployment/service after serving was
    disabled, so every later pass patched status again and sent two DELETEs that 404."""
    serve_then_settle(kube, fleet_nodes)
    kube.objects[("QuantizedModel", "ml", "qwen")]["spec"]["serving"] = {"enabled": False}

    reconcile_named("qwen", fleet_nodes)
    assert kube.writes_of("delete") == SERVED
    assert "deployment" not in stored_status(kube)["children"]
    assert "service" not in stored_status(kube)["children"]
    assert "serving" not in stored_status(kube)
    assert conditions(kube)[QuantizedModelCondition.READY] == "False"
    kube.clear_log()

    reconcile_named("qwen", fleet_nodes)
    assert kube.writes == []


def test_a_served_model_stays_where_it_is_when_a_better_fit_frees_up(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """The demo's Deployments rolled between GPU families as other pods came and went: a plan
    keeps the family it chose while that has room, and a changed spec plans afresh."""
    best = planned(make_pass(fleet_nodes)).target_families[0]
    full = tuple(
        HeldPod("ml", f"other-{node['metadata']['name']}", node["metadata"]["name"], 8, "other")
        for node in fleet_nodes
        if node["metadata"]["labels"].get("nvidia.com/gpu.family") == best
    )
    serve_then_settle(kube, fleet_nodes, full)
    served_on = stored_status(kube)["plan"]["gpuFamily"]
    assert served_on != best
    kube.clear_log()

    reconcile_named("qwen", fleet_nodes)  # the other pods are gone: `best` is free again

    assert kube.writes_of("apply") == []  # the Deployment is not rolled
    # Nor is status written: the runner-up changed, the reasons it was placed did not.
    assert kube.writes_of("patch-status") == []
    assert stored_status(kube)["plan"]["gpuFamily"] == served_on
    body = kube.objects[("QuantizedModel", "ml", "qwen")]
    body["metadata"]["generation"] = 2
    reconcile_named("qwen", fleet_nodes)
    assert stored_status(kube)["plan"]["gpuFamily"] == best


def test_a_model_being_deleted_in_the_foreground_is_left_alone(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """Foreground deletion keeps the model while its children go: a pass then saw its Job
    without pods and reported NoReadableResult, and would recreate the Deployment."""
    serve_then_settle(kube, fleet_nodes)
    body = kube.objects[("QuantizedModel", "ml", "qwen")]
    body["metadata"]["deletionTimestamp"] = "2026-12-04T22:35:55Z"
    for kind, name in SERVED:
        del kube.objects[(kind, "ml", name)]
    kube.clear_log()

    reconcile_named("qwen", fleet_nodes)

    assert kube.writes == []


def test_a_pass_over_a_settled_model_writes_nothing(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    serve_then_settle(kube, fleet_nodes)
    reconcile_named("qwen", fleet_nodes)
    kube.clear_log()

    reconcile_named("qwen", fleet_nodes)

    assert kube.writes == []
    assert kube.events == []


def model_series(kube: FakeKube, name: str) -> list[Json]:
    """The series of model `name`: its conditions and recovery as the operator's collector
    reads them from the models the watch holds (here the fake's), and its Job durations."""
    models = [body for (kind, _, _), body in kube.objects.items() if kind == "QuantizedModel"]
    families = [*metrics.ModelCollector(lambda: models).collect(), *metrics.JOB_SECONDS.collect()]
    return [
        sample.labels
        for family in families
        for sample in family.samples
        if sample.labels.get("name") == name
    ]


def test_deleting_a_model_removes_its_series_and_its_lock(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """Also in issue 10: a deleted model's series stayed, so QuantfleetModelNotReady kept
    firing; its lock stayed in memory."""
    serve_then_settle(kube, fleet_nodes)
    assert model_series(kube, "qwen") != []
    assert ("QuantizedModel", "ml", "qwen") in reconciler.tracked()
    body = kube.objects.pop(("QuantizedModel", "ml", "qwen"))

    asyncio.run(
        quantizedmodel.HANDLERS.event(
            event={"type": "DELETED", "object": body}, namespace="ml", name="qwen", body=body
        )
    )

    assert model_series(kube, "qwen") == []
    assert ("QuantizedModel", "ml", "qwen") not in reconciler.tracked()


def test_the_series_say_what_the_status_says(kube: FakeKube, fleet_nodes: list[Json]) -> None:
    """Read at each scrape from the watched statuses: a condition's value and the scheme it was
    planned with; a status this operator did not write (hand-edited) exports nothing."""
    serve_then_settle(kube, fleet_nodes)
    body = kube.objects[("QuantizedModel", "ml", "qwen")]
    status = QuantizedModelStatus.model_validate(body["status"])
    models = lambda: [body, {"metadata": {"namespace": "ml", "name": "bad"}, "status": {"plan": 1}}]  # noqa: E731

    families = {family.name: family for family in metrics.ModelCollector(models).collect()}

    conditions = {
        s.labels["condition"]: (s.value, s.labels["scheme"])
        for s in families[metrics.MODEL_CONDITION].samples
    }
    expected = {
        c.type: (metrics._VALUES[c.status], str(status.plan.scheme if status.plan else None))
        for c in status.conditions
    }
    assert conditions == expected
    assert QuantizedModelCondition.READY in conditions
    assert status.recovery is not None
    assert [s.value for s in families[metrics.RECOVERY].samples] == [status.recovery.overall]


def test_an_event_on_a_child_reconciles_the_model_it_names(
    kube: FakeKube, fleet_nodes: list[Json], monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.add(make_model_body())
    index = {node["metadata"]["name"]: [node] for node in fleet_nodes}
    monkeypatch.setattr(reconciler, "CHILD_SETTLE_SECONDS", 0.01)

    async def burst() -> None:
        for _ in range(3):  # a child's burst of events: one pass
            await quantizedmodel.HANDLERS.child_changed(
                namespace="ml",
                labels={LABEL_MODEL: "qwen"},
                gpu_nodes=index,
                gpu_pods={},
                watched={},
            )
        await asyncio.gather(*reconciler.SETTLING)

    passes = lambda: REGISTRY.get_sample_value(  # noqa: E731
        "quantfleet_reconciles_total", {"kind": quantizedmodel.KIND}
    )
    before = passes() or 0

    asyncio.run(burst())

    assert passes() == before + 1

    [(kind, name)] = kube.writes_of("create")
    assert kind == "Job"
    assert name.startswith("qwen-quantize-")
    assert conditions(kube)[QuantizedModelCondition.PLANNED] == "True"


def evaluate_job_gpus(kube: FakeKube, name: str) -> tuple[str, list[str]]:
    """The GPUs the evaluate Job requests and the tensor parallel size it passes its engine."""
    container = kube.objects[("Job", "ml", name)]["spec"]["template"]["spec"]["containers"][0]
    tp = [arg for arg in container["args"] if arg.startswith("--tensor-parallel-size")]
    return container["resources"]["limits"]["nvidia.com/gpu"], tp


SEVENTY_TWO_B = {
    "source": {"uri": "hf://Qwen/Qwen2.5-VL-72B-Instruct", "parametersBillions": 72},
    "evaluation": {"tasks": ["mmlu"]},
}


def test_the_evaluate_job_is_sized_for_the_bf16_baseline_it_loads(kube: FakeKube) -> None:
    step = make_pass([make_node("h100", gpus=8)], **SEVENTY_TWO_B)
    plan = plan_for(step, 72 * 10**9)
    assert isinstance(plan, Plan)
    assert plan.gpus_per_replica == 2  # FP8 weights: 2 x 80 GB

    evaluate = ensure_evaluate_job(step, "abc123", ModelKind.TEXT, plan)

    assert not isinstance(evaluate, str)
    assert evaluate_job_gpus(kube, evaluate.name) == ("4", ["--tensor-parallel-size=4"])


def test_with_every_baseline_score_cached_the_evaluate_job_needs_only_the_plan(
    kube: FakeKube,
) -> None:
    step = make_pass([make_node("h100", gpus=8)], **SEVENTY_TWO_B)
    kube.scores = {"mmlu": {"metric": "acc,none", "score": 0.8}}
    plan = plan_for(step, 72 * 10**9)
    assert isinstance(plan, Plan)

    evaluate = ensure_evaluate_job(step, "abc123", ModelKind.TEXT, plan)

    assert not isinstance(evaluate, str)
    assert evaluate_job_gpus(kube, evaluate.name) == ("2", ["--tensor-parallel-size=2"])


def test_a_bf16_baseline_no_node_holds_is_said_in_evaluated_and_makes_no_job(
    kube: FakeKube,
) -> None:
    nodes = [make_node("h100", gpus=2)]  # FP8 fits 2 x 80 GB; BF16 needs 4
    body = make_model_body(**SEVENTY_TWO_B)
    kube.add(body)
    kube.outcomes["quantize"] = ("Succeeded", make_quantize_result())

    reconcile_named("qwen", nodes)  # creates the quantize Job
    reconcile_named("qwen", nodes)  # reads its result: next, the evaluation

    evaluated = next(
        c
        for c in stored_status(kube)["conditions"]
        if c["type"] == QuantizedModelCondition.EVALUATED
    )
    assert (evaluated["status"], evaluated["reason"]) == ("False", Reason.INSUFFICIENT_GPU_MEMORY)
    assert evaluated["message"].startswith("the evaluation loads the BF16 baseline: ")
    assert "2 x 80 GiB" in evaluated["message"]
    assert not [key for key in kube.objects if key[0] == "Job" and "evaluate" in key[2]]


NVFP4_REASON = (
    "ValueError: Failed to find a kernel that can implement the NVFP4 linear layer. Reasons:"
)
SELECTOR = "quantfleet.io/model=qwen,quantfleet.io/component=serve"
CRASHED = make_serving_pod(state=waiting("CrashLoopBackOff"), last_state=terminated(NVFP4_LOG_TAIL))


@pytest.mark.parametrize(
    ("pod", "want_reason", "want_message", "want_reads"),
    [
        pytest.param(
            CRASHED, Reason.SERVING_FAILED, NVFP4_REASON,
            [("list", "Pod", SELECTOR), ("log", "Pod", "qwen-vllm-7d9f-x2k4/vllm previous")],
            id="a checkpoint vLLM cannot load: vLLM's own reason, from its log",
        ),
        pytest.param(
            make_serving_pod(state=waiting("ImagePullBackOff", 'Back-off pulling image "x"')),
            Reason.SERVING_FAILED, 'ImagePullBackOff: Back-off pulling image "x"',
            [("list", "Pod", SELECTOR)],
            id="an image that cannot be pulled: the kubelet's reason",
        ),
        pytest.param(make_serving_pod(state=running()), Reason.DEPLOYMENT_PROGRESSING,
                     "0/1 vLLM replicas ready", [("list", "Pod", SELECTOR)],
                     id="a server still loading is progressing"),
    ],
)  # fmt: skip
def test_a_server_that_does_not_come_up_says_why_in_ready(
    kube: FakeKube,
    fleet_nodes: list[Json],
    pod: Json,
    want_reason: str,
    want_message: str,
    want_reads: list[tuple[str, str, str]],
) -> None:
    """Issue 11, bad input: never a silent Progressing."""
    serve_then_settle(kube, fleet_nodes)
    kube.add(pod)
    kube.logs[("ml", "qwen-vllm-7d9f-x2k4", "vllm")] = NVFP4_LOG
    kube.clear_log()

    reconcile_named("qwen", fleet_nodes)

    ready = next(c for c in stored_status(kube)["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        want_reason,
        want_message,
    )
    assert kube.reads == want_reads
    failed = want_reason == Reason.SERVING_FAILED
    assert (("ServingFailed", f"Ready: {want_message}") in kube.events) is failed


def test_a_ready_deployment_lists_no_pods_and_records_the_versions(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """Issue 11 item 3: the vLLM release that serves and the compressed-tensors that wrote the
    checkpoint, in status."""
    versions = {"compressed-tensors": "0.19.0", "llmcompressor": "0.10.0"}
    kube.outcomes["quantize"] = ("Succeeded", make_quantize_result(library_versions=versions))
    kube.outcomes["evaluate"] = ("Succeeded", make_evaluate_result())
    kube.add(make_model_body(serving={"image": "registry.local/vllm-openai:v0.32.0"}))
    for _ in range(3):
        reconcile_named("qwen", fleet_nodes)
    kube.objects[("Deployment", "ml", "qwen-vllm")]["status"] = {"readyReplicas": 1}
    kube.add(CRASHED)  # an old crash of a server now ready
    kube.clear_log()

    reconcile_named("qwen", fleet_nodes)

    status = stored_status(kube)
    assert conditions(kube)[QuantizedModelCondition.READY] == "True"
    assert kube.reads == []
    assert status["serving"]["vllmVersion"] == "0.32.0"
    assert status["artifact"]["compressedTensorsVersion"] == "0.19.0"
