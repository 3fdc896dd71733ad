"""The real node itself: Ready with this CPU's NFD labels, running restricted pods from the
project's images, Services and cluster DNS, the `kubernetes` Service from a pod, logs through the
API server, OOM kills reported, and nothing reaching beyond the node's namespace."""

import json
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from quantfleet.planning.cpu import cpu_level
from quantfleet.testbed.fleet import SIMULATED_LABEL
from quantfleet.testbed.realnode import nfd_labels

from .conftest import RealCluster, restricted_pod

RunPod = Callable[..., client.V1Pod]


def test_node_is_ready_with_its_real_cpus_nfd_labels(
    real_cluster: RealCluster, real_api: client.ApiClient
) -> None:
    node = client.CoreV1Api(real_api).read_node(real_cluster.node_name)
    labels = node.metadata.labels

    want = nfd_labels(Path("/proc/cpuinfo").read_text())
    assert {key: labels.get(key) for key in want} == want
    assert cpu_level(labels) == cpu_level(want)
    assert SIMULATED_LABEL not in labels
    assert node.status.node_info.kubelet_version == "v1.36.3"
    assert node.status.node_info.container_runtime_version.startswith("containerd://2.")


def test_restricted_pod_runs_from_our_image_and_reports_its_termination_message(
    restricted_namespace: str, run_pod: RunPod
) -> None:
    code = (
        "import os; open('/dev/termination-log','w').write(f'uid={os.getuid()} gid={os.getgid()}')"
    )

    pod = run_pod(restricted_namespace, "whoami", code)

    assert pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.message == "uid=65532 gid=65532"


def test_read_only_root_is_enforced(restricted_namespace: str, run_pod: RunPod) -> None:
    pod = run_pod(restricted_namespace, "write-root", "open('/app/x', 'w')")

    assert pod.status.phase == "Failed"


def test_service_and_cluster_dns_route_to_a_pod(
    restricted_namespace: str,
    real_cluster: RealCluster,
    real_api: client.ApiClient,
    run_pod: RunPod,
) -> None:
    core = client.CoreV1Api(real_api)
    server = restricted_pod(
        "web",
        real_cluster.image("operator"),
        ["python", "-m", "http.server", "8000", "--directory", "/app"],
    )
    server["spec"]["restartPolicy"] = "Always"  # type: ignore[index]
    core.create_namespaced_pod(restricted_namespace, server)
    core.create_namespaced_service(
        restricted_namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]},
        },
    )
    host = f"web.{restricted_namespace}.svc.cluster.local"
    code = (
        "import urllib.request, time\n"
        "for attempt in range(60):\n"
        "    try:\n"
        f"        urllib.request.urlopen('http://{host}/', timeout=2); break\n"
        "    except OSError as error:\n"
        "        last = error; time.sleep(1)\n"
        "else:\n"
        "    raise SystemExit(f'unreachable: {last}')\n"
    )

    pod = run_pod(restricted_namespace, "client", code, timeout=180)

    assert pod.status.phase == "Succeeded", core.read_namespaced_pod_log(
        "client", restricted_namespace
    )


def test_pods_reach_the_api_server_through_the_kubernetes_service(
    restricted_namespace: str, run_pod: RunPod
) -> None:
    code = (
        "import json, os, ssl, urllib.request\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "host = os.environ['KUBERNETES_SERVICE_HOST']\n"
        "port = os.environ['KUBERNETES_SERVICE_PORT']\n"
        "request = urllib.request.Request(\n"
        "    f'https://{host}:{port}/version',\n"
        "    headers={'Authorization': 'Bearer ' + open(f'{sa}/token').read()})\n"
        "context = ssl.create_default_context(cafile=f'{sa}/ca.crt')\n"
        "version = json.load(urllib.request.urlopen(request, context=context, timeout=10))\n"
        "open('/dev/termination-log', 'w').write(version['gitVersion'])\n"
    )

    pod = run_pod(restricted_namespace, "api", code, automount_service_account_token=True)

    assert pod.status.container_statuses[0].state.terminated.message == "v1.36.3"


def test_pod_logs_come_through_the_api_server(
    restricted_namespace: str, real_api: client.ApiClient, run_pod: RunPod
) -> None:
    run_pod(restricted_namespace, "talker", "print('hello from the real node')")

    log = client.CoreV1Api(real_api).read_namespaced_pod_log("talker", restricted_namespace)

    assert "hello from the real node" in log


def test_memory_limit_kills_with_oomkilled(restricted_namespace: str, run_pod: RunPod) -> None:
    pod = run_pod(
        restricted_namespace,
        "hog",
        "x = bytearray(512 * 2**20)",
        resources={"limits": {"memory": "128Mi"}, "requests": {"memory": "128Mi"}},
    )

    assert pod.status.container_statuses[0].state.terminated.reason == "OOMKilled"


def test_nothing_leaves_the_node(
    restricted_namespace: str, real_cluster: RealCluster, run_pod: RunPod
) -> None:
    """A TEST-NET-3 address has no route out of the node's namespace (refused at once, inside
    it); a name outside the cluster is not resolved (no upstream DNS); the host's end of the
    veth is dropped for pods."""
    code = (
        "import json, socket\n"
        "outcome = {}\n"
        "for name, target in (('external', ('203.0.113.7', 80)), ('host', (HOST, 80))):\n"
        "    try:\n"
        "        socket.create_connection(target, timeout=3); outcome[name] = 'connected'\n"
        "    except OSError as error:\n"
        "        outcome[name] = type(error).__name__ + ':' + str(error.errno)\n"
        "try:\n"
        "    socket.getaddrinfo('pypi.org', 443); outcome['dns'] = 'resolved'\n"
        "except OSError as error:\n"
        "    outcome['dns'] = 'failed'\n"
        "open('/dev/termination-log', 'w').write(json.dumps(outcome))\n"
    )
    host_ip = real_cluster.address.host_ip
    pod = run_pod(restricted_namespace, "egress", code.replace("HOST", repr(host_ip)))

    outcome = json.loads(pod.status.container_statuses[0].state.terminated.message)
    assert outcome["external"].startswith("OSError:101"), outcome  # ENETUNREACH
    assert outcome["host"] != "connected", outcome
    assert outcome["dns"] == "failed", outcome
