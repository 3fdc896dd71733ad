"""One real Kubernetes node beside the kwok fleet: kubelet, containerd, runc, CNI, kube-proxy and
CoreDNS (built by tools/nodebin), in PID, mount and network namespaces of their own, as kind runs
its node in a container, labelled with the Node Feature Discovery cpuid labels of this machine's
real CPU. `testbed.nodeinit` is the node's init; this module writes its config and starts it.

Network (../shared/reference/realnode.md): the node's namespace has a veth to the host (a /30 of
10.233.0.0/16, the host's end holding nothing but that address), a bridge for its pods and no
default route: nothing can leave the machine. The API server stays on the host's loopback; the
node's init relays it into the node (the apiserver's advertise address is the node's IP, so the
`kubernetes` Service works from pods). The apiserver reaches the kubelet over the veth.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from quantfleet.planning.cpu import LABEL_CPU_VENDOR, LEVEL_FLAGS, flag_label
from quantfleet.planning.inventory import LABEL_CPU_SERVING
from quantfleet.testbed.binaries import NodeBinaries
from quantfleet.testbed.nodeconfig import (
    CONTAINERD_SOCKET,
    COREDNS_RBAC,
    KUBELET_ROOT,
    PAUSE_IMAGE,
    POD_LOGS,
    NodeAddress,
    cni_config,
    containerd_config,
    corefile,
    guard_rules,
    kube_proxy_config,
    kubelet_config,
)
from quantfleet.testbed.nodeinit import remove_cgroups
from quantfleet.testbed.ociimage import write_image_archive
from quantfleet.testbed.pki import PkiPaths, issue_cert, write_kubeconfig
from quantfleet.testbed.preflight import kernel_lacks
from quantfleet.testbed.processes import (
    ComponentError,
    ProcessRecord,
    die_with_parent_preexec,
    log_tail,
    stop,
)
from quantfleet.testbed.wait import poll_until

REAL_NODE_LABEL = "quantfleet.io/real-node"
# The images tools/images/build.sh names (localhost/quantfleet-<target>:<key>).
PROJECT_IMAGES = "localhost/quantfleet-"
# Parent of every real node's cgroups (cgroup v1 hierarchies): one subtree per node, removed
# when the node stops.
CGROUP_PARENT = "quantfleet"
# The sysctls kubelet sets when they differ (vm.overcommit_memory, kernel.panic, ...) are
# machine-wide: inside the node they read as kubelet wants them, so the host's are never written.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


COMMANDS = ("unshare", "nsenter", "ip", "nft", "mount", "conntrack", "iptables")


def preflight(
    filesystems: str, cgroups: Path = Path("/sys/fs/cgroup"), euid: int | None = None
) -> str | None:
    """What this machine lacks for a real node, in one line; None when it has everything."""
    if lacks := kernel_lacks(filesystems, cgroups, os.geteuid() if euid is None else euid):
        return lacks
    if missing := [command for command in COMMANDS if shutil.which(command) is None]:
        return f"commands missing: {', '.join(missing)} (run `make nodebin`, which installs them)"
    return None


def nfd_labels(cpuinfo: str) -> dict[str, str]:
    """The Node Feature Discovery labels the planner reads (planning.cpu), from the kernel's
    view of this CPU's cpuid (/proc/cpuinfo: `avx512_vnni` is NFD's `AVX512VNNI`)."""
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in cpuinfo.splitlines())
        if key.strip() in ("flags", "vendor_id")
    )
    present = {flag.replace("_", "").upper() for flag in fields.get("flags", "").split()}
    wanted = {flag for flags in LEVEL_FLAGS.values() for flag in flags}
    labels = {flag_label(flag): "true" for flag in sorted(wanted & present)}
    if vendor := fields.get("vendor_id"):
        labels[LABEL_CPU_VENDOR] = vendor
    return labels


def node_pki(pki: PkiPaths, folder: Path, name: str, address: NodeAddress) -> None:
    """The node's certs: kubelet (client and serving), kube-proxy, CoreDNS."""
    folder.mkdir(parents=True, exist_ok=True)
    issue_cert(pki, folder / "kubelet", f"system:node:{name}", organization="system:nodes")
    issue_cert(pki, folder / "kubelet-serving", name, server_names=(name, address.node_ip))
    issue_cert(pki, folder / "kube-proxy", "system:kube-proxy")
    issue_cert(pki, folder / "coredns", "quantfleet:coredns")


