"""The QuantizedModel operator end to end on the real control plane: the real operator process
(its own RBAC), the real Job and Deployment controllers, the real scheduler placing pods on
kwok's simulated GPU nodes, and the SIMULATED worker standing in for the GPU Job programs."""

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from quantfleet.cli.localrun import OperatorProcess
from quantfleet.testbed.cluster import AUDIT_LOG, ClusterState
from quantfleet.testbed.wait import poll_until
from quantfleet.testbed.worker import SimulatedResults, SimulatedWorker

pytestmark = pytest.mark.integration

Json = dict[str, Any]
GROUP, VERSION, PLURAL = "quantfleet.io", "v1alpha1", "quantizedmodels"
MODEL_LABEL = "quantfleet.io/model"
TIMEOUT = 90.0


def make_model(name: str, scheme: str = "FP8_DYNAMIC", **spec: Any) -> Json:
    """A QuantizedModel of a 7B vision-language model; no volumes (s3 output)."""
    quantization = {"scheme": scheme, **spec.pop("quantization", {})}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QuantizedModel",
        "metadata": {"name": name},
        "spec": {
            "source": {
                "uri": "hf://Qwen/Qwen2.5-VL-7B-Instruct",
                "kind": "vision-language",
                "parametersBillions": 8.3,
            },
            "quantization": quantization,
            "output": {"uri": f"s3://models/{name}"},
            **spec,
        },
    }


