"""The QuantizedModel operator end to end on the real control plane: the real operator process
(its own RBAC), the real Job and Deployment controllers, the real scheduler placing pods on
kwok's simulated GPU nodes, and the SIMULATED worker standing in for the GPU Job programs."""

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from factories import GPU_TAINT, Models, make_quantized_model
from quantfleet.cli import main as cli_main
from quantfleet.cli.localrun import OperatorProcess
from quantfleet.kube.children import FIELD_MANAGER
from quantfleet.testbed.cluster import AUDIT_LOG, ClusterState
from quantfleet.testbed.wait import poll_until
from quantfleet.testbed.worker import SimulatedResults, SimulatedWorker

pytestmark = pytest.mark.integration

Json = dict[str, Any]


def node_labels(api: client.ApiClient, node: str) -> dict[str, str]:
    labels: dict[str, str] = client.CoreV1Api(api).read_node(node).metadata.labels
    return labels


@pytest.mark.parametrize(
    ("scheme", "quantization", "native"),
    [
        pytest.param("FP8_DYNAMIC", {}, lambda cc: cc >= (8, 9), id="fp8-only-on-ada-or-newer"),
        pytest.param("W8A8", {}, lambda cc: (7, 5) <= cc < (8, 9), id="int8-on-ampere-or-turing"),
        pytest.param("W4A16", {}, lambda cc: cc >= (7, 5), id="w4a16-where-the-plan-says"),
        pytest.param("auto", {"objective": "latency"}, lambda cc: True, id="auto-as-planned"),
    ],
)
def test_model_is_served_on_the_gpus_its_plan_names(
    models: Models,
    api_client: client.ApiClient,
    scheme: str,
    quantization: Json,
    native: Callable[[tuple[int, int]], bool],
) -> None:
    models.create(make_quantized_model("m", scheme, quantization=quantization))
    ready = models.wait_condition("m", "Ready", "True")
    status = models.get("m")["status"]
    assert "1/1 vLLM replicas ready" in ready["message"]
    assert status["artifact"]["simulated"] is True
    assert "SIMULATED" in models.condition("m", "Quantized")["message"]

    # One replica; a pod of a superseded ReplicaSet (a re-plan as the shared fleet's free GPUs
    # moved) may still be terminating when Ready turns True.
    def live() -> list[Any] | None:
        pods = [p for p in models.serving_pods("m") if not p.metadata.deletion_timestamp]
        return pods if len(pods) == 1 else None

    pods = poll_until(live, timeout=60, what="the model's one live vLLM pod")
    labels = node_labels(api_client, pods[0].spec.node_name)
    cc = (int(labels["nvidia.com/gpu.compute.major"]), int(labels["nvidia.com/gpu.compute.minor"]))
    assert labels["nvidia.com/gpu.family"] in status["plan"]["gpuFamilies"]
    assert native(cc), (scheme, cc)
    assert status["serving"]["endpoint"].startswith("http://m-vllm.")


def test_below_the_gate_gets_no_deployment_and_says_by_how_much(
    models: Models, worker: SimulatedWorker
) -> None:
    worker.producer = SimulatedResults(recovery_by_model={"low": 97.0})
    models.create(make_quantized_model("low"))
    promoted = models.wait_condition("low", "Promoted", "False", "BelowGate")
    assert "2.00 points below the 99% gate" in promoted["message"]
    assert models.deployments("low") == []
    assert models.condition("low", "Ready")["reason"] == "NotPromoted"


def test_manual_promotion_waits_then_proceeds_on_approval(models: Models) -> None:
    models.create(make_quantized_model("manual", serving={"promotion": "Manual"}))
    waiting = models.wait_condition("manual", "Promoted", "False", "AwaitingApproval")
    assert models.deployments("manual") == []
    artifact = models.get("manual")["status"]["artifact"]["id"]
    assert f"approvedArtifact: {artifact}" in waiting["message"]
    models.patch_spec("manual", {"serving": {"approvedArtifact": artifact}})
    models.wait_condition("manual", "Promoted", "True", "Approved")
    models.wait_condition("manual", "Ready", "True")