def apiserver_kubelet_client(pki: PkiPaths) -> tuple[Path, Path]:
    """The API server's client cert for kubelets (logs, exec, port-forward)."""
    return issue_cert(
        pki,
        pki.ca_cert.parent / "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        organization="system:masters",
    )


@dataclass
class RealNode:
    """A real node joined to a running control plane. `start()` returns once it is Ready and
    labelled; `records` are what `quantfleet dev down` stops (the init first, then unshare)."""

    name: str
    data_dir: Path
    pki: PkiPaths
    apiserver_port: int
    address: NodeAddress
    binaries: NodeBinaries
    # Tests: the node dies with the process that started it, even on SIGKILL.
    die_with_parent: bool = False
    kubelet_overrides: dict[str, object] = field(default_factory=dict)
    records: list[ProcessRecord] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return node_socket(self._init_pid)

    @property
    def cgroup_root(self) -> str:
        # The address index is unique among the nodes alive on this machine: two clusters'
        # nodes (both named real-cpu-0) never share a cgroup subtree.
        return f"/{CGROUP_PARENT}/{self.name}-{self.address.index}"

    def start(self, api: client.ApiClient, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        config = self._write_files(api)
        self._launch(config)
        try:
            poll_until(
                lambda: self.socket.exists() or self._check_init(),
                timeout=max(0.0, deadline - time.monotonic()),
                what="the real node's containerd socket",
            )
            pause = self.data_dir / "pause.tar"
            write_image_archive(pause, PAUSE_IMAGE, {"pause": self.binaries.pause}, ["/pause"])
            try:
                self.import_images([pause])
            except ComponentError:
                # A kubelet that exits at once makes the init stop containerd mid-import: say
                # why the node stopped, not that the import lost its connection.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._unshare.wait(timeout=10)
                self._check_init()
                raise
            self._wait_ready(api, deadline)
        except BaseException:
            self.stop()
            raise

    def _write_files(self, api: client.ApiClient) -> Path:
        folder = self.data_dir
        sweep_stale_cgroups()
        # containerd's root (images, snapshots): the node's own, gone when it stops. Keeping it
        # between runs saved the imports (minutes) but piled up old layers on a shared disk.
        store = self.store
        # Inherited by the init: it dials the API server from the host's network namespace.
        self._host_netns = os.open("/proc/self/ns/net", os.O_RDONLY)
        for sub in ("logs", "pod-logs", "cni-net.d", "cni-ipam", "kubelet", "sysctl"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        node_pki(self.pki, folder / "pki", self.name, self.address)
        for cert in ("kubelet-serving.crt", "kubelet-serving.key"):
            os.replace(folder / "pki" / cert, folder / cert)
        server = f"https://127.0.0.1:{self.apiserver_port}"
        for user in ("kubelet", "kube-proxy", "coredns"):
            write_kubeconfig(
                folder / f"{user}.kubeconfig",
                server,
                self.pki.ca_cert,
                folder / "pki" / f"{user}.crt",
                folder / "pki" / f"{user}.key",
                user=user,
            )
        (folder / "resolv.conf").write_text("")
        (folder / "guard.nft").write_text(guard_rules(self.address))
        (folder / "cni-net.d" / "10-quantfleet.conflist").write_text(
            json.dumps(cni_config(folder / "cni-ipam"), indent=2)
        )
        (folder / "containerd.toml").write_text(
            containerd_config(store, self.binaries, folder / "cni-net.d")
        )
        (folder / "kubelet.yaml").write_text(
            yaml.safe_dump(
                kubelet_config(folder, self.address, self.pki, self.cgroup_root)
                | self.kubelet_overrides
            )
        )
        (folder / "kube-proxy.yaml").write_text(
            yaml.safe_dump(
                kube_proxy_config(folder / "kube-proxy.kubeconfig", self.name, self.address)
            )
        )
        (folder / "Corefile").write_text(corefile(folder / "coredns.kubeconfig"))
        _apply_objects(api, COREDNS_RBAC)
        mounts = []
        for key, value in KUBELET_SYSCTLS.items():
            fake = folder / "sysctl" / key.replace("/", ".")
            fake.write_text(value + "\n")
            mounts.append([str(fake), f"/proc/sys/{key}"])
        kubebin = str(self.binaries.kubebin)
        config = {
            "logDir": str(folder / "logs"),
            "binDir": str(self.binaries.bin_dir),
            "tmpfsDirs": ["/run", "/var/lib", "/var/log"],
            "makeDirs": [
                "/var/log/containers",
                "/var/lib/cni",
                "/run/netns",
                str(KUBELET_ROOT),
                str(POD_LOGS),
            ],
            "bindFiles": mounts,
            "bindDirs": [
                [str(folder / "kubelet"), str(KUBELET_ROOT)],
                [str(folder / "pod-logs"), str(POD_LOGS)],
            ],
            "vethNode": self.address.veth_node,
            "nodeIP": self.address.node_ip,
            "guardRules": str(folder / "guard.nft"),
            "cgroupRoot": self.cgroup_root,
            "removeOnExit": [str(store)],
            "apiserverPort": self.apiserver_port,
            "hostNetnsFd": self._host_netns,
            "components": [
                {
                    "name": "containerd",
                    "argv": [
                        str(self.binaries.containerd),
                        f"--config={folder / 'containerd.toml'}",
                    ],
                    "waitForPath": str(CONTAINERD_SOCKET),
                },
                {
                    "name": "kubelet",
                    "argv": [
                        kubebin,
                        "kubelet",
                        f"--config={folder / 'kubelet.yaml'}",
                        f"--kubeconfig={folder / 'kubelet.kubeconfig'}",
                        f"--hostname-override={self.name}",
                        f"--node-ip={self.address.node_ip}",
                    ],
                },
                {
                    "name": "kube-proxy",
                    "argv": [kubebin, "kube-proxy", f"--config={folder / 'kube-proxy.yaml'}"],
                },
                {
                    "name": "coredns",
                    "argv": [str(self.binaries.coredns), "-conf", str(folder / "Corefile")],
                },
            ],
        }
        path = folder / "nodeinit.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def _launch(self, config: Path) -> None:
        host_netns = self._host_netns
        log = (self.data_dir / "logs" / "nodeinit.log").open("ab")
        try:
            process = subprocess.Popen(
                [
                    "unshare",
                    "--fork",
                    "--pid",
                    "--mount-proc",
                    "--net",
                    "--mount",
                    "--propagation=private",
                    # If unshare dies (its parent's death below, or a kill), the init is told.
                    "--kill-child=SIGTERM",
                    "--",
                    sys.executable,
                    "-m",
                    "quantfleet.testbed.nodeinit",
                    str(config),
                ],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(host_netns,),
                start_new_session=True,
                # SIGKILL: unshare ignores SIGTERM while it waits for its child; its death then
                # tells the init (--kill-child=SIGTERM), which stops the node cleanly.
                preexec_fn=die_with_parent_preexec if self.die_with_parent else None,
            )
        finally:
            os.close(host_netns)
            log.close()
        self.records.append(
            ProcessRecord.of("node-unshare", process.pid, self.data_dir / "logs" / "nodeinit.log")
        )
        self._unshare = process
        self._init_pid = init_pid = poll_until(
            lambda: _only_child(process.pid), timeout=10, what="the node's init to start"
        )
        # Newest first on stop: the init, which stops the node and removes its cgroups.
        self.records.append(
            ProcessRecord.of("node-init", init_pid, self.data_dir / "logs" / "nodeinit.log")
        )
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                self.address.veth_host,
                "type",
                "veth",
                "peer",
                "name",
                self.address.veth_node,
                "netns",
                str(init_pid),
            ],
            check=True,
        )
        subprocess.run(
            ["ip", "addr", "add", f"{self.address.host_ip}/30", "dev", self.address.veth_host],
            check=True,
        )
        subprocess.run(["ip", "link", "set", self.address.veth_host, "up"], check=True)
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.close()

    def _wait_ready(self, api: client.ApiClient, deadline: float) -> None:
        core = client.CoreV1Api(api)

        def ready() -> bool:
            self._check_init()
            node = core.read_node(self.name)
            return any(
                c.type == "Ready" and c.status == "True" for c in node.status.conditions or []
            )

        try:
            poll_until(
                ready,
                timeout=max(0.0, deadline - time.monotonic()),
                what=f"real node {self.name} to turn Ready",
                retry_on=(client.ApiException,),
            )
        except TimeoutError as error:
            raise ComponentError(f"{error}; {self.last_error()}") from None
        labels = {
            **nfd_labels(Path("/proc/cpuinfo").read_text()),
            LABEL_CPU_SERVING: "true",
            REAL_NODE_LABEL: "true",
        }
        core.patch_node(self.name, {"metadata": {"labels": labels}})

    def _check_init(self) -> bool:
        """Raise ComponentError with the last error logged when the node's init has exited."""
        if self._unshare.poll() is not None:
            raise ComponentError(
                f"The real node's init exited ({self._unshare.returncode}): {self.last_error()}"
            )
        return False

    def last_error(self) -> str:
        """The kubelet's (or, failing that, the init's) last error line."""
        for name in ("kubelet", "containerd", "nodeinit"):
            log = self.data_dir / "logs" / f"{name}.log"
            errors = [
                line for line in log_tail(log).splitlines() if re.match(r"^[EF]\d{4}|error", line)
            ]
            if errors:
                return f"last error of {name} ({log}): {errors[-1]}"
        return f"no error logged (logs in {self.data_dir / 'logs'})"

    def import_images(self, archives: list[Path]) -> None:
        """Import OCI archives into the node's containerd (see `import_images`)."""
        import_images(self.binaries, self.socket, archives)

    @property
    def store(self) -> Path:
        return self.data_dir / "containerd"

    def stop(self) -> list[str]:
        """Stop the node (its init first) and remove its image store (gigabytes)."""
        stopped = stop(self.records, timeout=30.0)
        shutil.rmtree(self.store, ignore_errors=True)
        return stopped


