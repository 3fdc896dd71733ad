"""Chaos on the local control plane (SIMULATED GPU fleet and worker, the real API server): the
operator SIGKILLed at random points across the pipelines of 20 models, the API server down 60 s
with etcd restarted, a watch gone silent, Job pods deleted mid-run, and vLLM Deployments edited
and deleted by hand. Each scenario must converge (every model Ready for its generation, what was
changed by hand put back) with no duplicate child (one Job per step and one Deployment per model
ever created) and no regressed status (a step once True for a generation never falls back, a
status once written never vanishes). Deterministic: the same --seed kills at the same points.

    uv run python benchmarks/chaos.py [--seed 14] [--models 20] [--kills 200]

Prints one row per scenario: runs, converged, worst time to converge, duplicates, regressions;
exits 1 when any scenario falls short.
"""

import argparse
import contextlib
import random
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

from quantfleet.api.common import GROUP, QUANTIZED_MODELS, VERSION
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MODEL
from quantfleet.builders.serving import serving_name
from quantfleet.cli.localrun import (
    OperatorProcess,
    install_crds,
    install_rbac,
    mint_token,
    write_token_kubeconfig,
)
from quantfleet.kube.apply import apply
from quantfleet.testbed.cluster import Cluster
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.wait import poll_until
from quantfleet.testbed.worker import SimulatedResults, SimulatedWorker

NAMESPACE = "chaos"
SCHEMES = ("FP8_DYNAMIC", "W8A8", "W4A16")
CONVERGE_TIMEOUT = 600.0
# The pipeline's steps: once True for a generation they must stay so. Ready is what is observed
# of serving and may drop while a hand-deleted Deployment comes back.
STEPS = {"Planned", "Quantized", "Evaluated", "Promoted"}
RESULTS = SimulatedResults()
Json = dict[str, Any]


@dataclass
class Row:
    scenario: str
    runs: int = 0
    converged: int = 0
    expected: int = 0
    worst_seconds: float = 0.0
    duplicates: int = 0
    regressions: int = 0

    @property
    def ok(self) -> bool:
        return self.converged == self.expected and not self.duplicates and not self.regressions


@dataclass
class Recorder:
    """Watches the namespace's Jobs, Deployments and QuantizedModels from a thread (re-listing
    after every break, an API outage included): every child name ever created, and every time a
    model's condition fell back from True or its status vanished."""

    api: client.ApiClient
    children: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    regressions: list[str] = field(default_factory=list)
    _true: dict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    _had_status: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "Recorder":
        batch, apps = client.BatchV1Api(self.api), client.AppsV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        sources: list[tuple[str, Callable[..., Any]]] = [
            ("Job", batch.list_namespaced_job),
            ("Deployment", apps.list_namespaced_deployment),
            ("QuantizedModel", self._list_models(custom)),
        ]
        for kind, lister in sources:
            threading.Thread(target=self._follow, args=(kind, lister), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def duplicates(self, models: set[str]) -> list[str]:
        """Steps of `models` for which more than one Job (or Deployment) was ever created."""
        return [
            f"{kind} {model}/{component}: {sorted(names)}"
            for (kind, model, component), names in self.children.items()
            if model in models and len(names) > 1
        ]

    @staticmethod
    def _list_models(custom: client.CustomObjectsApi) -> Callable[..., Any]:
        def lister(namespace: str, **options: Any) -> Any:
            return custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, QUANTIZED_MODELS, **options
            )

        return lister

    def _follow(self, kind: str, lister: Callable[..., Any]) -> None:
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(lister, NAMESPACE, timeout_seconds=60):
                    self._see(kind, event["object"], event["type"])
                    if self._stop.is_set():
                        return
            except Exception:  # an outage or a closed watch: list and watch again
                time.sleep(0.5)

    def _see(self, kind: str, obj: Any, event: str) -> None:
        if kind != "QuantizedModel":
            labels = obj.metadata.labels or {}
            if LABEL_MODEL in labels:
                key = (kind, labels[LABEL_MODEL], labels.get(LABEL_COMPONENT, ""))
                self.children[key].add(obj.metadata.name)
            return
        name, status = obj["metadata"]["name"], obj.get("status") or {}
        if event == "DELETED":
            return
        if not status.get("conditions"):
            if name in self._had_status:
                self.regressions.append(f"{name}: its status vanished")
            return
        self._had_status.add(name)
        generation = obj["metadata"].get("generation", 0)
        true_now = {
            c["type"] for c in status["conditions"] if c["status"] == "True" and c["type"] in STEPS
        }
        before = self._true[(name, generation)]
        if status.get("observedGeneration") == generation:
            for fell in sorted(before - true_now):
                self.regressions.append(f"{name}: {fell} fell back from True")
            before |= true_now


