"""The reads behind a failing server's reason, against the real API server: the Deployment's
pods as the API lists them (camelCase JSON), kept by the operator's cache as a watch would give
them and selected by the Deployment's selector, and a log the kubelet cannot give read as ""."""

from typing import Any

import pytest
from kubernetes import client

from factories.pods import make_serving_pod
from quantfleet.builders.serving_status import serving_failure
from quantfleet.kube import cache, children

pytestmark = pytest.mark.integration

# No node carries it: the pods stay Pending, with no host to read a log from.
NOWHERE = {"quantfleet.io/nowhere": "true"}


def unschedulable(name: str, model: str, namespace: str) -> dict[str, Any]:
    """A vLLM pod of the operator's Deployment that no node will take."""
    pod = make_serving_pod(name, model=model)
    del pod["status"]
    pod["metadata"]["namespace"] = namespace
    pod["spec"] = {**pod["spec"], "affinity": {}, "tolerations": [], "nodeSelector": NOWHERE}
    return pod


def test_serving_pods_are_listed_by_selector_and_a_missing_log_reads_empty(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    for name, model in (("qwen-vllm-a", "qwen"), ("other-vllm-a", "other")):
        core.create_namespaced_pod(namespace, unschedulable(name, model, namespace))
    selector = make_serving_pod()["metadata"]["labels"]

    listed = api_client.call_api(
        f"/api/v1/namespaces/{namespace}/pods", "GET", auth_settings=["BearerToken"],
        response_type="object", _return_http_data_only=True,
    )  # fmt: skip
    index: dict[cache.Key, list[bytes]] = {}
    for pod in listed["items"]:
        for key, kept in cache.indexed(pod, "Pod").items():
            index.setdefault(key, []).append(kept)

    pods = children.list_pods(cache.Cache(api_client, index), namespace, selector)

    assert [pod["metadata"]["name"] for pod in pods] == ["qwen-vllm-a"]
    assert pods[0]["spec"]["containers"][0]["startupProbe"]["failureThreshold"] == 180
    assert serving_failure(pods) is None  # Pending is on its way, not a failure
    log = children.read_log(api_client, namespace, "qwen-vllm-a", "vllm", previous=True, lines=400)
    assert log == ""