def node_socket(init_pid: int) -> Path:
    """containerd's socket as the host reaches it: through the init's mount namespace."""
    return Path(f"/proc/{init_pid}/root{CONTAINERD_SOCKET}")


def import_images(binaries: NodeBinaries, socket: Path, archives: list[Path]) -> None:
    """Import OCI archives into a node's containerd (namespace k8s.io, where the kubelet finds
    them), unpacked for its snapshotter. The layers' blobs are dropped once unpacked
    (`--local --discard-unpacked-layers`): the archives hold them already, and the jobs and vLLM
    images would otherwise take their few GB twice on disk."""
    ctr = [str(binaries.ctr), "--address", str(socket), "-n", "k8s.io", "images", "import"]
    for archive in archives:
        done = subprocess.run(
            [*ctr, "--local", "--discard-unpacked-layers", str(archive)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ComponentError(f"ctr images import {archive} failed: {done.stderr.strip()}")


def prune_images(binaries: NodeBinaries, socket: Path, keep: set[str]) -> list[str]:
    """Remove the project's images other than `keep` from a node's kept image store (older
    builds pile up there otherwise: a few GB each); containerd collects their layers."""
    ctr = [str(binaries.ctr), "--address", str(socket), "-n", "k8s.io", "images"]
    listed = subprocess.run([*ctr, "ls", "-q"], capture_output=True, text=True, check=True)
    stale = [
        ref for ref in listed.stdout.split() if ref.startswith(PROJECT_IMAGES) and ref not in keep
    ]
    if stale:
        subprocess.run([*ctr, "rm", "--sync", *stale], capture_output=True, check=True)
    return stale


def _apply_objects(api: client.ApiClient, objects: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    for item in objects:
        create = (
            rbac.create_cluster_role
            if item["kind"] == "ClusterRole"
            else rbac.create_cluster_role_binding
        )
        with contextlib.suppress(client.ApiException):
            create(item)


def _only_child(pid: int) -> int | None:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else None


def sweep_stale_cgroups() -> None:
    """Remove the cgroups of real nodes that died without cleaning up (their init was killed):
    subtrees under the quantfleet parent with no process left in them."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}"):
        for node in (p for p in parent.iterdir() if p.is_dir()):
            busy = any(procs.read_text().strip() for procs in node.rglob("cgroup.procs"))
            if not busy:
                remove_cgroups([node])