class Models:
    """Create, read and change QuantizedModels in one namespace, and look at their children."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.custom = client.CustomObjectsApi(api)

    def create(self, body: Json) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> Json:
        body: Json = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return body

    def patch_spec(self, name: str, spec: Json) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, propagation_policy="Foreground"
        )

    def condition(self, name: str, kind: str) -> Json:
        conditions = (self.get(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def wait_condition(
        self, name: str, kind: str, status: str, reason: str | None = None, timeout: float = TIMEOUT
    ) -> Json:
        def reached() -> Json | None:
            found = self.condition(name, kind)
            matches = found.get("status") == status and reason in (None, found.get("reason"))
            return found if matches else None

        return poll_until(
            reached,
            timeout=timeout,
            what=f"{name} {kind}={status}{f' ({reason})' if reason else ''}",
        )

    def jobs(self, name: str) -> list[str]:
        return sorted(
            j.metadata.name
            for j in client.BatchV1Api(self.api)
            .list_namespaced_job(self.namespace, label_selector=f"{MODEL_LABEL}={name}")
            .items
        )

    def deployments(self, name: str) -> list[Any]:
        return list(
            client.AppsV1Api(self.api)
            .list_namespaced_deployment(self.namespace, label_selector=f"{MODEL_LABEL}={name}")
            .items
        )

    def serving_pods(self, name: str) -> list[Any]:
        return [
            p
            for p in client.CoreV1Api(self.api)
            .list_namespaced_pod(
                self.namespace, label_selector=f"{MODEL_LABEL}={name},quantfleet.io/component=serve"
            )
            .items
            if p.spec.node_name
        ]

    def pods(self, name: str) -> list[Any]:
        return list(
            client.CoreV1Api(self.api)
            .list_namespaced_pod(self.namespace, label_selector=f"{MODEL_LABEL}={name}")
            .items
        )


@pytest.fixture
def models(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess, worker: SimulatedWorker
) -> Models:
    return Models(api_client, namespace)


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
    models.create(make_model("m", scheme, quantization=quantization))
    ready = models.wait_condition("m", "Ready", "True")
    status = models.get("m")["status"]
    assert "1/1 vLLM replicas ready" in ready["message"]
    assert status["artifact"]["simulated"] is True
    assert "SIMULATED" in models.condition("m", "Quantized")["message"]
    pods = models.serving_pods("m")
    assert len(pods) == 1
    labels = node_labels(api_client, pods[0].spec.node_name)
    cc = (int(labels["nvidia.com/gpu.compute.major"]), int(labels["nvidia.com/gpu.compute.minor"]))
    assert labels["nvidia.com/gpu.family"] in status["plan"]["gpuFamilies"]
    assert native(cc), (scheme, cc)
    assert status["serving"]["endpoint"].startswith("http://m-vllm.")


def test_below_the_gate_gets_no_deployment_and_says_by_how_much(
    models: Models, worker: SimulatedWorker
) -> None:
    worker.producer = SimulatedResults(recovery_by_model={"low": 97.0})
    models.create(make_model("low"))
    promoted = models.wait_condition("low", "Promoted", "False", "BelowGate")
    assert "2.00 points below the 99% gate" in promoted["message"]
    assert models.deployments("low") == []
    assert models.condition("low", "Ready")["reason"] == "NotPromoted"


def test_manual_promotion_waits_then_proceeds_on_approval(models: Models) -> None:
    models.create(make_model("manual", serving={"promotion": "Manual"}))
    waiting = models.wait_condition("manual", "Promoted", "False", "AwaitingApproval")
    assert models.deployments("manual") == []
    artifact = models.get("manual")["status"]["artifact"]["id"]
    assert f"approvedArtifact: {artifact}" in waiting["message"]
    models.patch_spec("manual", {"serving": {"approvedArtifact": artifact}})
    models.wait_condition("manual", "Promoted", "True", "Approved")
    models.wait_condition("manual", "Ready", "True")


def test_a_model_no_gpu_can_hold_reports_it_without_pods(models: Models) -> None:
    body = make_model("huge")
    body["spec"]["source"]["parametersBillions"] = 9000
    models.create(body)
    planned = models.wait_condition("huge", "Planned", "False")
    assert planned["reason"] == "InsufficientGpuMemory"
    assert "needs" in planned["message"], planned["message"]
    assert models.jobs("huge") == []
    assert models.pods("huge") == []


def test_killing_the_operator_mid_flow_creates_no_duplicates(
    models: Models, operator: OperatorProcess, worker: SimulatedWorker
) -> None:
    worker.producer = lambda pod: None  # hold every Job pod Running
    models.create(make_model("crash"))
    models.wait_condition("crash", "Quantized", "Unknown", "Running")
    assert operator.kill() == -9
    operator.start()
    worker.producer = SimulatedResults()
    models.wait_condition("crash", "Ready", "True")
    assert len(models.jobs("crash")) == 2  # one quantize, one evaluate
    assert len(models.deployments("crash")) == 1


def test_deleting_a_model_removes_its_children(models: Models) -> None:
    models.create(make_model("gone"))
    models.wait_condition("gone", "Ready", "True")
    assert models.jobs("gone")
    models.delete("gone")
    poll_until(
        lambda: not (models.jobs("gone") or models.deployments("gone")),
        timeout=TIMEOUT,
        what="children of gone garbage-collected",
    )


def test_a_spec_change_replaces_what_must_change_and_only_that(models: Models) -> None:
    models.create(make_model("change"))
    models.wait_condition("change", "Ready", "True")
    jobs_before = models.jobs("change")
    deployment_uid = models.deployments("change")[0].metadata.uid

    models.patch_spec("change", {"serving": {"replicas": 2}})
    poll_until(
        lambda: models.get("change")["status"]["serving"]["readyReplicas"] == 2,
        timeout=TIMEOUT,
        what="two ready replicas",
    )
    assert models.jobs("change") == jobs_before
    assert models.deployments("change")[0].metadata.uid == deployment_uid

    models.patch_spec("change", {"quantization": {"scheme": "W4A16"}})
    poll_until(
        lambda: (
            models.get("change")["status"].get("plan", {}).get("scheme") == "W4A16"
            and models.condition("change", "Ready").get("status") == "True"
            and models.condition("change", "Ready").get("observedGeneration")
            == models.get("change")["metadata"]["generation"]
        ),
        timeout=TIMEOUT,
        what="re-planned to W4A16 and ready",
    )
    jobs_after = models.jobs("change")
    assert len(jobs_after) == 2
    assert set(jobs_after).isdisjoint(jobs_before)
    assert models.deployments("change")[0].metadata.uid == deployment_uid


def test_each_step_posts_an_event(models: Models, api_client: client.ApiClient) -> None:
    models.create(make_model("told"))
    models.wait_condition("told", "Ready", "True")

    def reasons() -> set[str] | None:
        events = (
            client.CoreV1Api(api_client)
            .list_namespaced_event(models.namespace, field_selector="involvedObject.name=told")
            .items
        )
        found = {e.reason for e in events}
        return found if {"Placed", "Succeeded", "PassedGate", "DeploymentReady"} <= found else None

    poll_until(reasons, timeout=30, what="events for planned, quantized, promoted, ready")


OPERATOR_USER = "system:serviceaccount:quantfleet-system:quantfleet-operator"
# The budget one model may cost on its way to Ready (status writes included; reads are free).
WRITE_BUDGET = 20


def test_api_writes_one_model_costs_to_reach_ready(models: Models, cluster: ClusterState) -> None:
    models.create(make_model("counted"))
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
    assert sum(writes.values()) <= WRITE_BUDGET, writes


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
        models.create(make_model("fp4", "NVFP4"))
        planned = models.wait_condition("fp4", "Planned", "False", "NoCompatibleGpu")
        assert "NVFP4" in planned["message"]
        assert models.jobs("fp4") == []
        assert models.pods("fp4") == []
    finally:
        for name in blackwell:
            core.patch_node(name, {"spec": {"unschedulable": False}})
