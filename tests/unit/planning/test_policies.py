"""Placement policies: which of the GPU kinds that run the scheme natively and fit gets a model,
over policies x fleets x objectives, with the family each should land on."""

import pytest

from factories import DEV_INVENTORY, make_inventory, make_node
from quantfleet.api.enums import GpuFamily, Objective, PlacementPolicy, Scheme
from quantfleet.planning.gpu import ComputeCapability
from quantfleet.planning.inventory import build_inventory
from quantfleet.planning.planner import Plan, PlanRequest, plan_placement
from quantfleet.planning.rules import gpu_cost

B = 10**9
BEST_FIT, CHEAPEST, MOST_CAPABLE, FIRST_AVAILABLE = (
    PlacementPolicy.BEST_FIT,
    PlacementPolicy.CHEAPEST,
    PlacementPolicy.MOST_CAPABLE,
    PlacementPolicy.FIRST_AVAILABLE,
)
LATENCY, THROUGHPUT, BALANCED = Objective.LATENCY, Objective.THROUGHPUT, Objective.BALANCED
# Per GPU, keyed by GFD product or family, as a cluster's cost ConfigMap gives them.
COSTS = {
    "Tesla-T4": 0.35,
    "ampere": 1.10,
    "NVIDIA-L40S": 1.00,
    "NVIDIA-H100-80GB-HBM3": 2.50,
    "NVIDIA-H200": 3.50,
    "blackwell": 6.00,
}


def placed(
    params: float,
    policy: PlacementPolicy,
    objective: Objective = BALANCED,
    scheme: Scheme = Scheme.AUTO,
) -> Plan:
    request = PlanRequest(
        parameters=round(params * B),
        objective=objective,
        scheme=scheme,
        policy=policy,
        gpu_costs=COSTS,
    )
    plan = plan_placement(request, DEV_INVENTORY)
    assert isinstance(plan, Plan), plan
    return plan


@pytest.mark.parametrize(
    ("params", "scheme", "objective", "policy", "want"),
    [
        # A 3B model: BestFit keeps it on the smallest GPU, not the newest.
        (3, Scheme.AUTO, BALANCED, BEST_FIT, ("turing", Scheme.W8A8, 1)),
        (3, Scheme.AUTO, BALANCED, MOST_CAPABLE, ("blackwell", Scheme.FP8_DYNAMIC, 1)),
        (3, Scheme.AUTO, BALANCED, CHEAPEST, ("turing", Scheme.W8A8, 1)),
        (3, Scheme.AUTO, LATENCY, BEST_FIT, ("turing", Scheme.W4A16, 1)),
        (3, Scheme.AUTO, THROUGHPUT, BEST_FIT, ("turing", Scheme.W8A8, 1)),
        # A 7B FP8 model: the smallest FP8 GPU, not a B200.
        (7, Scheme.FP8_DYNAMIC, BALANCED, BEST_FIT, ("ada-lovelace", Scheme.FP8_DYNAMIC, 1)),
        (7, Scheme.FP8_DYNAMIC, BALANCED, MOST_CAPABLE, ("blackwell", Scheme.FP8_DYNAMIC, 1)),
        (7, Scheme.FP8_DYNAMIC, BALANCED, CHEAPEST, ("ada-lovelace", Scheme.FP8_DYNAMIC, 1)),
        # A 72B model: one H200 beats two of anything; MostCapable takes the B200.
        (72, Scheme.AUTO, BALANCED, BEST_FIT, ("hopper", Scheme.FP8_DYNAMIC, 1)),
        (72, Scheme.AUTO, BALANCED, MOST_CAPABLE, ("blackwell", Scheme.FP8_DYNAMIC, 1)),
        # Cheapest: 2 x A100 INT8 (2.20) undercuts 1 x H200 FP8 (3.50).
        (72, Scheme.AUTO, THROUGHPUT, CHEAPEST, ("ampere", Scheme.W8A8, 2)),
        (72, Scheme.AUTO, LATENCY, BEST_FIT, ("ampere", Scheme.W4A16, 1)),
        (72, Scheme.AUTO, LATENCY, MOST_CAPABLE, ("blackwell", Scheme.NVFP4, 1)),
    ],
)
def test_each_policy_lands_where_it_should(
    params: float,
    scheme: Scheme,
    objective: Objective,
    policy: PlacementPolicy,
    want: tuple[str, Scheme, int],
) -> None:
    plan = placed(params, policy, objective, scheme)

    assert (plan.target_families[0], plan.scheme, plan.gpus_per_replica) == want
    assert plan.policy is policy
    assert f"by {policy}" in plan.rationale


def test_the_rationale_names_the_policy_and_the_runner_up() -> None:
    plan = placed(7, BEST_FIT, scheme=Scheme.FP8_DYNAMIC)

    assert plan.rationale.endswith(
        "-> 1 x ada-lovelace 45 GiB (TP 1) by BestFit; "
        "runner-up: FP8_DYNAMIC on 1 x hopper 80 GiB (TP 1)"
    )


def test_a_single_gpu_kind_has_no_runner_up() -> None:
    plan = plan_placement(PlanRequest(parameters=7 * B), make_inventory("h100"))

    assert isinstance(plan, Plan)
    assert "runner-up" not in plan.rationale


def test_first_available_follows_the_node_order_not_capability() -> None:
    inventory = build_inventory(
        [make_node("b200", name="gpu-a"), make_node("l40s", name="gpu-b", gpus=4)]
    )

    plans = {
        policy: plan_placement(
            PlanRequest(parameters=7 * B, scheme=Scheme.FP8_DYNAMIC, policy=policy), inventory
        )
        for policy in (FIRST_AVAILABLE, BEST_FIT)
    }

    assert {p: getattr(plan, "target_families", ())[:1] for p, plan in plans.items()} == {
        FIRST_AVAILABLE: (GpuFamily.BLACKWELL,),
        BEST_FIT: (GpuFamily.ADA_LOVELACE,),
    }


def test_cheapest_puts_gpus_without_a_cost_last() -> None:
    inventory = make_inventory("h100", ("l40s", 4))

    plan = plan_placement(
        PlanRequest(
            parameters=7 * B,
            scheme=Scheme.FP8_DYNAMIC,
            policy=CHEAPEST,
            gpu_costs={"NVIDIA-H100-80GB-HBM3": 2.5},
        ),
        inventory,
    )

    assert isinstance(plan, Plan)
    assert plan.target_families[0] == GpuFamily.HOPPER


def test_costs_apply_by_product_before_family() -> None:
    [pool] = make_inventory("h100").pools

    assert gpu_cost(pool, {"hopper": 9.0, "NVIDIA-H100-80GB-HBM3": 2.5}) == 2.5
    assert gpu_cost(pool, {"hopper": 9.0}) == 9.0
    assert gpu_cost(pool, {}) is None


def test_compute_capabilities_compare_as_numbers_not_strings() -> None:
    # A peer compares "10.0" < "8.9" as strings; the planner must put Blackwell above Ada.
    assert ComputeCapability.parse("10.0") > ComputeCapability.parse("8.9")
    inventory = make_inventory("b200", ("l40s", 4))

    plan = plan_placement(
        PlanRequest(parameters=7 * B, scheme=Scheme.FP8_DYNAMIC, policy=MOST_CAPABLE), inventory
    )

    assert isinstance(plan, Plan)
    assert plan.target_families == (GpuFamily.BLACKWELL, GpuFamily.ADA_LOVELACE)
