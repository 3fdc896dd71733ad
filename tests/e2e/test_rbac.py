"""The operator's token, bound to exactly manifests/rbac.yaml, can do its work and nothing more:
it reads Nodes and runs Jobs, but Secrets are out of reach."""

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

pytestmark = pytest.mark.integration


def can(api: client.ApiClient, verb: str, resource: str, namespace: str, group: str = "") -> bool:
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "namespace": namespace,
                }
            }
        }
    )
    return bool(review.status.allowed)


@pytest.mark.parametrize(
    ("verb", "group", "resource", "want_allowed"),
    [
        pytest.param("list", "", "nodes", True, id="reads the GPU inventory"),
        pytest.param("watch", "", "nodes", True, id="follows the GPU inventory"),
        pytest.param("patch", "", "nodes", False, id="never changes nodes"),
        pytest.param("create", "batch", "jobs", True, id="runs Job programs"),
        pytest.param("patch", "batch", "jobs", False, id="never mutates a Job"),
        pytest.param("list", "", "pods", True, id="reads Job pods' results"),
        pytest.param("create", "", "pods", False, id="never creates pods itself"),
        pytest.param("patch", "quantfleet.io", "quantizedmodels/status", True, id="writes status"),
        pytest.param("create", "quantfleet.io", "quantizedmodels", False, id="never creates QMs"),
        pytest.param("create", "apps", "deployments", True, id="serves promoted models"),
        pytest.param("delete", "", "configmaps", False, id="keeps the baseline cache"),
        pytest.param("create", "events.k8s.io", "events", True, id="records events"),
        pytest.param("get", "", "secrets", False, id="cannot get secrets"),
        pytest.param("list", "", "secrets", False, id="cannot list secrets"),
        pytest.param("watch", "", "secrets", False, id="cannot watch secrets"),
        pytest.param("create", "", "secrets", False, id="cannot create secrets"),
        pytest.param("create", "", "serviceaccounts/token", False, id="cannot mint tokens"),
        pytest.param("list", "", "namespaces", False, id="no namespace listing needed"),
        pytest.param(
            "watch", "apiextensions.k8s.io", "customresourcedefinitions", True, id="Kopf sees CRDs"
        ),
        pytest.param(
            "delete", "apiextensions.k8s.io", "customresourcedefinitions", False, id="CRDs read"
        ),
        pytest.param("create", "rbac.authorization.k8s.io", "rolebindings", False, id="no RBAC"),
    ],
)
def test_operator_token_is_allowed_exactly_its_work(
    operator_api_client: client.ApiClient,
    namespace: str,
    verb: str,
    group: str,
    resource: str,
    want_allowed: bool,
) -> None:
    assert can(operator_api_client, verb, resource, namespace, group) is want_allowed


def test_operator_token_lists_nodes_and_creates_a_job_that_uses_a_secret_by_reference(
    operator_api_client: client.ApiClient, api_client: client.ApiClient, namespace: str
) -> None:
    nodes = client.CoreV1Api(operator_api_client).list_node().items
    assert len(nodes) > 0

    # A Job whose pod takes the hub token from a Secret: creating it needs no Secret permission.
    token_env: dict[str, Any] = {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
    }
    job = {
        "metadata": {"name": "rbac-probe"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "registry.invalid/x:1", "env": [token_env]}
                    ],
                }
            },
        },
    }
    client.BatchV1Api(operator_api_client).create_namespaced_job(namespace, job)

    created = client.BatchV1Api(api_client).read_namespaced_job("rbac-probe", namespace)
    env = created.spec.template.spec.containers[0].env[0]
    assert env.value_from.secret_key_ref.name == "hf-token"


def test_operator_token_gets_403_reading_secrets(
    operator_api_client: client.ApiClient, api_client: client.ApiClient, namespace: str
) -> None:
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace, {"metadata": {"name": "hf-token"}, "stringData": {"token": "not-a-real-token"}}
    )
    core = client.CoreV1Api(operator_api_client)

    attempts: list[Callable[[], object]] = [
        lambda: core.read_namespaced_secret("hf-token", namespace),
        lambda: core.list_namespaced_secret(namespace),
        lambda: core.list_secret_for_all_namespaces(),
    ]
    for attempt in attempts:
        with pytest.raises(client.ApiException) as caught:
            attempt()
        assert caught.value.status == 403
