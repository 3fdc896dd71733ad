"""Run the operator locally as it runs in a cluster: install what `kubectl apply -k manifests/`
would (CRDs, namespace, ServiceAccount, RBAC), mint the operator's own token, and run the
operator as a subprocess holding only that token's permissions. Used by `quantfleet demo` and
the e2e tests; works from a checkout (it reads crds/ and manifests/)."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from quantfleet.kube.apply import apply, crd_established
from quantfleet.testbed.fleet import SIMULATED_LABEL
from quantfleet.testbed.processes import free_port
from quantfleet.testbed.wait import poll_until

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"
MANIFESTS = REPO / "manifests"
CHART = REPO / "charts" / "quantfleet"
# What the operator's identity is made of, in the order kustomize would apply it.
RBAC_MANIFESTS = ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml")
OPERATOR_NAMESPACE = "quantfleet-system"
OPERATOR_SERVICE_ACCOUNT = "quantfleet-operator"
# Long enough for any test session; the API server issues it, bound to the ServiceAccount.
TOKEN_SECONDS = 4 * 3600
LOG_TAIL_CHARS = 6000
# How an RBAC denial shows in the operator's log: the API server's 403 message names the user
# ("... is forbidden: User "system:serviceaccount:NS:NAME" cannot list resource ..."), and Kopf
# warns when it falls back for lack of permissions. Other 403s (e.g. creating an event in a
# namespace being deleted) are not about RBAC.
PERMISSION_ERRORS = (
    f'User "system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}" cannot',
    "Not enough permissions",
)

# Builds the operator's command line from (metrics port, liveness port).
Argv = Callable[[int, int], list[str]]


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The Kubernetes objects in a YAML file; kustomize files and empty documents left out."""
    return [
        doc
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict)
        and "kind" in doc
        and not str(doc.get("apiVersion", "")).startswith("kustomize.config.k8s.io/")
    ]


def install_crds(api: client.ApiClient, folder: Path = CRD_DIR, timeout: float = 60.0) -> list[str]:
    """Apply every CRD in `folder` (crds/) and wait until each is Established; their names."""
    names = []
    for path in sorted(folder.glob("*.yaml")):
        for crd in load_documents(path):
            apply(api, crd, None)
            names.append(crd["metadata"]["name"])
    for name in names:
        poll_until(
            partial(crd_established, api, name),
            timeout=timeout,
            what=f"CRD {name} to become Established",
        )
    return names


class InstallError(RuntimeError):
    """The operator could not be installed; the message says why in one line (e.g. the other
    install method holds it)."""


# Helm marks every object of a release with these (and will not take over one without them).
HELM_RELEASE_NAME = "meta.helm.sh/release-name"
HELM_RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"


