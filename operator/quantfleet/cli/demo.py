"""`quantfleet demo`: the main job on the local control plane with its simulated GPU fleet.

Starts the cluster (or reuses the one `quantfleet dev up` started), installs the CRDs, applies
the samples through the real API server, and shows where each QuantizedModel would be placed on
the fleet and why. The reconcilers that quantize, evaluate and serve are not built yet.
"""

import argparse
import sys
from collections import Counter
from functools import partial
from pathlib import Path

import yaml
from kubernetes import config

from quantfleet.api.crd import custom_resource_definitions
from quantfleet.api.quantizedmodel import QuantizedModel
from quantfleet.cli.dev import default_state_dir
from quantfleet.kube.apply import apply, crd_established
from quantfleet.kube.nodes import list_nodes
from quantfleet.planning.inventory import GpuInventory, build_inventory
from quantfleet.planning.planner import PlanRequest, Unplaceable, plan_placement
from quantfleet.testbed.cluster import STATE_FILE, Cluster, ClusterState
from quantfleet.testbed.fleet import load_fleet
from quantfleet.testbed.wait import poll_until

SAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "samples"
NAMESPACE = "quantfleet-demo"


def run(args: argparse.Namespace) -> int:
    state = _cluster(args.state_dir)
    api = config.new_client_from_config(str(state.kubeconfig))
    for crd in custom_resource_definitions().values():
        apply(api, crd, namespace=None)
        name = crd["metadata"]["name"]
        poll_until(partial(crd_established, api, name), timeout=60, what=f"CRD {name}")
    print(f"Installed the CRDs; applying the samples to namespace {NAMESPACE}")
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, None)
    models: list[QuantizedModel] = []
    for path in sorted(args.samples.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if document.get("kind") == "Kustomization":
            continue
        apply(api, document, namespace=NAMESPACE)
        print(f"  accepted {document['kind']}/{document['metadata']['name']}")
        if document["kind"] == "QuantizedModel":
            models.append(QuantizedModel.model_validate(document))
    inventory = build_inventory(list_nodes(api))
    print(f"\nGPU fleet (SIMULATED by kwok, no real GPUs): {_fleet_summary(inventory)}\n")
    print(_placements(models, inventory))
    print(
        f"\nThe cluster keeps running: export KUBECONFIG={state.kubeconfig}\n"
        "Stop it with `quantfleet dev down`."
    )
    return 0


def _cluster(state_dir: Path) -> ClusterState:
    """The running dev cluster, started now if none is up (and recorded for `dev down`)."""
    path = state_dir / STATE_FILE
    if path.exists():
        state = ClusterState.load(path)
        if all(record.is_running() for record in state.processes):
            print(f"Reusing the local control plane at {state.server}")
            return state
    print("Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler,")
    print("kwok) with the simulated GPU fleet ...")
    state = Cluster(load_fleet(), log=lambda line: print(f"  {line}", file=sys.stderr)).start()
    state_dir.mkdir(parents=True, exist_ok=True)
    state.save(path)
    return state


def _fleet_summary(inventory: GpuInventory) -> str:
    counts = Counter(f"{node.product} ({node.family})" for node in inventory.nodes)
    return ", ".join(f"{count}× {name}" for name, count in sorted(counts.items()))


def _placements(models: list[QuantizedModel], inventory: GpuInventory) -> str:
    """One row per model: requested scheme, resolved scheme, GPUs, families, and why."""
    rows = [("NAME", "REQUESTED", "SCHEME", "GPUS", "GPU FAMILIES", "WHY")]
    for model in models:
        spec = model.spec
        billions = spec.source.parameters_billions
        if billions is None:
            rows.append(
                (
                    model.metadata["name"],
                    spec.quantization.scheme,
                    "-",
                    "-",
                    "-",
                    "set spec.source.parametersBillions to plan before quantizing",
                )
            )
            continue
        request = PlanRequest(
            parameters=int(billions * 1e9),
            objective=spec.quantization.resolved_objective,
            scheme=spec.quantization.scheme,
            allow_fallback=spec.quantization.allow_fallback,
            gpus_per_replica=spec.serving.gpus_per_replica,
        )
        plan = plan_placement(request, inventory)
        if isinstance(plan, Unplaceable):
            rows.append(
                (
                    model.metadata["name"],
                    spec.quantization.scheme,
                    "-",
                    "-",
                    "-",
                    f"{plan.reason}: {plan.message}",
                )
            )
            continue
        rows.append(
            (
                model.metadata["name"],
                spec.quantization.scheme,
                plan.scheme,
                str(plan.gpus_per_replica),
                ",".join(plan.target_families),
                plan.rationale,
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + f"  {row[5]}"
        for row in rows
    )


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
    parser.set_defaults(run=run)
