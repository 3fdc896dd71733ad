"""The real Kueue controller beside a local control plane. tools/kubebin/build.sh builds it from
its Go module (pinned there) into bin/kueue and copies its CRDs into bin/kueue-crds/.

It runs as a process on this machine with the admin kubeconfig, its webhooks unregistered
(quantfleet creates its Jobs suspended, so none is needed), without leader election or its
own certificate management: its webhook server gets a certificate from the cluster's CA. Its
metrics server reads a certificate from a fixed path, /etc/kueue/metrics/certs; the process
sees that path through a read-only overlay of /etc in a mount namespace of its own, so nothing
on the host changes."""

from __future__ import annotations

import shlex
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from quantfleet.testbed.binaries import BUILD_COMMAND, MissingBinaryError
from quantfleet.testbed.cluster import ClusterState
from quantfleet.testbed.pki import PkiPaths, issue_cert
from quantfleet.testbed.processes import Component, ComponentError, free_port
from quantfleet.testbed.wait import poll_until

GROUP_VERSION = "kueue.x-k8s.io/v1beta2"
NAMESPACE = "kueue-system"
# Its on-demand visibility API would need an APIService and certificates of its own.
FEATURE_GATES = "VisibilityOnDemand=false"


def kueue_binary(bin_dir: Path) -> Path:
    """bin/kueue, or an error that says how to build it."""
    path = bin_dir / "kueue"
    if not path.is_file():
        raise MissingBinaryError(f"{path} not found: build it with `{BUILD_COMMAND}`")
    return path


def install_kueue_crds(kubeconfig: Path, bin_dir: Path, timeout: float = 60.0) -> None:
    """Kueue's CRDs, Established, as its install guide applies them (server-side: the Workload
    CRD alone is 1.4 MB, past client-side apply's annotation limit)."""
    kubectl = [str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}"]
    crds = str(bin_dir / "kueue-crds")
    for command in (
        ["apply", "--server-side", "-f", crds],
        ["wait", "--for=condition=Established", f"--timeout={timeout:g}s", "-f", crds],
    ):
        done = subprocess.run([*kubectl, *command], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ComponentError(f"kubectl {' '.join(command)} failed: {done.stderr.strip()}")


def start_kueue(
    cluster: ClusterState, api: client.ApiClient, bin_dir: Path, folder: Path, timeout: float = 60.0
) -> Component:
    """Install Kueue's CRDs and start its controller for `cluster`; returns once it is ready.
    The caller stops it (`processes.stop([component.record])`)."""
    binary = kueue_binary(bin_dir)
    install_kueue_crds(cluster.kubeconfig, bin_dir)
    core = client.CoreV1Api(api)
    if not any(ns.metadata.name == NAMESPACE for ns in core.list_namespace().items):
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    pki = PkiPaths.under(cluster.data_dir / "pki")
    webhook = folder / "webhook"
    overlay = folder / "etc"
    for certs in (webhook, overlay / "kueue" / "metrics" / "certs"):
        certs.mkdir(parents=True, exist_ok=True)
        issue_cert(pki, certs / "tls", "kueue", server_names=("127.0.0.1",))
    health = free_port()
    config: dict[str, Any] = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
        "metrics": {"bindAddress": f"127.0.0.1:{free_port()}"},
        "webhook": {"host": "127.0.0.1", "port": free_port(), "certDir": str(webhook)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
    }
    config_file = folder / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    run = [
        str(binary),
        f"--config={config_file}",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--feature-gates={FEATURE_GATES}",
    ]
    mount = f"mount -t overlay overlay -o lowerdir={shlex.quote(str(overlay))}:/etc /etc"
    script = f"{mount} && exec {shlex.join(run)}"
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    kueue = Component("kueue", argv, folder / "kueue.log", die_with_parent=True)

    def ready() -> bool:
        kueue.check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    poll_until(ready, timeout=timeout, what=f"Kueue to be ready (log: {kueue.log})")
    return kueue
