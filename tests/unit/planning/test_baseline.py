"""The BF16 baseline's plan: the GPU count BF16 needs on the model's own GPU family, or why it
cannot be placed there."""

import pytest

from quantfleet.api.enums import GpuFamily
from quantfleet.planning.baseline import BaselinePlan, plan_baseline
from quantfleet.planning.inventory import build_inventory
from quantfleet.testbed.fleet import build_nodes, load_fleet

FLEET = build_inventory(build_nodes(load_fleet()))
B = 10**9


@pytest.mark.parametrize(
    ("parameters", "family", "want_gpus", "want_memory_at_least"),
    [
        pytest.param(8_300_000_000, GpuFamily.HOPPER, 1, 20_000, id="7b-on-one-hopper"),
        # 72B BF16 needs ~173 GB: 2 x H200 rather than 4 x H100 (fewest GPUs first).
        pytest.param(72 * B, GpuFamily.HOPPER, 2, 90_000, id="72b-on-two-h200"),
        pytest.param(72 * B, GpuFamily.AMPERE, 4, 45_000, id="72b-on-four-ampere"),
        pytest.param(8_300_000_000, GpuFamily.ADA_LOVELACE, 1, 20_000, id="7b-on-one-l40s"),
    ],
)
def test_baseline_gets_the_gpu_count_bf16_needs_on_the_same_family(
    parameters: int, family: GpuFamily, want_gpus: int, want_memory_at_least: int
) -> None:
    plan = plan_baseline(parameters, family, FLEET)
    assert isinstance(plan, BaselinePlan), plan
    assert plan.gpus == plan.gpus_per_replica == plan.tensor_parallel_size == want_gpus
    assert plan.min_gpu_memory_mib >= want_memory_at_least
    assert {pool.family for pool in plan.pools} == {family}
    assert plan.dtype == "bfloat16"


def test_baseline_too_big_for_the_family_says_what_it_needs() -> None:
    plan = plan_baseline(400 * B, GpuFamily.TURING, FLEET)
    assert isinstance(plan, str)
    assert "BF16 baseline needs" in plan
    assert "turing" in plan


@pytest.mark.parametrize(
    ("utilization", "want_gpus"),
    [
        pytest.param(0.90, 1, id="vllm-default-share-fits-one-h200"),
        # 40B BF16 with headroom is 96 GB: one 140 GiB H200 at 90% of it, two at half.
        pytest.param(0.50, 2, id="half-of-each-gpu-needs-two"),
    ],
)
def test_baseline_is_sized_with_the_operators_gpu_memory_utilization(
    utilization: float, want_gpus: int
) -> None:
    plan = plan_baseline(40 * B, GpuFamily.HOPPER, FLEET, utilization)
    assert isinstance(plan, BaselinePlan), plan
    assert plan.gpus == want_gpus
