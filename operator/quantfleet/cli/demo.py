"""`quantfleet demo`: the main job on the local control plane with its simulated GPU fleet.

Starts the cluster (or reuses the one `quantfleet dev up` started), installs the CRDs and the
operator: with --real-node by the README's Helm command, as a pod on the real node; without, its
RBAC from manifests/ (the kustomize install) and the operator as a local process holding its
ServiceAccount's token. One install method per cluster: the other one answers in one line. Then
it applies the samples and shows the fleet converging: where each QuantizedModel was placed and
why. The GPU nodes are simulated by kwok and the Job programs on them by the simulated worker:
every result it reports is marked SIMULATED, in status and here. With --real-node, a real CPU
node joins and the REAL row (cli.demo_real) is measured there by real pods.
"""

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from quantfleet.api.common import BENCHMARK_RUNS, GROUP, QUANTIZED_MODELS, VERSION
from quantfleet.api.contract import LABEL_COMPONENT, LABEL_MODEL, Component
from quantfleet.cli import demo_real
from quantfleet.cli.dev import default_state_dir
from quantfleet.cli.localrun import (
    InstallError,
    OperatorProcess,
    install_crds,
    install_rbac,
    mint_token,
    simulated_volume,
    write_token_kubeconfig,
)
from quantfleet.kube.apply import apply
from quantfleet.testbed.cluster import STATE_FILE, Cluster, ClusterState, RealNodeOptions
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.wait import poll_until
from quantfleet.testbed.worker import SimulatedResults, SimulatedWorker

SAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "samples"
NAMESPACE = "quantfleet-demo"
# The real row: images imported, then quantize, evaluate and two vLLM starts on 2 shared cores.
REAL_ROW_TIMEOUT = 1500.0
Json = dict[str, Any]


def run(args: argparse.Namespace) -> int:
    state = _cluster(args.state_dir, real_node=args.real_node)
    real = any(record.name == "node-init" for record in state.processes)
    if args.real_node and not real:
        print(
            f"quantfleet demo: error: the running cluster ({args.state_dir}) has no real node; "
            "stop it with `quantfleet dev down`, then run the demo again",
            file=sys.stderr,
        )
        return 1
    api = config.new_client_from_config(str(state.kubeconfig))
    install_crds(api)
    print("Installed the CRDs (crds/)")
    _namespace(api)
    operator = None
    try:
        if real:
            row = demo_real.start(api, state)
        else:
            install_rbac(api)
            print("Installed the operator's namespace, ServiceAccount and RBAC (manifests/)")
            work = Path(tempfile.mkdtemp(prefix="quantfleet-demo-"))
            token = write_token_kubeconfig(state.kubeconfig, mint_token(api), work / "kubeconfig")
            operator = OperatorProcess(token, work / "operator.log").start()
            print(f"Started the operator (its ServiceAccount's token; log {work / 'operator.log'})")
    except InstallError as error:
        print(f"quantfleet demo: error: {error}", file=sys.stderr)
        return 1
    worker = SimulatedWorker(api, SimulatedResults()).start()
    print("Started the SIMULATED worker: it completes Job pods on kwok nodes with made-up results")
    try:
        for path in sorted(args.samples.glob("*.yaml")):
            document = yaml.safe_load(path.read_text())
            if document.get("kind") == "Kustomization":
                continue
            if real and (document["spec"].get("placement") or {}).get("hardware") == "cpu":
                print(f"  skipped {document['metadata']['name']}: the real row has the CPU node")
                continue
            apply(api, document, namespace=NAMESPACE)
            print(f"  applied {document['kind']}/{document['metadata']['name']}")
        timeout = args.timeout + (REAL_ROW_TIMEOUT if real else 0)
        print(f"\nWaiting for every model to settle (up to {timeout:.0f}s) ...\n")
        models = poll_until(
            lambda: _settled(api) if not real or demo_real.settled(row) else None,
            timeout=timeout,
            what="every QuantizedModel to settle",
        )
        print(_table(api, models + ([row.model()] if real else [])))
        print(_benchmarks(api))
        if real:
            print("\n" + demo_real.summary(row))
    finally:
        worker.stop()
        if operator:
            operator.stop()
    print(
        f"\nThe cluster keeps running: export KUBECONFIG={state.kubeconfig}\n"
        "Run the operator and the simulated worker yourself with `quantfleet operator "
        "--all-namespaces` and `quantfleet dev worker`; stop the cluster with "
        "`quantfleet dev down`."
    )
    return 0


def _cluster(state_dir: Path, *, real_node: bool) -> ClusterState:
    """The running dev cluster, started now if none is up (and recorded for `dev down`): with a
    real node beside the simulated fleet unless `real_node` is off."""
    path = state_dir / STATE_FILE
    if path.exists():
        state = ClusterState.load(path)
        if all(record.is_running() for record in state.processes):
            print(f"Reusing the local control plane at {state.server}")
            return state
    print("Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler)")
    print("with kwok simulating a GPU fleet (no real GPUs)", end="")
    print(" and a real CPU node (containerd, kubelet) ..." if real_node else " ...")
    options = RealNodeOptions() if real_node else None
    state = Cluster(load_fleet(), log=_log, real_node=options).start()
    state_dir.mkdir(parents=True, exist_ok=True)
    state.save(path)
    return state


