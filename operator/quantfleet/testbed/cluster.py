"""A real local control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler
from upstream, plus kwok simulating the GPU fleet's nodes and pods, all on 127.0.0.1."""

import json
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from quantfleet.testbed.binaries import Binaries, find_binaries, find_node_binaries
from quantfleet.testbed.fleet import KWOK_ANNOTATION, KWOK_ANNOTATION_VALUE, Fleet, build_nodes
from quantfleet.testbed.nodeconfig import NodeAddress
from quantfleet.testbed.pki import ADMIN_USER, PkiPaths, write_kubeconfig, write_pki
from quantfleet.testbed.processes import (
    Component,
    ComponentError,
    ProcessRecord,
    ensure_port_free,
    free_port,
    stop,
)
from quantfleet.testbed.realnode import RealNode, apiserver_kubelet_client, preflight
from quantfleet.testbed.wait import poll_until

SERVICE_CIDR = "10.0.0.0/24"
FIRST_SERVICE_IP = "10.0.0.1"
NODE_LEASE_SECONDS = 40  # the kubelet's default
# kube-controller-manager and kube-scheduler elect a leader, as on a kubeadm control plane: each
# exits when it cannot renew its lease for LEADER_RENEW_SECONDS, and the kubelet starts it again
# (Cluster.outage does that here); the new process leads once it has seen the old lease unrenewed
# for LEADER_LEASE_SECONDS. A third longer than the defaults (15 s, 10 s), so a slow API server
# on a loaded 2-core machine does not end them in the middle of a test run.
LEADER_LEASE_SECONDS = 20
LEADER_RENEW_SECONDS = 15
LEADER_ELECTED = ("kube-controller-manager", "kube-scheduler")
# Pod IPs handed out by kwok: simulated, nothing listens on them; apart from the service range.
POD_CIDR = "10.244.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
STATE_FILE = "cluster.json"
AUDIT_LOG = "audit.log"
WRITES = ["create", "update", "patch", "delete", "deletecollection"]


def audit_policy(admin_reads: bool = False) -> dict[str, object]:
    """Writes (the API calls an operator costs) at Metadata level: who, what verb, which object;
    with `admin_reads`, the admin kubeconfig's reads too (get, list, watch), for a benchmark that
    runs operators with it."""
    admin = [{"level": "Metadata", "users": [ADMIN_USER]}] if admin_reads else []
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [*admin, {"level": "Metadata", "verbs": WRITES}, {"level": "None"}],
    }


REAL_NODE_NAME = "real-cpu-0"

Log = Callable[[str], None]


@dataclass(frozen=True)
class RealNodeOptions:
    """A real node beside the kwok fleet (testbed.realnode)."""

    images: list[Path] = field(default_factory=list)
    # Tests: KubeletConfiguration fields to override (a kubelet that cannot start, say).
    kubelet_overrides: dict[str, object] = field(default_factory=dict)


