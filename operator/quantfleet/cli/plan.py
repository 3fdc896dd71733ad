"""`quantfleet plan`: which scheme, GPUs and tensor-parallel size (or CPU nodes, cores and memory)
a model gets on a fleet, and why.

The fleet is a file (Node manifests, a List, or a testbed fleet file with `pools`) or the current
cluster through the kubeconfig.
"""

import argparse
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from quantfleet.api.enums import Hardware, Objective, PlacementPolicy, Scheme
from quantfleet.api.settings import DEFAULT_CPU_CORES_PER_REPLICA, read_gpu_costs
from quantfleet.builders.placement import build_pod_placement, build_resources
from quantfleet.planning.capacity import format_bytes, parse_parameter_count
from quantfleet.planning.inventory import CpuPool, Held, Inventory, build_inventory, requested
from quantfleet.planning.planner import Plan, PlanRequest, Unplaceable, plan_placement
from quantfleet.planning.rules import GpuCosts, gpu_cost

# Flags that are PlanRequest fields of the same name, passed as they parse.
REQUEST_FLAGS = (
    "objective",
    "scheme",
    "allow_fallback",
    "attention_heads",
    "gpus_per_replica",
    "policy",
    "hardware",
    "cpu_cores",
)
EXIT_UNPLACEABLE = 1
EXIT_USAGE = 2


class FleetError(ValueError):
    """A fleet that cannot be read."""