def _log(line: str) -> None:
    print(f"  {line}", file=sys.stderr)


def _namespace(api: client.ApiClient) -> None:
    """The demo namespace, and the `models` claim the samples write to (a simulated volume)."""
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, None)
    try:
        client.CoreV1Api(api).read_namespaced_persistent_volume_claim("models", NAMESPACE)
    except ApiException as error:
        if error.status != 404:
            raise
        simulated_volume(api, NAMESPACE, "models")


def _models(api: client.ApiClient) -> list[Json]:
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, QUANTIZED_MODELS
    )
    items: list[Json] = listing["items"]
    return items


def _conditions(body: Json) -> dict[str, Json]:
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


def _settled(api: client.ApiClient) -> list[Json] | None:
    """Every model is Ready, or stopped on a False step (a gate, an approval, no GPU)."""
    models = _models(api)
    for model in models:
        conditions = _conditions(model)
        ready = conditions.get("Ready", {}).get("status") == "True"
        stopped = any(c["status"] == "False" for kind, c in conditions.items() if kind != "Ready")
        if not (ready or stopped):
            return None
    for run in _benchmark_runs(api):
        if not {"Succeeded", "Failed"} & set(_true(run)):
            return None
    return models or None


def _benchmark_runs(api: client.ApiClient) -> list[Json]:
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, BENCHMARK_RUNS
    )
    items: list[Json] = listing["items"]
    return items


def _true(body: Json) -> list[str]:
    return [kind for kind, c in _conditions(body).items() if c["status"] == "True"]


def _cpu_level(plan: Json) -> str:
    """`cpu/amx` for a CPU plan, `-` for none."""
    levels = plan.get("cpuLevels") or []
    return f"cpu/{levels[0]}" if levels else "-"


def _table(api: client.ApiClient, models: list[Json]) -> str:
    """`kubectl get qm -o wide` with the node each model landed on and why, each row REAL (the
    real node's, measured) or SIMULATED (kwok nodes, the simulated worker's results)."""
    core = client.CoreV1Api(api)
    rows = [
        ("NAME", "SCHEME", "HARDWARE", "GPUS", "RECOVERY", "PROMOTED", "READY", "SERVED ON", "ROW")
    ]
    notes = []
    for model in sorted(models, key=lambda m: str(m["metadata"]["name"])):
        name, status = model["metadata"]["name"], model.get("status") or {}
        plan, recovery = status.get("plan") or {}, status.get("recovery") or {}
        conditions = _conditions(model)
        namespace = model["metadata"]["namespace"]
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"{LABEL_MODEL}={name},{LABEL_COMPONENT}={Component.SERVE}"
        ).items
        nodes = sorted({pod.spec.node_name for pod in pods if pod.spec.node_name})
        overall = recovery.get("overall")
        rows.append((
            name,
            plan.get("scheme", "-"),
            plan.get("gpuFamily") or _cpu_level(plan),
            str(plan.get("gpusPerReplica", "-")),
            f"{'SIM:' if recovery.get('simulated') else ''}{overall:.2f}%" if overall else "-",
            conditions.get("Promoted", {}).get("reason", "-"),
            conditions.get("Ready", {}).get("status", "-"),
            ",".join(nodes) or "-",
            "REAL" if namespace == demo_real.NAMESPACE else "SIMULATED",
        ))  # fmt: skip
        blocking = next(
            (c for c in conditions.values() if c["status"] == "False" and c["type"] != "Ready"),
            None,
        )
        why = blocking["message"] if blocking else plan.get("rationale", "")
        if blocking and blocking["reason"] == "AwaitingApproval":
            artifact = status["artifact"]["id"]
            why += (
                f"\n    approve: kubectl -n {namespace} patch qm {name} --type merge -p "
                f'\'{{"spec": {{"serving": {{"approvedArtifact": "{artifact}"}}}}}}\''
            )
        notes.append(f"  {name}: {why}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return (
        f"{table}\n\nWhy:\n"
        + "\n".join(notes)
        + "\n\nSIM: recovery from the SIMULATED worker (no model was evaluated); kwok nodes."
    )


def _benchmarks(api: client.ApiClient) -> str:
    lines = ["\nBenchmarkRuns (results from the SIMULATED worker, not measured):"]
    for run in _benchmark_runs(api):
        status = run.get("status") or {}
        state = _true(run)
        lines.append(
            f"  {run['metadata']['name']}: {', '.join(state) or 'pending'}; best speed-up "
            f"{status.get('bestSpeedup', '-')}; `quantfleet report {run['metadata']['name']} "
            f"-n {NAMESPACE}` for the table and plots"
        )
    return "\n".join(lines)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "demo", help="the main job on the local cluster", description=__doc__
    )
    parser.add_argument(
        "--state-dir", type=Path, default=default_state_dir(), help="dev cluster state"
    )
    parser.add_argument(
        "--samples", type=Path, default=SAMPLES, help="folder of manifests to apply"
    )
    parser.add_argument(
        "--timeout", type=float, default=240.0, help="seconds to wait for the models to settle"
    )
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="add a real CPU node and the REAL row: the tiny VLM really quantized, evaluated, "
        "served and benchmarked against its BF16 baseline in pods from our images (minutes; "
        "`make demo` passes it)",
    )
    parser.set_defaults(run=run)
