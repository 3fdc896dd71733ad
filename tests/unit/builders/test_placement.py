"""Pod scheduling terms from a Plan, a BaselinePlan or a bare memory floor, checked against a
small model of the scheduler's node filter (required node affinity, taints and tolerations,
allocatable nvidia.com/gpu)."""

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import DEV_FLEET, DEV_INVENTORY, GPU_TAINT, make_node
from quantfleet.api.enums import GpuFamily, Objective, PlacementPolicy, Scheme
from quantfleet.builders.placement import (
    build_any_gpu_placement,
    build_node_affinity,
    build_pod_placement,
    build_resources,
    build_tolerations,
)
from quantfleet.planning.baseline import BaselinePlan, plan_baseline
from quantfleet.planning.compat import compatibility
from quantfleet.planning.gpu import ComputeCapability
from quantfleet.planning.inventory import build_inventory
from quantfleet.planning.planner import Plan, PlanRequest, plan_placement

Node = dict[str, Any]
B = 10**9
MOST_CAPABLE = PlacementPolicy.MOST_CAPABLE


# --- A model of the kube-scheduler's filters that matter here (NodeAffinity, TaintToleration,
# NodeResourcesFit for nvidia.com/gpu). Independent of the builder on purpose.
def _expression_matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
    value = labels.get(key)
    if operator == "In":
        return value in values
    if operator == "NotIn":
        return value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        if value is None or not value.lstrip("-").isdigit():
            return False
        return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
    raise AssertionError(f"unknown operator {operator}")