def helm_release(api: client.ApiClient) -> tuple[str, str] | None:
    """(release, namespace) of the Helm release that installed the operator's identity (its
    ServiceAccount or its ClusterRole), None when Helm did not install it."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    reads = (
        partial(core.read_namespaced_service_account, OPERATOR_SERVICE_ACCOUNT, OPERATOR_NAMESPACE),
        partial(rbac.read_cluster_role, OPERATOR_SERVICE_ACCOUNT),
    )
    for read in reads:
        try:
            annotations = read().metadata.annotations or {}
        except client.ApiException as error:
            if error.status != 404:
                raise
            continue
        if release := annotations.get(HELM_RELEASE_NAME):
            return release, annotations.get(HELM_RELEASE_NAMESPACE, OPERATOR_NAMESPACE)
    return None


def install_rbac(api: client.ApiClient) -> list[dict[str, Any]]:
    """Apply the operator's namespace, ServiceAccount and RBAC exactly as manifests/ has them
    (the kustomize install); refused where a Helm release holds them (one install method per
    cluster: the chart's own check refuses the other way round, charts/quantfleet/_helpers.tpl)."""
    if release := helm_release(api):
        name, namespace = release
        raise InstallError(
            f"The operator is installed in this cluster by Helm (release {name} in {namespace}); "
            f"remove it first with `helm uninstall {name} --namespace {namespace}` (the CRDs and "
            "the models stay), or keep using Helm"
        )
    documents = [doc for name in RBAC_MANIFESTS for doc in load_documents(MANIFESTS / name)]
    for document in documents:
        apply(api, document, document["metadata"].get("namespace"))
    return documents


def mint_token(api: client.ApiClient, seconds: int = TOKEN_SECONDS) -> str:
    """A token for the operator's ServiceAccount from the TokenRequest API."""
    request = client.CoreV1Api(api).create_namespaced_service_account_token(
        OPERATOR_SERVICE_ACCOUNT,
        OPERATOR_NAMESPACE,
        {"spec": {"expirationSeconds": seconds}},
    )
    token: str = request.status.token
    return token


def write_token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig for the same cluster (server and CA from the admin one) that authenticates
    with `token` only: no client certificate, so nothing of the admin's identity is kept."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    user = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "quantfleet", "cluster": cluster["cluster"]}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "quantfleet", "user": user}}],
        "current-context": "operator",
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    return path


def quantfleet_operator_argv(*extra: str) -> Argv:
    """`quantfleet operator --all-namespaces` on the given ports, run by this interpreter."""

    def argv(metrics_port: int, liveness_port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "quantfleet.cli.main",
            "operator",
            "--all-namespaces",
            f"--metrics-port={metrics_port}",
            f"--liveness-port={liveness_port}",
            *extra,
        ]

    return argv


class OperatorError(RuntimeError):
    """The operator process did not come up or died."""


class OperatorProcess:
    """The operator as a subprocess with `kubeconfig` as its only credentials.

    `start()` waits until the liveness endpoint answers; `stop()` sends SIGTERM (graceful, as
    the kubelet does); `kill()` sends SIGKILL (a crash mid-flow); `restart()` is stop + start.
    Each start picks fresh ports and appends to the same log file, marked per start."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        argv: Argv | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.argv = argv or quantfleet_operator_argv()
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.liveness_port = 0
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        if self.running:
            raise OperatorError(f"The operator is already running (pid {self.pid})")
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.starts += 1
        argv = self.argv(self.metrics_port, self.liveness_port)
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts}: {' '.join(argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        # A test run that ends without fixture teardown must not leave an operator behind
        # reconciling the next run's objects.
        atexit.register(self.kill)
        try:
            self.wait_live(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_live(self, timeout: float = 60.0) -> None:
        """Until /healthz answers 200; fails at once, with the log, if the process exits."""

        def live() -> bool:
            if not self.running:
                raise OperatorError(f"The operator exited early:\n{self.log_tail()}")
            url = f"http://127.0.0.1:{self.liveness_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)

        try:
            poll_until(
                live,
                timeout=timeout,
                what=f"the operator's liveness endpoint on port {self.liveness_port}",
                retry_on=(OSError, urllib.error.URLError),
            )
        except TimeoutError as error:
            raise OperatorError(f"{error}\n{self.log_tail()}") from error

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL past `timeout`; the exit status, None if it was not running."""
        atexit.unregister(self.kill)
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode

    def kill(self) -> int | None:
        """SIGKILL: no cleanup, no finalizer removal, no status written; a crash."""
        atexit.unregister(self.kill)
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(10)

    def restart(self, timeout: float = 60.0) -> OperatorProcess:
        self.stop()
        return self.start(timeout)

    def metrics(self) -> str:
        """The Prometheus text exposition from the metrics port."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def logs(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log_path.read_text(errors="replace")
        return ""

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.logs()[-chars:]

    def permission_errors(self, since: int = 0) -> list[str]:
        """Log lines after character `since` that report a denied API call."""
        lines = self.logs()[since:].splitlines()
        return [line for line in lines if any(error in line for error in PERMISSION_ERRORS)]


def as_operator_argv(argv: Sequence[str]) -> Argv:
    """An operator command given in full (e.g. `kopf run ...`), placed on the given ports."""

    def build(metrics_port: int, liveness_port: int) -> list[str]:
        return [
            part.format(metrics_port=metrics_port, liveness_port=liveness_port) for part in argv
        ]

    return build


def simulated_volume(api: client.ApiClient, namespace: str, claim: str, size: str = "1Ti") -> str:
    """A PersistentVolumeClaim `claim`, bound to a PersistentVolume made for it.

    Job pods mount their model storage by claim (pvc://CLAIM/PATH); the scheduler places a pod
    only once its claim is bound. The testbed has no storage provisioner and kwok mounts
    nothing, so the volume is a pre-bound hostPath that no container ever sees. Returns the
    PersistentVolume's name (cluster-scoped: the caller deletes it)."""
    core = client.CoreV1Api(api)
    volume = f"sim-{namespace}-{claim}"[:63]
    core.create_persistent_volume(
        {
            "metadata": {"name": volume, "labels": {SIMULATED_LABEL: "true"}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": f"/var/lib/quantfleet-simulated/{volume}"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": size}},
            },
        },
    )

    def bound() -> bool:
        pvc = core.read_namespaced_persistent_volume_claim(claim, namespace)
        return bool(pvc.status.phase == "Bound")

    poll_until(bound, timeout=60, what=f"claim {namespace}/{claim} to be bound")
    return volume