def test_a_worse_revision_leaves_the_promoted_checkpoint_serving(
    models: Models, worker: SimulatedWorker
) -> None:
    """Issue 32: a spec change whose checkpoint misses the gate must not take down the
    Deployment serving the promoted one; it serves, untouched, until another is promoted."""
    models.create(make_quantized_model("steady"))
    models.wait_condition("steady", "Ready", "True")
    first = models.get("steady")["status"]["promotedArtifact"]
    [serving] = models.deployments("steady")
    worker.producer = SimulatedResults(recovery_by_model={"steady": 90.0})

    models.patch_spec("steady", {"quantization": {"calibration": {"samples": 256}}})

    models.wait_condition("steady", "Promoted", "False", "BelowGate")
    status = models.get("steady")["status"]
    assert status["artifact"]["id"] != first["id"]
    assert status["promotedArtifact"]["uri"] == first["uri"]
    ready = models.condition("steady", "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "DeploymentReady")
    assert f"serving artifact {first['id']}" in ready["message"]
    [still] = models.deployments("steady")
    assert still.metadata.uid == serving.metadata.uid  # never deleted
    assert still.spec.template.spec.containers[0].args[0] == first["uri"]
    assert status["serving"]["endpoint"].startswith("http://steady-vllm.")


def test_a_model_no_gpu_can_hold_reports_it_without_pods(models: Models) -> None:
    body = make_quantized_model("huge")
    body["spec"]["source"]["parametersBillions"] = 9000
    models.create(body)
    planned = models.wait_condition("huge", "Planned", "False")
    assert planned["reason"] == "InsufficientGpuMemory"
    assert "needs" in planned["message"], planned["message"]
    assert models.job_names("huge") == []
    assert models.pods("huge") == []


def test_killing_the_operator_mid_flow_creates_no_duplicates(
    models: Models, operator: OperatorProcess, worker: SimulatedWorker
) -> None:
    worker.producer = lambda pod: None  # hold every Job pod Running
    models.create(make_quantized_model("crash"))
    models.wait_condition("crash", "Quantized", "Unknown", "Running")
    assert operator.kill() == -9
    operator.start()
    worker.producer = SimulatedResults()
    models.wait_condition("crash", "Ready", "True")
    assert len(models.job_names("crash")) == 2  # one quantize, one evaluate
    assert len(models.deployments("crash")) == 1


def test_deleting_a_model_removes_its_children(models: Models) -> None:
    models.create(make_quantized_model("gone"))
    models.wait_condition("gone", "Ready", "True")
    assert models.job_names("gone")
    models.delete("gone")
    poll_until(
        lambda: not (models.job_names("gone") or models.deployments("gone")),
        timeout=models.timeout,
        what="children of gone garbage-collected",
    )


def test_a_spec_change_replaces_what_must_change_and_only_that(models: Models) -> None:
    models.create(make_quantized_model("change"))
    models.wait_condition("change", "Ready", "True")
    jobs_before = models.job_names("change")
    deployment_uid = models.deployments("change")[0].metadata.uid

    models.patch_spec("change", {"serving": {"replicas": 2}})
    poll_until(
        lambda: models.get("change")["status"]["serving"]["readyReplicas"] == 2,
        timeout=models.timeout,
        what="two ready replicas",
    )
    assert models.job_names("change") == jobs_before
    assert models.deployments("change")[0].metadata.uid == deployment_uid

    models.patch_spec("change", {"quantization": {"scheme": "W4A16"}})

    def w4a16_serves() -> bool:
        # Ready alone says the FP8 checkpoint still serves until the new one is promoted
        # (issue 32): wait for the W4A16 artifact to be the promoted one, and Ready.
        status = models.get("change")["status"]
        promoted = status.get("promotedArtifact") or {}
        return (
            promoted.get("scheme") == "W4A16"
            and promoted.get("id") == (status.get("artifact") or {}).get("id")
            and models.condition("change", "Ready").get("status") == "True"
        )

    poll_until(w4a16_serves, timeout=models.timeout, what="W4A16 promoted and ready")
    jobs_after = models.job_names("change")
    assert len(jobs_after) == 2
    assert set(jobs_after).isdisjoint(jobs_before)
    assert models.deployments("change")[0].metadata.uid == deployment_uid


def test_each_step_posts_an_event(models: Models) -> None:
    """An event per pass that completed steps: quantized; evaluated and promoted (one event,
    named for the gate); ready. A plan made is in status, not an event."""
    models.create(make_quantized_model("told"))
    models.wait_condition("told", "Ready", "True")

    def reasons() -> list[str] | None:
        found = sorted(models.events("told"))
        return found if {"Succeeded", "PassedGate", "DeploymentReady"} <= set(found) else None

    found = poll_until(reasons, timeout=30, what="events for quantized, promoted, ready")
    assert found == ["DeploymentReady", "PassedGate", "Succeeded"]


OPERATOR_USER = "system:serviceaccount:quantfleet-system:quantfleet-operator"
# The budget one model may cost on its way to Ready (status writes and events included; reads
# cost none: they come from the watches).
WRITE_BUDGET = 12


def test_api_writes_one_model_costs_to_reach_ready(models: Models, cluster: ClusterState) -> None:
    models.create(make_quantized_model("counted"))
    models.wait_condition("counted", "Ready", "True")
    audit = cluster.data_dir / AUDIT_LOG
    writes: Counter[str] = Counter()
    for line in audit.read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if entry["user"]["username"] == OPERATOR_USER and ref.get("namespace") == models.namespace:
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            writes[f"{entry['verb']} {ref.get('resource')}{sub}"] += 1
    print(f"API writes to reach Ready: {sum(writes.values())} {dict(writes)}")
    assert writes["create jobs"] == 2
    assert writes["patch deployments"] + writes["create deployments"] == 1
    assert sum(writes.values()) <= WRITE_BUDGET, (writes, models.events("counted"))


def test_a_scheme_no_node_runs_natively_reports_it_without_pods(
    models: Models, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    blackwell = [
        node.metadata.name
        for node in core.list_node(label_selector="nvidia.com/gpu.family=blackwell").items
    ]
    assert blackwell
    for name in blackwell:  # the only NVFP4-native GPUs leave the fleet for this test
        core.patch_node(name, {"spec": {"unschedulable": True}})
    try:
        models.create(make_quantized_model("fp4", "NVFP4"))
        planned = models.wait_condition("fp4", "Planned", "False", "NoCompatibleGpu")
        assert "NVFP4" in planned["message"]
        assert models.job_names("fp4") == []
        assert models.pods("fp4") == []
    finally:
        for name in blackwell:
            core.patch_node(name, {"spec": {"unschedulable": False}})


def test_a_model_waits_for_free_gpus_and_is_placed_once_they_free_up(
    models: Models,
    api_client: client.ApiClient,
    make_namespace: Callable[..., str],
    kubeconfig: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pods of another team hold every NVFP4-native GPU (the B200s): the model fits the fleet,
    not its free GPUs, so it waits with InsufficientFreeGpus and no Job; their going plans it."""
    core = client.CoreV1Api(api_client)
    others = make_namespace()
    b200s = core.list_node(label_selector="nvidia.com/gpu.family=blackwell").items
    assert b200s
    for node in b200s:
        gpus = node.status.allocatable["nvidia.com/gpu"]
        container = {"name": "hold", "image": "busybox"}
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
        holder = {
            "metadata": {"name": f"hold-{node.metadata.name}"},
            "spec": {
                "nodeName": node.metadata.name,
                "tolerations": [{"key": GPU_TAINT["key"], "operator": "Exists"}],
                "containers": [container],
            },
        }
        core.create_namespaced_pod(others, holder)

    models.create(make_quantized_model("fp4", "NVFP4"))
    waiting = models.wait_condition("fp4", "Planned", "False", "InsufficientFreeGpus")

    assert "0 of 8 GPUs free" in waiting["message"]
    assert models.job_names("fp4") == []
    # `quantfleet plan` against the cluster sees the same pods.
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    capsys.readouterr()
    assert cli_main.main(["plan", "--params=8B", "--scheme=NVFP4"]) == 1
    assert "unplaceable (InsufficientFreeGpus)" in capsys.readouterr().out
    for node in b200s:
        core.delete_namespaced_pod(f"hold-{node.metadata.name}", others, grace_period_seconds=0)
    poll_until(
        lambda: not core.list_namespaced_pod(others).items,
        timeout=60,
        what="the holder pods to be gone",
    )
    # The pods' going plans it again at once (well before the 120 s resync).
    planned = models.wait_condition("fp4", "Planned", "True", "Placed")
    assert "blackwell" in planned["message"]


POOL_LABEL = "quantfleet.io/node-pool"


@pytest.mark.parametrize(
    ("scheme", "quantization", "pools", "levels"),
    [
        pytest.param("W8A8", {}, {"xeon-amx"}, ["amx"], id="int8-only-where-amx-or-vnni"),
        pytest.param(
            "W8A8",
            {"allowFallback": True},
            {"xeon-amx"},
            ["amx"],
            id="int8-fallback-unused-while-a-native-cpu-has-room",
        ),
        pytest.param(
            "W4A16", {}, {"xeon-amx", "xeon-avx512"}, ["amx", "avx512"], id="w4a16-on-any-avx512"
        ),
    ],
)
def test_a_cpu_model_runs_its_jobs_and_serves_on_the_cpus_its_scheme_needs(
    models: Models,
    api_client: client.ApiClient,
    scheme: str,
    quantization: Json,
    pools: set[str],
    levels: list[str],
) -> None:
    """Simulated CPU nodes (kwok, NFD labels with and without AMX): the scheduler places the
    Jobs and the vLLM pods by the operator's affinity on the labels."""
    name = f"cpu-{scheme.lower()}{'-fb' if quantization else ''}"
    models.create(
        make_quantized_model(name, scheme, quantization=quantization, placement={"hardware": "cpu"})
    )
    models.wait_condition(name, "Ready", "True", timeout=240)  # three pods on a shared cluster
    plan = models.get(name)["status"]["plan"]
    assert (plan["hardware"], plan["cpusPerReplica"]) == ("cpu", 16)
    # The best level first; others only where the scheme runs natively (on the shared cluster,
    # other tests' pods may leave a level without room, which narrows but never widens this).
    assert plan["cpuLevels"][0] == levels[0]
    assert set(plan["cpuLevels"]) <= set(levels)
    assert "gpuFamily" not in plan
    placed = {
        component: [node_labels(api_client, p.spec.node_name) for p in models.pods(name, component)]
        for component in ("quantize", "evaluate", "serve")
    }
    for component, labels in placed.items():
        assert labels, component
        assert all("nvidia.com/gpu.present" not in node for node in labels), component
        assert all(node["quantfleet.io/cpu-serving"] == "true" for node in labels), component
    assert {node[POOL_LABEL] for node in placed["serve"]} <= pools
    (serving,) = models.serving_pods(name)
    assert serving.spec.containers[0].resources.requests["cpu"] == "16"


def test_nvfp4_on_cpus_is_not_planned_and_makes_no_pods(models: Models) -> None:
    models.create(make_quantized_model("cpu-fp4", "NVFP4", placement={"hardware": "cpu"}))
    planned = models.wait_condition("cpu-fp4", "Planned", "False", "NoCompatibleCpu")
    assert "vLLM's CPU backend has no NVFP4 kernel" in planned["message"]
    assert models.jobs("cpu-fp4") == []


def test_a_hand_edit_of_the_deployment_is_put_back_once(
    models: Models, api_client: client.ApiClient
) -> None:
    models.create(make_quantized_model("edited"))
    models.wait_condition("edited", "Ready", "True")
    apps = client.AppsV1Api(api_client)
    [deployment] = models.deployments("edited")
    name, image = deployment.metadata.name, deployment.spec.template.spec.containers[0].image
    by_hand = {"name": "vllm", "image": "example.com/other:1"}
    patch = {"spec": {"replicas": 3, "template": {"spec": {"containers": [by_hand]}}}}

    apps.patch_namespaced_deployment(name, models.namespace, patch)

    def put_back() -> Any:
        live = apps.read_namespaced_deployment(name, models.namespace)
        restored = live.spec.replicas == 1 and live.spec.template.spec.containers[0].image == image
        return live if restored else None

    live = poll_until(put_back, timeout=models.timeout, what="the hand edit put back")
    # Our forced apply took the fields back: no other manager owns them in spec (the controller's
    # status entry aside), so no pass applies again.
    others = [
        (m.fields_v1 or {}).get("f:spec", {})
        for m in live.metadata.managed_fields
        if m.manager != FIELD_MANAGER and m.subresource != "status"
    ]
    assert not any(f in json.dumps(spec) for f in ("f:replicas", "f:image") for spec in others)
    assert models.condition("edited", "Ready")["status"] == "True"


def test_two_models_writing_to_one_output_the_later_waits(models: Models) -> None:
    first = make_quantized_model("first")
    second = make_quantized_model("second", output=first["spec"]["output"])
    models.create(first)
    poll_until(lambda: models.job_names("first"), timeout=models.timeout, what="first's Job")

    models.create(second)

    held = models.wait_condition("second", "Quantized", "False", reason="OutputInUse")
    assert f"{models.namespace}/first" in held["message"]
    assert models.job_names("second") == []
