"""manifests/operator.yaml on the real API server: Pod Security "restricted" is enforced in
quantfleet-system, and the operator's pod is admitted there (kwok then runs it: nothing
executes, so this checks admission and scheduling, not the image)."""

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from quantfleet.cli.localrun import MANIFESTS, OPERATOR_NAMESPACE, load_documents
from quantfleet.kube.apply import apply
from quantfleet.testbed.wait import poll_until

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


@pytest.fixture
def deployments(api_client: client.ApiClient, operator_rbac: list[str]) -> Iterator[list[str]]:
    """Names of Deployments the test applies in quantfleet-system; deleted afterwards."""
    applied: list[str] = []
    yield applied
    apps = client.AppsV1Api(api_client)
    for name in applied:
        apps.delete_namespaced_deployment(name, OPERATOR_NAMESPACE, propagation_policy="Foreground")


def operator_deployment(name: str) -> dict[str, Any]:
    (deployment,) = [
        d for d in load_documents(MANIFESTS / "operator.yaml") if d["kind"] == "Deployment"
    ]
    deployment = copy.deepcopy(deployment)
    deployment["metadata"]["name"] = name
    # Its own selector, so it never adopts or is confused with another test's pods.
    for labels in (
        deployment["spec"]["selector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"],
    ):
        labels["e2e.quantfleet.io/deployment"] = name
    return deployment


def pods_of(api_client: client.ApiClient, name: str) -> list[Any]:
    core = client.CoreV1Api(api_client)
    selector = f"e2e.quantfleet.io/deployment={name}"
    return list(core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=selector).items)


def replica_set_failures(api_client: client.ApiClient) -> list[str]:
    events = client.CoreV1Api(api_client).list_namespaced_event(
        OPERATOR_NAMESPACE, field_selector="reason=FailedCreate"
    )
    return [event.message for event in events.items]


def test_operator_pod_is_admitted_under_enforced_restricted_profile(
    api_client: client.ApiClient, deployments: list[str]
) -> None:
    namespace = client.CoreV1Api(api_client).read_namespace(OPERATOR_NAMESPACE)
    assert namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"

    apply(api_client, operator_deployment("qf-operator-admitted"), OPERATOR_NAMESPACE)
    deployments.append("qf-operator-admitted")

    pod = poll_until(
        lambda: next(iter(pods_of(api_client, "qf-operator-admitted")), None),
        timeout=TIMEOUT,
        what="the operator Deployment's pod to be admitted",
    )
    assert pod.spec.service_account_name == "quantfleet-operator"
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True


def test_a_weakened_operator_pod_is_rejected_by_pod_security(
    api_client: client.ApiClient, deployments: list[str]
) -> None:
    weakened = operator_deployment("qf-operator-weakened")
    weakened["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "allowPrivilegeEscalation"
    ] = True
    apply(api_client, weakened, OPERATOR_NAMESPACE)
    deployments.append("qf-operator-weakened")

    failures = poll_until(
        lambda: [m for m in replica_set_failures(api_client) if "qf-operator-weakened" in m],
        timeout=TIMEOUT,
        what="the ReplicaSet to report that Pod Security rejected the pod",
    )
    assert any("violates PodSecurity" in message for message in failures)
    assert "allowPrivilegeEscalation" in " ".join(failures)
    assert pods_of(api_client, "qf-operator-weakened") == []
