"""`quantfleet dev up|down|status|worker`: a local control plane with a simulated GPU fleet
(issue 3) and the simulated worker that completes quantfleet's Job pods on it (issue 6).

The state (PIDs, kubeconfig, data folder) lives in a state folder, so `down` and `status` work
from any shell.
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from quantfleet.testbed.binaries import BUILD_COMMAND, NODE_BUILD_COMMAND, find_binaries
from quantfleet.testbed.cluster import STATE_FILE, Cluster, ClusterState, RealNodeOptions
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.processes import ComponentError, stop


def default_state_dir() -> Path:
    if explicit := os.environ.get("QUANTFLEET_STATE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "quantfleet" / "dev"


def _load(state_dir: Path) -> ClusterState | None:
    path = state_dir / STATE_FILE
    return ClusterState.load(path) if path.exists() else None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def up(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    previous = _load(state_dir)
    if previous and any(record.is_running() for record in previous.processes):
        _say(f"A cluster is already up at {previous.server}; `quantfleet dev down` stops it")
        print(f"export KUBECONFIG={previous.kubeconfig}")
        return 1
    try:
        fleet = load_fleet(args.fleet)
        binaries = find_binaries(args.bin_dir)
    except (ValueError, FileNotFoundError) as error:
        _say(str(error))
        return 1
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        real_node = RealNodeOptions() if args.real_node else None
        cluster = Cluster(
            fleet, binaries=binaries, apiserver_port=args.port, log=_say, real_node=real_node
        )
    except (ComponentError, FileNotFoundError) as error:
        _say(str(error))
        return 1
    try:
        state = cluster.start(timeout=args.timeout)
    except Exception as error:
        _say(f"The cluster did not come up: {error}\nLogs are in {cluster.data_dir / 'logs'}")
        return 1
    state.save(state_dir / STATE_FILE)
    _say(
        f"Kubernetes control plane at {state.server} (etcd, kube-apiserver, "
        f"kube-controller-manager, kube-scheduler) with {state.nodes} kwok-simulated GPU nodes: "
        "no real machines or GPUs, pods on them are simulated and run no containers."
    )
    if cluster.real_node:
        _say(
            f"Real node {cluster.real_node.name}: kubelet, containerd and runc running real "
            "containers on this machine's CPU (label quantfleet.io/real-node=true)."
        )
    _say(f"Kubeconfig: {state.kubeconfig}\nStop it with `quantfleet dev down`.")
    print(f"export KUBECONFIG={state.kubeconfig}")
    return 0


def _recorded(state_dir: Path) -> ClusterState | None:
    """The cluster `up` recorded in `state_dir`; None, said on stderr, when there is none."""
    state = _load(state_dir)
    if state is None:
        _say(f"No cluster recorded in {state_dir}")
    return state


def down(args: argparse.Namespace) -> int:
    state = _recorded(args.state_dir)
    if state is None:
        return 0
    stopped = stop(state.processes)
    _say(f"Stopped {', '.join(stopped) or 'nothing (already stopped)'}")
    if not args.keep_data:
        shutil.rmtree(state.data_dir, ignore_errors=True)
    (args.state_dir / STATE_FILE).unlink()
    return 0


def status(args: argparse.Namespace) -> int:
    state = _recorded(args.state_dir)
    if state is None:
        print("down")
        return 3
    running = [record.is_running() for record in state.processes]
    for record, alive in zip(state.processes, running, strict=True):
        condition = f"running {record.rss_mib():7.0f} MiB RSS" if alive else "STOPPED"
        print(f"{record.name:<24} pid {record.pid:<8} {condition}")
    total = sum(record.rss_mib() for record in state.processes)
    print(f"{'total':<37} {total:7.0f} MiB RSS")
    print(f"server     {state.server}")
    print(f"kubeconfig {state.kubeconfig}")
    print(f"logs       {state.data_dir}/logs")
    print(f"nodes      {state.nodes} simulated by kwok")
    if all(running):
        print("up")
        return 0
    print("degraded: `quantfleet dev down` then `quantfleet dev up`")
    return 1


def worker(args: argparse.Namespace) -> int:
    # Imported here: only this action needs the Kubernetes client and the result schema.
    from kubernetes import config

    from quantfleet.testbed.worker import SimulatedResults, SimulatedWorker

    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    if kubeconfig is None:
        state = _load(args.state_dir)
        if state is None:
            _say("No cluster: run `quantfleet dev up` or pass --kubeconfig")
            return 1
        kubeconfig = str(state.kubeconfig)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    producer = SimulatedResults(recovery=args.recovery)
    simulated = SimulatedWorker(api, producer, namespace=args.namespace, interval=args.interval)
    _say(
        "SIMULATED worker: completing quantfleet Job pods on kwok nodes with synthesised "
        f"results marked simulated (evaluate recovery {args.recovery:g}%); no program runs. "
        "Ctrl-C stops it."
    )
    try:
        while True:
            for key in simulated.run_once():
                _say(f"Annotated pod {key} with a SIMULATED result; kwok completes it")
            if args.once:
                return 0
            time.sleep(args.interval)  # pacing between passes of a long-running loop
    except KeyboardInterrupt:
        return 0
    finally:
        api.close()


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run a local Kubernetes control plane with a simulated GPU fleet",
        description=__doc__,
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="where the running cluster is recorded (default: %(default)s)",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    start = actions.add_parser("up", help="start the cluster and print `export KUBECONFIG=...`")
    start.add_argument("--fleet", type=Path, help="fleet file (default: the packaged fleet.yaml)")
    start.add_argument("--port", type=int, help="kube-apiserver port (default: a free one)")
    start.add_argument(
        "--bin-dir", type=Path, help=f"folder with kubebin and kwok (built by {BUILD_COMMAND})"
    )
    start.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for ready")
    start.add_argument(
        "--real-node",
        action="store_true",
        help="add one real node (containerd, kubelet, kube-proxy, CoreDNS, built by "
        f"`{NODE_BUILD_COMMAND}`) in namespaces of its own, labelled with this CPU's NFD labels; "
        "the simulated CPU serving pools step aside for it",
    )
    start.set_defaults(run=up)
    finish = actions.add_parser("down", help="stop the processes `up` started")
    finish.add_argument("--keep-data", action="store_true", help="keep the data folder and logs")
    finish.set_defaults(run=down)
    actions.add_parser("status", help="show whether the cluster is up").set_defaults(run=status)
    simulate = actions.add_parser(
        "worker",
        help="complete quantfleet's Job pods on kwok nodes with SIMULATED results",
    )
    simulate.add_argument(
        "--kubeconfig", help="cluster to act on (default: $KUBECONFIG, else the `up` cluster)"
    )
    simulate.add_argument("--namespace", help="only pods in this namespace (default: all)")
    simulate.add_argument(
        "--recovery",
        type=float,
        default=99.6,
        help="overall recovery, percent, that simulated evaluations report (default: %(default)s)",
    )
    simulate.add_argument("--interval", type=float, default=0.5, help="seconds between passes")
    simulate.add_argument("--once", action="store_true", help="make one pass and exit")
    simulate.set_defaults(run=worker)