@dataclass
class ClusterState:
    """What `quantfleet dev down/status` and the test fixture need to find a running cluster."""

    data_dir: Path
    kubeconfig: Path
    server: str
    processes: list[ProcessRecord] = field(default_factory=list)
    nodes: int = 0

    def save(self, path: Path) -> None:
        data = {
            "dataDir": str(self.data_dir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "nodes": self.nodes,
            "processes": [record.to_json() for record in self.processes],
        }
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ClusterState":
        data = json.loads(path.read_text())
        return cls(
            data_dir=Path(data["dataDir"]),
            kubeconfig=Path(data["kubeconfig"]),
            server=str(data["server"]),
            nodes=int(data.get("nodes", 0)),
            processes=[ProcessRecord.from_json(item) for item in data["processes"]],
        )


@dataclass
class Ports:
    """The listeners of one cluster, all on 127.0.0.1."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    @classmethod
    def pick(cls, apiserver: int | None = None) -> "Ports":
        if apiserver is not None:
            ensure_port_free(apiserver, "kube-apiserver")
        return cls(
            etcd_client=free_port(),
            etcd_peer=free_port(),
            apiserver=apiserver or free_port(),
            controller_manager=free_port(),
            scheduler=free_port(),
        )


class Cluster:
    """Starts the control plane and the simulated fleet; `stop()` ends only what it started."""

    def __init__(
        self,
        fleet: Fleet,
        data_dir: Path | None = None,
        binaries: Binaries | None = None,
        apiserver_port: int | None = None,
        log: Log = lambda message: None,
        real_node: RealNodeOptions | None = None,
        die_with_parent: bool = False,
        audit_admin_reads: bool = False,
    ) -> None:
        """`die_with_parent` (tests): every process, the real node's too, is SIGKILLed by the
        kernel when the thread that started it dies, so a killed test leaves nothing running.
        Off, the cluster outlives `quantfleet dev up`. `audit_admin_reads`: the audit log also
        has the admin user's reads (audit_policy)."""
        if real_node and (lacking := preflight(Path("/proc/filesystems").read_text())):
            raise ComponentError(f"The real node cannot start on this machine: {lacking}")
        # With a real node, the simulated CPU serving pools step aside: CPU models go to it.
        self.fleet = fleet.without_cpu_serving() if real_node else fleet
        self.binaries = binaries or find_binaries()
        self.real_node_options = real_node
        self.node_binaries = find_node_binaries(self.binaries.kubebin.parent) if real_node else None
        self.node_address = NodeAddress.pick() if real_node else None
        self.real_node: RealNode | None = None
        self.pki: PkiPaths | None = None
        # Chosen (and a requested port checked) before anything is written or started.
        self.ports = Ports.pick(apiserver_port)
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="quantfleet-cluster-"))
        self.log = log
        self.die_with_parent = die_with_parent
        self.audit_admin_reads = audit_admin_reads
        self.components: list[Component] = []
        self.state = ClusterState(
            data_dir=self.data_dir, kubeconfig=self.data_dir / "kubeconfig", server=""
        )

    def start(self, timeout: float = 120.0) -> ClusterState:
        """Bring everything up and return once nodes are Ready and pods can be admitted."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self.state

    def stop(self) -> list[str]:
        """Stop the processes this cluster started, newest first; returns their names."""
        stopped = self.real_node.stop() if self.real_node else []
        stopped += stop([component.record for component in self.components])
        for component in self.components:
            if component.process.poll() is None:
                component.process.wait(timeout=5)
        return stopped

    def outage(self, down_seconds: float, timeout: float = 120.0) -> float:
        """Chaos (benchmarks/chaos.py): stop kube-apiserver, restart etcd meanwhile, keep the API
        down `down_seconds` and start it again with the same arguments. An outage longer than
        LEADER_RENEW_SECONDS ends kube-controller-manager and kube-scheduler by themselves; once
        the API is ready, each that exited starts again, as the kubelet restarts a static pod
        (without that, their informers would wait out client-go's backoff of up to 60 s before
        listing again, which no kubeadm control plane does). Returns once they are healthy: the
        time.monotonic() at which the API was ready again."""
        assert self.pki is not None, "the cluster is not started"
        tls = _client_tls(self.pki)
        apiserver = self._relaunch("kube-apiserver", start=False)
        self._relaunch("etcd")
        deadline = time.monotonic() + timeout
        etcd_port = self.ports.etcd_client
        poll_until(
            lambda: _etcd_healthy(etcd_port),
            timeout=timeout,
            what="etcd to report healthy",
            retry_on=(OSError, urllib.error.URLError),
        )
        time.sleep(down_seconds)
        self._launch(apiserver.name, apiserver.argv[1:], binary=Path(apiserver.argv[0]))
        readyz = f"{self.state.server}/readyz"
        poll_until(
            lambda: _get_ok(readyz, tls),
            timeout=max(0.0, deadline - time.monotonic()),
            what="kube-apiserver /readyz",
            retry_on=(OSError, urllib.error.URLError),
        )
        recovered = time.monotonic()
        for component in list(self.components):
            if component.name in LEADER_ELECTED and component.process.poll() is not None:
                self.log(f"{component.name} exited during the outage (lost its leader lease)")
                self._relaunch(component.name)
        self._wait_healthz(deadline)
        return recovered

    def _relaunch(self, name: str, start: bool = True) -> Component:
        """Kill the component `name` (SIGKILL: a crash; kube-apiserver's graceful shutdown waits
        out its open watches for over 30 s) and, with `start`, start it again with the same
        arguments; returns the killed one."""
        old = next(c for c in self.components if c.name == name)
        old.process.kill()
        old.process.wait(timeout=30)
        self.components.remove(old)
        self.state.processes.remove(old.record)
        if start:
            self._launch(name, old.argv[1:], binary=Path(old.argv[0]))
        return old

    def _start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ports = self.ports
        pki = write_pki(self.data_dir / "pki", FIRST_SERVICE_IP)
        self.pki = pki
        server = f"https://127.0.0.1:{ports.apiserver}"
        self.state.server = server
        write_kubeconfig(self.state.kubeconfig, server, pki.ca_cert, pki.admin_cert, pki.admin_key)

        self._launch("etcd", self._etcd_args(ports))
        self._wait(deadline, "etcd to report healthy", lambda: _etcd_healthy(ports.etcd_client))

        (self.data_dir / "audit-policy.yaml").write_text(
            yaml.safe_dump(audit_policy(self.audit_admin_reads))
        )
        self._launch("kube-apiserver", self._apiserver_args(ports, pki))
        admin_tls = _client_tls(pki)
        self._wait(
            deadline, "kube-apiserver /readyz", lambda: _get_ok(f"{server}/readyz", admin_tls)
        )

        kubeconfig = str(self.state.kubeconfig)
        self._launch(
            "kube-controller-manager",
            [
                "controller-manager",
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--leader-elect-lease-duration={LEADER_LEASE_SECONDS}s",
                f"--leader-elect-renew-deadline={LEADER_RENEW_SECONDS}s",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.controller_manager}",
                f"--cert-dir={self.data_dir / 'controller-manager'}",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                # Each controller acts as its own ServiceAccount, as on kubeadm clusters, so
                # RBAC is exercised the way it is in production.
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        self._launch(
            "kube-scheduler",
            [
                "scheduler",
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--leader-elect-lease-duration={LEADER_LEASE_SECONDS}s",
                f"--leader-elect-renew-deadline={LEADER_RENEW_SECONDS}s",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.scheduler}",
            ],
        )
        stages = self.data_dir / "kwok-stages.yaml"
        stages.write_text(
            resources.files("quantfleet.testbed").joinpath("kwok-stages.yaml").read_text()
        )
        self._launch(
            "kwok",
            [
                f"--kubeconfig={kubeconfig}",
                f"--config={stages}",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}",
                "--node-ip=127.0.0.1",
                # Leases, as kwokctl sets it: without one the node controller reads a heartbeat
                # older than its grace period every ~50 s, taints the node unreachable and marks
                # its pods NotReady (which no stage turns Ready again).
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
                f"--cidr={POD_CIDR}",
            ],
            binary=self.binaries.kwok,
        )

        api = config.new_client_from_config(config_file=kubeconfig)
        try:
            nodes = apply_fleet(api, self.fleet)
            self.state.nodes = len(nodes)
            self._wait_healthz(deadline)
            # Pod admission waits for the namespace's default ServiceAccount, which the
            # controller-manager creates.
            self._wait(deadline, "the default ServiceAccount", lambda: _has_default_sa(api))
            self._wait(
                deadline,
                f"{len(nodes)} simulated nodes to turn Ready",
                lambda: _all_ready(api, nodes),
            )
        finally:
            api.close()
        if self.real_node_options:
            self._start_real_node(pki, deadline)
        self.log(f"Cluster at {server} is ready with {len(nodes)} simulated nodes")

    def _start_real_node(self, pki: PkiPaths, deadline: float) -> None:
        assert self.real_node_options
        assert self.node_binaries
        assert self.node_address
        self.log("Starting the real node (containerd, kubelet, kube-proxy, CoreDNS)")
        node = RealNode(
            name=REAL_NODE_NAME,
            data_dir=self.data_dir / "node",
            pki=pki,
            apiserver_port=self.ports.apiserver,
            address=self.node_address,
            binaries=self.node_binaries,
            die_with_parent=self.die_with_parent,
            kubelet_overrides=self.real_node_options.kubelet_overrides,
        )
        self.real_node = node
        api = config.new_client_from_config(config_file=str(self.state.kubeconfig))
        try:
            node.start(api, timeout=max(10.0, deadline - time.monotonic()))
        finally:
            api.close()
        self.state.processes.extend(node.records)
        node.import_images(self.real_node_options.images)

    def _launch(self, name: str, args: list[str], binary: Path | None = None) -> None:
        executable = binary or self.binaries.kubebin
        self.log(f"Starting {name}")
        component = Component(
            name,
            [str(executable), *args],
            self.data_dir / "logs" / f"{name}.log",
            die_with_parent=self.die_with_parent,
        )
        self.components.append(component)
        self.state.processes.append(component.record)

    def _wait_healthz(self, deadline: float) -> None:
        # Component health endpoints serve a self-signed cert; only liveness is read there.
        insecure = ssl._create_unverified_context()
        for name, port in (
            ("kube-controller-manager", self.ports.controller_manager),
            ("kube-scheduler", self.ports.scheduler),
        ):
            url = f"https://127.0.0.1:{port}/healthz"
            self._wait(deadline, f"{name} /healthz", partial(_get_ok, url, insecure))

    def _wait(self, deadline: float, what: str, check: Callable[[], object]) -> None:
        def alive_and(check: Callable[[], object] = check) -> object:
            for component in self.components:
                component.check_alive()
            return check()

        poll_until(
            alive_and,
            timeout=max(0.0, deadline - time.monotonic()),
            what=what,
            retry_on=(OSError, urllib.error.URLError, client.ApiException),
        )

    def _etcd_args(self, ports: Ports) -> list[str]:
        client_url = f"http://127.0.0.1:{ports.etcd_client}"
        peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
        return [
            "etcd",
            "--name=quantfleet",
            f"--data-dir={self.data_dir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=quantfleet={peer_url}",
            # A throwaway cluster: durability buys nothing and fsync dominates on slow disks.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self, ports: Ports, pki: PkiPaths) -> list[str]:
        return [*self._base_apiserver_args(ports, pki), *self._real_node_apiserver_args(pki)]

    def _real_node_apiserver_args(self, pki: PkiPaths) -> list[str]:
        if self.node_address is None:
            return []
        cert, key = apiserver_kubelet_client(pki)
        return [
            # The `kubernetes` Service's endpoint: pods dial the node's IP, where the node's
            # init relays to this loopback listener.
            f"--advertise-address={self.node_address.node_ip}",
            f"--kubelet-client-certificate={cert}",
            f"--kubelet-client-key={key}",
            f"--kubelet-certificate-authority={pki.ca_cert}",
            # No DNS lookup of the node's name: its IP, over the veth.
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _base_apiserver_args(self, ports: Ports, pki: PkiPaths) -> list[str]:
        return [
            "apiserver",
            f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
            "--bind-address=127.0.0.1",
            # Without it the API server exits on a machine that has no default route.
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={self.data_dir / 'apiserver'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # PodSecurity is on by default; named so that nobody has to look it up.
            "--enable-admission-plugins=PodSecurity,NodeRestriction",
            "--profiling=false",
            # An audit log of writes, so tests and benchmarks can count what a client cost.
            f"--audit-policy-file={self.data_dir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.data_dir / AUDIT_LOG}",
            "--audit-log-maxsize=1000",
        ]


def apply_fleet(api: client.ApiClient, fleet: Fleet) -> list[str]:
    """Create (or replace the labels, taints and capacity of) the fleet's nodes; their names."""
    core = client.CoreV1Api(api)
    names = []
    for node in build_nodes(fleet):
        name = node["metadata"]["name"]
        try:
            core.create_node(node)
        except client.ApiException as error:
            if error.status != 409:
                raise
            core.patch_node(name, {"metadata": node["metadata"], "spec": node["spec"]})
        # Status sent with a create is dropped by the Node strategy on some releases; the
        # status subresource is the one place capacity is sure to stick.
        core.patch_node_status(name, {"status": node["status"]})
        names.append(name)
    return names


def _client_tls(pki: PkiPaths) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return context


def _get_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return bool(response.status == 200)


def _etcd_healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        body: dict[str, Any] = json.load(response)
        return body.get("health") == "true"


def _has_default_sa(api: client.ApiClient) -> bool:
    client.CoreV1Api(api).read_namespaced_service_account("default", "default")
    return True


def _all_ready(api: client.ApiClient, names: list[str]) -> bool:
    ready = set()
    for node in client.CoreV1Api(api).list_node().items:
        conditions = node.status.conditions or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            ready.add(node.metadata.name)
    return set(names) <= ready


__all__ = ["Cluster", "ClusterState", "ComponentError", "apply_fleet", "write_kubeconfig"]
