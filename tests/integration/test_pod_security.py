"""Pod Security Admission, built into the real kube-apiserver, enforces the restricted level
on a namespace labelled for it."""

import json
from collections.abc import Callable

import pytest
from kubernetes import client

from .helpers import pod

pytestmark = pytest.mark.integration

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def test_restricted_namespace_rejects_privileged_pod(
    api_client: client.ApiClient, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(labels=RESTRICTED)
    privileged = pod("privileged")
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}

    with pytest.raises(client.ApiException) as refused:
        client.CoreV1Api(api_client).create_namespaced_pod(namespace, privileged)

    message = json.loads(refused.value.body)["message"]
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "securityContext.privileged=true" in message


def test_restricted_namespace_admits_compliant_pod(
    api_client: client.ApiClient, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(labels=RESTRICTED)
    compliant = pod(
        "compliant",
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    )
    compliant["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsUser": 65532,
    }

    created = client.CoreV1Api(api_client).create_namespaced_pod(namespace, compliant)

    assert created.metadata.name == "compliant"
