"""The simulated GPU fleet as the API server sees it: every node of the default fleet file is
Ready (kwok's node stages, simulated), labelled like GPU Feature Discovery would, and offers
its GPUs as allocatable `nvidia.com/gpu`."""

import pytest
from kubernetes import client

from quantfleet.testbed.fleet import SIMULATED_LABEL, build_nodes, load_fleet

pytestmark = pytest.mark.integration
SIMULATED_NODES = f"{SIMULATED_LABEL}=true"


def test_fleet_nodes_are_ready_with_gpu_labels_and_capacity(api_client: client.ApiClient) -> None:
    want = {node["metadata"]["name"]: node for node in build_nodes(load_fleet())}

    nodes = {
        node.metadata.name: node
        for node in client.CoreV1Api(api_client).list_node(label_selector=SIMULATED_NODES).items
    }

    assert set(nodes) == set(want)
    for name, node in nodes.items():
        ready = [c.status for c in node.status.conditions or [] if c.type == "Ready"]
        want_labels = want[name]["metadata"]["labels"]
        want_gpus = want[name]["status"]["allocatable"].get("nvidia.com/gpu")
        assert ready == ["True"], name
        assert want_labels.items() <= node.metadata.labels.items(), name
        assert (node.status.allocatable or {}).get("nvidia.com/gpu") == want_gpus, name


def test_every_simulated_node_keeps_a_lease(api_client: client.ApiClient) -> None:
    """Without kwok's leases the node controller saw stale heartbeats every ~50 s, called the
    fleet unreachable (tainting it) and marked its pods NotReady for good: served models fell to
    DeploymentProgressing and plans moved off the tainted nodes."""
    names = {
        node.metadata.name
        for node in client.CoreV1Api(api_client).list_node(label_selector=SIMULATED_NODES).items
    }
    leases = {
        lease.metadata.name: lease
        for lease in client.CoordinationV1Api(api_client)
        .list_namespaced_lease("kube-node-lease")
        .items
    }

    assert names <= set(leases)
    for name in names:
        assert leases[name].spec.renew_time is not None, name