def admits(node: Node, pod_placement: dict[str, Any], resources: dict[str, Any]) -> bool:
    labels = node["metadata"]["labels"]
    affinity = pod_placement["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    if not any(all(_expression_matches(e, labels) for e in t["matchExpressions"]) for t in terms):
        return False
    for taint in node["spec"].get("taints") or []:
        if taint["effect"] not in ("NoSchedule", "NoExecute"):
            continue
        tolerated = any(
            tol["key"] == taint["key"]
            and (tol["operator"] == "Exists" or tol.get("value") == taint.get("value"))
            and tol.get("effect") in (None, taint["effect"])
            for tol in pod_placement["tolerations"]
        )
        if not tolerated:
            return False
    wanted = int(resources["requests"]["nvidia.com/gpu"])
    return int(node["status"]["allocatable"].get("nvidia.com/gpu", "0")) >= wanted


def admitted_nodes(nodes: list[Node], plan: Plan) -> list[str]:
    placement, resources = build_pod_placement(plan), build_resources(plan)
    return [n["metadata"]["name"] for n in nodes if admits(n, placement, resources)]


def plan_for(nodes: list[Node], request: PlanRequest) -> Plan:
    result = plan_placement(request, build_inventory(nodes))
    assert isinstance(result, Plan), result
    return result


@dataclass(frozen=True)
class Case:
    id: str
    nodes: list[Node]
    request: PlanRequest
    want_admitted: list[str]


# Older GFD releases label the family but not the compute capability.
FAMILY_LABEL_ONLY: dict[str, str | None] = {
    "nvidia.com/gpu.compute.major": None,
    "nvidia.com/gpu.compute.minor": None,
}
MIXED = [
    make_node("t4", gpus=1),
    make_node("a100-40gb"),
    make_node("a100", taints=[GPU_TAINT]),
    make_node("l40s", gpus=4),
    make_node("h100", taints=[GPU_TAINT]),
    make_node("h100", name="h100-busy", gpus=1),
]
CASES = [
    Case(
        "fp8 admits ada and hopper, never ampere",
        MIXED,
        PlanRequest(7 * B, scheme=Scheme.FP8_DYNAMIC),
        ["l40s", "h100", "h100-busy"],
    ),
    Case(
        "int8 for 72b needs 2 gpus of 80 gb: the 40 gb a100 is out",
        MIXED,
        PlanRequest(72 * B, scheme=Scheme.W8A8),
        ["a100", "h100"],
    ),
    Case(
        "w4a16 for latency admits every 80 gb gpu",
        MIXED,
        PlanRequest(72 * B, Objective.LATENCY),
        ["a100", "h100", "h100-busy"],
    ),
    Case(
        "fallback allowed with no native gpu admits the a100s",
        [make_node("a100"), make_node("t4", gpus=1)],
        PlanRequest(7 * B, scheme=Scheme.FP8_DYNAMIC, allow_fallback=True),
        ["a100"],
    ),
    Case(
        "a node labelled only with its family is selected by family",
        [make_node("l40s", name="old-gfd", gpus=4, labels=FAMILY_LABEL_ONLY), make_node("a100")],
        PlanRequest(7 * B, scheme=Scheme.FP8_DYNAMIC),
        ["old-gfd"],
    ),
    Case(
        "a foreign taint is never tolerated",
        [
            make_node("h100", taints=[{"key": "team", "value": "x", "effect": "NoSchedule"}]),
            make_node("b200"),
        ],
        PlanRequest(7 * B, Objective.THROUGHPUT),
        ["b200"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_required_affinity_admits_exactly_the_compatible_nodes(case: Case) -> None:
    plan = plan_for(case.nodes, case.request)

    assert admitted_nodes(case.nodes, plan) == case.want_admitted


def test_placement_uses_labels_not_product_strings() -> None:
    placement = build_pod_placement(plan_for(MIXED, PlanRequest(72 * B, Objective.LATENCY)))

    keys = {e["key"] for t in _all_terms(placement) for e in t["matchExpressions"]}
    assert keys <= {
        "nvidia.com/gpu.compute.major",
        "nvidia.com/gpu.compute.minor",
        "nvidia.com/gpu.family",
        "nvidia.com/gpu.memory",
    }


def test_preferred_affinity_ranks_targets_for_the_objective() -> None:
    plan = plan_for(MIXED, PlanRequest(72 * B, Objective.LATENCY, policy=MOST_CAPABLE))

    preferred = build_node_affinity(plan)["preferredDuringSchedulingIgnoredDuringExecution"]

    assert [p["weight"] for p in preferred] == [100, 50]
    assert preferred[0]["preference"]["matchExpressions"][0]["values"] == ["9"]
    assert preferred[1]["preference"]["matchExpressions"][0]["values"] == ["8"]


def test_a_single_target_needs_no_preference() -> None:
    plan = plan_for([make_node("h100")], PlanRequest(7 * B))

    assert "preferredDuringSchedulingIgnoredDuringExecution" not in build_node_affinity(plan)


def test_gpu_requests_equal_limits() -> None:
    plan = plan_for([make_node("a100")], PlanRequest(72 * B, scheme=Scheme.W8A8))

    assert build_resources(plan) == {
        "requests": {"nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }


def test_tolerations_cover_gpu_taints_only() -> None:
    plan = plan_for(MIXED, PlanRequest(72 * B, scheme=Scheme.W8A8))

    assert build_tolerations(plan) == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_no_two_places_share_one_object() -> None:
    # Shared dicts turn into YAML anchors and alias bugs when a caller edits one place.
    placement = build_pod_placement(plan_for(MIXED, PlanRequest(7 * B, scheme=Scheme.W8A8)))
    expressions = [e for t in _all_terms(placement) for e in t["matchExpressions"]]

    assert len({id(e) for e in expressions}) == len(expressions)


# --- The same builder serves the BF16 baseline and the Jobs that take any GPU.
@pytest.mark.parametrize(
    ("nodes", "parameters", "family", "want_admitted"),
    [
        pytest.param(
            [make_node("a100-40gb"), make_node("a100", taints=[GPU_TAINT]), make_node("h100")],
            72 * B,
            GpuFamily.AMPERE,
            ["a100"],
            id="72b bf16 takes four 80 gb a100s: the 40 gb ones and other families are out",
        ),
        pytest.param(
            [
                make_node("l40s", name="old-gfd", gpus=4, labels=FAMILY_LABEL_ONLY),
                make_node("h100"),
            ],
            7 * B,
            GpuFamily.ADA_LOVELACE,
            ["old-gfd"],
            id="a node labelled only with its family is selected by family",
        ),
    ],
)
def test_a_baseline_plan_admits_its_family_where_bf16_fits(
    nodes: list[Node], parameters: int, family: GpuFamily, want_admitted: list[str]
) -> None:
    plan = plan_baseline(parameters, family, build_inventory(nodes))
    assert isinstance(plan, BaselinePlan), plan

    placement, resources = build_pod_placement(plan), build_resources(plan)

    assert [n["metadata"]["name"] for n in nodes if admits(n, placement, resources)] == (
        want_admitted
    )
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in build_node_affinity(plan)


@pytest.mark.parametrize(
    ("floor_mib", "want_admitted"),
    [
        pytest.param(0, ["t4", "a100-40gb", "a100", "l40s", "h100", "h100-busy"], id="any-gpu"),
        pytest.param(45_000, ["a100", "l40s", "h100", "h100-busy"], id="a-memory-floor"),
    ],
)
def test_any_gpu_placement_takes_every_gpu_node_above_the_floor(
    floor_mib: int, want_admitted: list[str]
) -> None:
    taints = [t for pool in build_inventory(MIXED).pools for t in pool.gpu_taints]
    placement = build_any_gpu_placement(floor_mib, taints)
    one_gpu = {"requests": {"nvidia.com/gpu": "1"}}

    assert [n["metadata"]["name"] for n in MIXED if admits(n, placement, one_gpu)] == (
        want_admitted
    )


def _all_terms(placement: dict[str, Any]) -> list[dict[str, Any]]:
    affinity = placement["affinity"]["nodeAffinity"]
    required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    preferred = affinity.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    return [*required, *(p["preference"] for p in preferred)]


# --- Every plan for the dev fleet (the testbed's default fleet.yaml) is schedulable there.
requests = st.builds(
    PlanRequest,
    parameters=st.integers(min_value=5 * 10**8, max_value=2 * 10**12),
    objective=st.sampled_from(list(Objective)),
    scheme=st.sampled_from(list(Scheme)),
    allow_fallback=st.booleans(),
    attention_heads=st.none() | st.sampled_from([16, 28, 32, 40, 64, 96]),
    gpus_per_replica=st.none() | st.sampled_from([1, 2, 4, 8]),
)


def test_the_dev_fleet_has_gpus_of_every_kind_the_issue_names() -> None:
    assert {str(f) for f in DEV_INVENTORY.families} >= {
        "turing",
        "ampere",
        "ada-lovelace",
        "hopper",
    }


@settings(max_examples=400)
@given(request=requests)
def test_every_plan_for_the_dev_fleet_is_schedulable_there(request: PlanRequest) -> None:
    result = plan_placement(request, DEV_INVENTORY)
    if not isinstance(result, Plan):
        assert result.message  # refused with a reason rather than left Pending
        return
    allow = request.allow_fallback and request.scheme is not Scheme.AUTO

    admitted = [n for n in DEV_FLEET if n["metadata"]["name"] in admitted_nodes(DEV_FLEET, result)]

    assert admitted, f"no dev-fleet node admits {result}"
    for node in admitted:
        labels = node["metadata"]["labels"]
        cc = ComputeCapability(
            int(labels["nvidia.com/gpu.compute.major"]), int(labels["nvidia.com/gpu.compute.minor"])
        )
        assert compatibility(result.scheme, cc).admitted(allow)
        assert int(labels["nvidia.com/gpu.memory"]) >= result.min_gpu_memory_mib


@pytest.mark.parametrize("objective", list(Objective))
@pytest.mark.parametrize("parameters", [3 * B, 7 * B, 72 * B, 405 * B])
def test_auto_plans_for_the_dev_fleet_are_schedulable(
    objective: Objective, parameters: int
) -> None:
    result = plan_placement(PlanRequest(parameters, objective), DEV_INVENTORY)

    assert isinstance(result, Plan), result
    assert admitted_nodes(DEV_FLEET, result)