def run(args: argparse.Namespace) -> int:
    try:
        request = PlanRequest(
            parameters=parse_parameter_count(args.params),
            gpu_costs=read_gpu_costs(args.gpu_costs) if args.gpu_costs else {},
            **{flag: getattr(args, flag) for flag in REQUEST_FLAGS},
        )
        # A fleet file's GPUs are all free; a cluster's pods hold some.
        nodes, taken = (read_fleet_file(args.fleet), {}) if args.fleet else read_cluster()
    except (ValueError, OSError) as error:
        print(f"quantfleet plan: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    inventory = build_inventory(nodes, taken, args.cpu_nodes)
    if not (inventory.nodes or inventory.skipped or inventory.cpu_nodes):
        source = args.fleet or "the current cluster"
        print(f"quantfleet plan: error: {_nothing_serves(inventory, source)}", file=sys.stderr)
        return EXIT_USAGE
    result = plan_placement(request, inventory)
    if isinstance(result, Unplaceable):
        print(f"unplaceable ({result.reason}): {result.message}")
        return EXIT_UNPLACEABLE
    print(render(result, inventory, args.show_placement, request.gpu_costs))
    return 0


def _nothing_serves(inventory: Inventory, source: Path | str) -> str:
    """Why a fleet holds nothing to plan on; where nodes without GPUs lack only the opt-in
    label, the planner's own words for it (which nodes, and how to opt them in)."""
    if inventory.unlabelled_cpu_nodes:
        return f"no GPU nodes in {source} and {inventory.describe_cpus()}"
    return f"no GPU or serving CPU nodes in {source}"


def render(
    plan: Plan,
    inventory: Inventory,
    show_placement: bool = False,
    costs: GpuCosts | None = None,
) -> str:
    """The plan as a short aligned table, optionally followed by the pod scheduling terms."""
    if plan.cpu is None:
        hardware = [
            ("gpus per replica", str(plan.gpus_per_replica)),
            ("tensor parallel", str(plan.tensor_parallel_size)),
        ]
        targets = [
            ("target families", ", ".join(plan.target_families)),
            ("gpu memory", f">= {plan.min_gpu_memory_mib} MiB per GPU"),
        ]
    else:
        hardware = [("cpu per replica", f"{plan.cpu.cores} cores")]
        targets = [
            ("target cpu levels", ", ".join(plan.target_levels)),
            ("kv cache", f"{plan.cpu.kv_cache_gib} GiB (VLLM_CPU_KVCACHE_SPACE)"),
        ]
    rows = [
        ("scheme", f"{plan.scheme} ({plan.support.lower()})"),
        *hardware,
        ("policy", str(plan.policy)),
        ("ranking", "; ".join(_ranked(plan, costs))),
        *targets,
        ("replica needs", format_bytes(plan.required_bytes)),
        ("rationale", plan.rationale),
    ]
    if inventory.cpu_nodes and plan.cpu is None:
        rows.append(("cpu pools", inventory.describe_cpus()))
    if inventory.skipped:
        rows.append(
            ("skipped nodes", "; ".join(f"{s.name}: {s.reason}" for s in inventory.skipped))
        )
    lines = [f"{name + ':':<18}{value}" for name, value in rows]
    if show_placement:
        terms = {**build_pod_placement(plan), "resources": build_resources(plan)}
        lines += ["---", yaml.safe_dump(terms, sort_keys=False).rstrip()]
    return "\n".join(lines)


def _ranked(plan: Plan, costs: GpuCosts | None) -> list[str]:
    """The targets best first: `1. hopper 80 GiB (2 nodes, 16 of 16 GPUs free), cost 5.00 per
    replica`, or `1. cpu amx (GenuineIntel), up to 112 cores and 512 GiB/node (...)`."""
    ranked = []
    for rank, target in enumerate(plan.targets, 1):
        pool = target.pool
        if isinstance(pool, CpuPool):
            line, units = f"{rank}. {pool.describe()}", plan.cpu.cores if plan.cpu else 0
        else:
            nodes = f"{len(pool.nodes)} node{'s' if len(pool.nodes) > 1 else ''}"
            free = f"{pool.free_gpus} of {pool.gpus} GPUs free"
            line = f"{rank}. {pool.family} {pool.memory_mib / 1024:.0f} GiB ({nodes}, {free})"
            units = plan.gpus_per_replica
        cost = gpu_cost(pool, costs or {})
        if cost is not None:
            line += f", cost {cost * units:.2f} per replica"
        ranked.append(line)
    return ranked


def read_fleet_file(path: Path) -> list[dict[str, Any]]:
    """Node objects from a file of Node manifests, a v1 List, or a testbed fleet (`pools`)."""
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as error:
        raise FleetError(f"{path} is not YAML: {error}") from error
    nodes: list[dict[str, Any]] = []
    for document in documents:
        if not isinstance(document, dict):
            raise FleetError(
                f"{path}: expected Node manifests or a fleet file, got {document!r:.60}"
            )
        if "pools" in document:
            # A testbed fleet file (quantfleet.testbed.fleet): the Nodes `dev up` would create.
            from quantfleet.testbed.fleet import Fleet, build_nodes

            try:
                nodes.extend(build_nodes(Fleet.model_validate(document)))
            except ValueError as error:
                raise FleetError(f"{path}: not a valid fleet file: {error}") from error
        elif document.get("kind") == "Node":
            nodes.append(document)
        else:
            nodes.extend(
                item for item in document.get("items") or [] if item.get("kind", "Node") == "Node"
            )
    if not nodes:
        raise FleetError(f"{path} holds no Node objects")
    return nodes


def read_cluster() -> tuple[list[dict[str, Any]], dict[str, Held]]:
    """The current cluster's Nodes and what its pods request per node, through the kubeconfig
    (KUBECONFIG or ~/.kube/config)."""
    from kubernetes import client, config

    from quantfleet.kube.nodes import list_held_pods, list_nodes

    try:
        # KUBECONFIG as it is now (the client library reads it once, when first imported).
        api_client = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    except (config.ConfigException, OSError) as error:
        raise FleetError(f"no --fleet given and no usable kubeconfig: {error}") from error
    try:
        return list_nodes(api_client), requested(list_held_pods(api_client))
    except client.ApiException as error:
        raise FleetError(f"could not list Nodes/Pods: {error.status} {error.reason}") from error
    finally:
        api_client.close()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _choice(parser: argparse.ArgumentParser, flag: str, default: StrEnum, help: str) -> None:
    """A flag taking one value of `default`'s enum."""
    kind = type(default)
    parser.add_argument(flag, type=kind, choices=list(kind), default=default, help=help)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "plan", help="show the scheme, GPUs and tensor-parallel size a model gets on a fleet"
    )
    parser.add_argument("--params", required=True, help="parameter count, e.g. 72B, 7.5B, 500M")
    _choice(parser, "--objective", Objective.BALANCED, "what auto optimises for")
    _choice(parser, "--scheme", Scheme.AUTO, "the scheme, or auto")
    parser.add_argument(
        "--fleet", type=Path, help="Node manifests or a testbed fleet file; default: the cluster"
    )
    parser.add_argument(
        "--allow-fallback",
        action="store_true",
        help="accept GPUs that load the scheme without its speed (e.g. FP8 below 8.9)",
    )
    parser.add_argument("--attention-heads", type=_positive_int, help="TP must divide these")
    parser.add_argument("--gpus-per-replica", type=_positive_int, help="fix the GPU count")
    _choice(parser, "--policy", PlacementPolicy.BEST_FIT, "how the kinds that qualify rank")
    parser.add_argument(
        "--gpu-costs",
        type=Path,
        help="YAML map of GPU product or family to one GPU's cost (key cpu: one CPU core's)",
    )
    _choice(parser, "--hardware", Hardware.GPU, "GPUs, serving CPU nodes, or any (CPUs to 8B)")
    parser.add_argument(
        "--cpu-nodes",
        action="store_true",
        help="every NFD-labelled node without GPUs serves (default: those labelled "
        "quantfleet.io/cpu-serving=true)",
    )
    parser.add_argument(
        "--cpu-cores",
        type=_positive_int,
        default=DEFAULT_CPU_CORES_PER_REPLICA,
        help="cores per CPU replica",
    )
    parser.add_argument(
        "--show-placement", action="store_true", help="also print the pod scheduling terms"
    )
    parser.set_defaults(run=run)
