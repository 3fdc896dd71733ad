"""Fixtures of the real-node suite: a control plane with the kwok GPU fleet and one real node
(testbed.realnode: containerd, kubelet, kube-proxy, CoreDNS in namespaces of their own), the
project's images built from its Dockerfile and imported into that node, and restricted
namespaces. The cluster dies with the test process, even on SIGKILL (the node's init is told).
"""

import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from quantfleet.cli.incluster import deploy_operator, operator_settings, prepare_models
from quantfleet.testbed.cluster import Cluster, ClusterState, RealNodeOptions
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.images import TARGETS, build_images
from quantfleet.testbed.realnode import RealNode
from quantfleet.testbed.wait import poll_until

CLUSTER_START_TIMEOUT = 240.0
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/realnode/" in str(item.fspath):
            item.add_marker(pytest.mark.realnode)


class RealCluster:
    """The session's cluster with its real node, and the images imported into that node."""

    def __init__(self, cluster: Cluster, state: ClusterState) -> None:
        self.cluster = cluster
        self.state = state
        assert cluster.real_node is not None
        self.node: RealNode = cluster.real_node
        self.images: dict[str, str] = {}

    def image(self, target: str) -> str:
        """The reference of the Dockerfile's `target` image, built (or found in the cache by its
        content key) and imported into the node."""
        if target not in self.images:
            (built,) = build_images([target])
            self.node.import_images([built.archive])
            self.images[target] = built.ref
        return self.images[target]


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    data_dir = tmp_path_factory.mktemp("real-cluster")
    failure = ""
    try:
        cluster = Cluster(
            load_fleet(), data_dir=data_dir, real_node=RealNodeOptions(), die_with_parent=True
        )
        state = cluster.start(timeout=CLUSTER_START_TIMEOUT)
    except Exception as error:
        failure = f"The real-node cluster did not start: {error}\nLogs: {data_dir}"
    if failure:
        pytest.fail(failure, pytrace=False)
    try:
        yield RealCluster(cluster, state)
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def real_api(real_cluster: RealCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(real_cluster.state.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def operator_on_node(real_cluster: RealCluster, real_api: client.ApiClient) -> str:
    """The operator running as a pod from its image on the real node, installed with the Helm
    chart as the demo installs it (cli.incluster); the pod's name."""
    images = {target: real_cluster.image(target) for target in TARGETS}
    # Without a CPU request (cli.incluster.operator_values): the node's 2 cores go to the
    # model's replica and its BF16 baseline.
    return deploy_operator(
        real_api,
        real_cluster.state.kubeconfig,
        real_cluster.cluster.binaries.kubebin.parent,
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