class FreezingProxy:
    """A TCP proxy between the operator and the API server. `freeze()` makes every connection
    open at that moment go silent without closing: what the server sends is dropped (a watch
    that stops delivering, as behind some load balancers); a connection on which the client
    sends a new request is closed instead, so the client's request pool reconnects. New
    connections pass."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._frozen: set[int] = set()
        self._open: dict[int, tuple[socket.socket, socket.socket]] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> int:
        with self._lock:
            self._frozen = set(self._open)
            return len(self._frozen)

    def thaw(self) -> None:
        """Close the silenced connections (what they dropped is lost): their clients reconnect."""
        with self._lock:
            silenced = [self._open[key] for key in self._frozen if key in self._open]
            self._frozen.clear()
        for pair in silenced:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            downstream, _ = self.server.accept()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:  # the API server is down: so is this connection
                downstream.close()
                continue
            key = downstream.fileno()
            with self._lock:
                self._open[key] = (downstream, upstream)
            for source, sink, from_client in (
                (downstream, upstream, True),
                (upstream, downstream, False),
            ):
                pump = threading.Thread(target=self._pump, args=(key, source, sink, from_client))
                pump.daemon = True
                pump.start()

    def _pump(
        self, key: int, source: socket.socket, sink: socket.socket, from_client: bool
    ) -> None:
        try:
            while data := source.recv(65536):
                frozen = key in self._frozen
                if frozen and from_client:
                    break  # a request on a silent connection: close it, the client reconnects
                if not frozen:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.pop(key, None)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Chaos:
    """The cluster, the operator (through the proxy, as its ServiceAccount), the worker, the
    recorder, and the models each scenario creates."""

    def __init__(self, seed: int, models: int) -> None:
        self.random = random.Random(seed)
        self.models = models
        self.cluster = Cluster(
            load_fleet(),
            data_dir=Path(tempfile.mkdtemp(prefix="qf-chaos-")),
            die_with_parent=True,
        )

    @contextmanager
    def running(self) -> Iterator["Chaos"]:
        state = self.cluster.start()
        try:
            self.api = config.new_client_from_config(str(state.kubeconfig))
            install_crds(self.api)
            install_rbac(self.api)
            apply(
                self.api,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                None,
            )
            self.proxy = FreezingProxy(self.cluster.ports.apiserver)
            kubeconfig = write_token_kubeconfig(
                state.kubeconfig, mint_token(self.api), state.data_dir / "operator.kubeconfig"
            )
            document = yaml.safe_load(kubeconfig.read_text())
            document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{self.proxy.port}"
            kubeconfig.write_text(yaml.safe_dump(document))
            self.operator = OperatorProcess(kubeconfig, state.data_dir / "operator.log").start()
            self.worker = SimulatedWorker(self.api, RESULTS).start()
            self.recorder = Recorder(self.api).start()
            yield self
        finally:
            for stop in ("recorder", "worker", "operator"):
                if hasattr(self, stop):
                    getattr(self, stop).stop()
            self.cluster.stop()

    def create(self, prefix: str) -> list[str]:
        names = [f"{prefix}-{i:02d}" for i in range(self.models)]
        custom = client.CustomObjectsApi(self.api)
        for index, name in enumerate(names):
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "QuantizedModel",
                "metadata": {"name": name},
                "spec": {
                    "source": {"uri": f"hf://org/model-{index}", "parametersBillions": 7},
                    "quantization": {"scheme": SCHEMES[index % len(SCHEMES)]},
                    "output": {"uri": f"s3://chaos/{name}"},
                },
            }
            custom.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, QUANTIZED_MODELS, body
            )
        return names

    def retire(self, names: list[str]) -> None:
        """Delete `names` and wait until their pods are gone: the simulated fleet holds about 60
        GPUs, so every scenario after the first must start from the same free fleet."""
        custom, core = client.CustomObjectsApi(self.api), client.CoreV1Api(self.api)
        for name in names:
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, QUANTIZED_MODELS, name
            )

        def gone() -> bool:
            pods = core.list_namespaced_pod(NAMESPACE).items
            return not any((p.metadata.labels or {}).get(LABEL_MODEL) in names for p in pods)

        poll_until(gone, timeout=CONVERGE_TIMEOUT, what=f"the pods of {names[0]}… to go")

    def converged(self, names: list[str], check: Callable[[Json], bool] = lambda _: True) -> int:
        """How many of `names` are Ready for their generation (and pass `check`)."""
        custom = client.CustomObjectsApi(self.api)
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, QUANTIZED_MODELS)
        ready = 0
        for model in listed["items"]:
            status = model.get("status") or {}
            if model["metadata"]["name"] not in names:
                continue
            if status.get("observedGeneration") != model["metadata"].get("generation"):
                continue
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            ready += conditions.get("Ready") == "True" and check(model)
        return ready

    def wait_converged(
        self, names: list[str], since: float, check: Callable[[Json], bool] = lambda _: True
    ) -> tuple[int, float]:
        """(models converged, seconds from `since`) once all have, or at the timeout."""
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        count = 0
        while time.monotonic() < deadline:
            try:
                count = self.converged(names, check)
            except client.ApiException:
                count = 0
            if count == len(names):
                break
            time.sleep(0.5)
        return count, time.monotonic() - since

    def row(self, scenario: str, names: list[str], runs: int, count: int, seconds: float) -> Row:
        regressions = [r for r in self.recorder.regressions if r.split(":")[0] in names]
        duplicates = self.recorder.duplicates(set(names))
        for line in duplicates + regressions:
            print(f"  {scenario}: {line}", file=sys.stderr)
        return Row(scenario, runs, count, len(names), seconds, len(duplicates), len(regressions))

    # --- scenarios ---
    def operator_kills(self, kills: int) -> Row:
        """Rounds of fresh models, each with SIGKILLs at random moments of their pipelines."""
        per_round = self.models
        rounds = max(1, -(-kills // per_round))
        row = Row("operator SIGKILL", expected=0)
        for number in range(rounds):
            names = self.create(f"kill{number}")
            for _ in range(min(per_round, kills - row.runs)):
                time.sleep(self.random.uniform(0.2, 3.0))
                self.operator.kill()
                self.operator.start()
                row.runs += 1
            count, seconds = self.wait_converged(names, time.monotonic())
            done = self.row("", names, 0, count, seconds)
            row.converged += count
            row.expected += len(names)
            row.worst_seconds = max(row.worst_seconds, seconds)
            row.duplicates += done.duplicates
            row.regressions += done.regressions
            if number:  # round 0 stays: the hand-edit and silent-watch scenarios use it
                self.retire(names)
        return row

    def api_outage(self, down_seconds: float) -> Row:
        names = self.create("outage")
        time.sleep(self.random.uniform(1.0, 5.0))
        recovered = self.cluster.outage(down_seconds)
        count, seconds = self.wait_converged(names, recovered)
        row = self.row(
            f"API server down {down_seconds:.0f}s, etcd restarted", names, 1, count, seconds
        )
        self.retire(names)
        return row

    def silent_watch(self, names: list[str]) -> Row:
        """Freeze the operator's connections, then scale every model to 2 replicas: the watch
        sees nothing; the resync must still bring each Deployment to 2 ready replicas."""
        frozen = self.proxy.freeze()
        custom = client.CustomObjectsApi(self.api)
        started = time.monotonic()
        for name in names:
            patch = {"spec": {"serving": {"replicas": 2}}}
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, QUANTIZED_MODELS, name, patch
            )
        count, seconds = self.wait_converged(names, started, self._replicas(2))
        self.proxy.thaw()
        return self.row(f"silent watch ({frozen} connections)", names, 1, count, seconds)

    def job_pods_deleted(self) -> Row:
        """Hold every quantize pod Running, delete each once, then let the replacements finish."""
        held: set[str] = set()

        def hold_first_pods(pod: Json) -> Any:
            labels = pod["metadata"].get("labels") or {}
            if labels.get(LABEL_COMPONENT) == "quantize" and labels[LABEL_MODEL] not in held:
                return None
            return RESULTS(pod)

        self.worker.producer = hold_first_pods
        names = self.create("podkill")
        core = client.CoreV1Api(self.api)
        selector = f"{LABEL_COMPONENT}=quantize"

        def running_pods() -> list[Any] | None:
            pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
            mine = [p for p in pods if p.metadata.labels[LABEL_MODEL] in names]
            running = [p for p in mine if p.status.phase == "Running"]
            return running if len(running) == len(names) else None

        for pod in poll_until(running_pods, timeout=CONVERGE_TIMEOUT, what="quantize pods running"):
            core.delete_namespaced_pod(pod.metadata.name, NAMESPACE)
            held.add(pod.metadata.labels[LABEL_MODEL])
        started = time.monotonic()
        count, seconds = self.wait_converged(names, started)
        self.worker.producer = RESULTS
        row = self.row("Job pod deleted mid-run", names, len(names), count, seconds)
        self.retire(names)
        return row

    def deployments_edited(self, names: list[str]) -> Row:
        """Scale each vLLM Deployment to 5 and change its image by hand: both are put back."""
        apps = client.AppsV1Api(self.api)
        started = time.monotonic()
        for name in names:
            patch = {
                "spec": {
                    "replicas": 5,
                    "template": {
                        "spec": {"containers": [{"name": "vllm", "image": "example.com/other:1"}]}
                    },
                }
            }
            apps.patch_namespaced_deployment(serving_name(name), NAMESPACE, patch)
        count, seconds = self.wait_converged(names, started, self._restored(apps))
        return self.row("Deployment edited by hand", names, len(names), count, seconds)

    def deployments_deleted(self, names: list[str]) -> Row:
        apps = client.AppsV1Api(self.api)
        started = time.monotonic()
        for name in names:
            apps.delete_namespaced_deployment(serving_name(name), NAMESPACE)
        count, seconds = self.wait_converged(names, started, self._restored(apps))
        return self.row("Deployment deleted by hand", names, len(names), count, seconds)

    def _replicas(self, replicas: int) -> Callable[[Json], bool]:
        apps = client.AppsV1Api(self.api)

        def check(model: Json) -> bool:
            deployment = apps.read_namespaced_deployment(
                serving_name(model["metadata"]["name"]), NAMESPACE
            )
            return bool(deployment.status.ready_replicas == replicas == deployment.spec.replicas)

        return check

    @staticmethod
    def _restored(apps: client.AppsV1Api) -> Callable[[Json], bool]:
        def check(model: Json) -> bool:
            name = serving_name(model["metadata"]["name"])
            try:
                deployment = apps.read_namespaced_deployment(name, NAMESPACE)
            except client.ApiException:
                return False
            image = deployment.spec.template.spec.containers[0].image
            wanted = model["spec"].get("serving", {}).get("replicas", 1)
            return bool(
                deployment.spec.replicas == wanted
                and image != "example.com/other:1"
                and deployment.status.ready_replicas == wanted
            )

        return check


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    args = parser.parse_args()
    chaos = Chaos(args.seed, args.models)
    rows: list[Row] = []
    with chaos.running():
        rows.append(chaos.operator_kills(args.kills))
        settled = [f"kill0-{i:02d}" for i in range(args.models)]
        rows.append(chaos.deployments_edited(settled))
        rows.append(chaos.deployments_deleted(settled))
        rows.append(chaos.job_pods_deleted())
        rows.append(chaos.api_outage(args.outage_seconds))
        rows.append(chaos.silent_watch(settled))
    print(f"seed {args.seed}, {args.models} models per scenario (SIMULATED GPU fleet and worker)")
    header = ("runs", 5), ("converged", 10), ("worst", 8), ("duplicates", 10), ("regressions", 11)
    print(f"{'scenario':44} " + " ".join(f"{name:>{width}}" for name, width in header))
    for row in rows:
        converged = f"{row.converged}/{row.expected}"
        print(
            f"{row.scenario:44} {row.runs:>5} {converged:>10} {row.worst_seconds:>7.1f}s "
            f"{row.duplicates:>10} {row.regressions:>11}"
        )
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
