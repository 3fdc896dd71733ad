"""The planner: the study's scheme per objective and GPU, sizes that fit, and refusals that say
what to do."""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import GPU_CATALOG, GPU_TAINT, make_fleet, make_inventory, make_node
from quantfleet.api.conditions import Reason
from quantfleet.api.enums import GpuFamily, Objective, PlacementPolicy, Scheme
from quantfleet.api.settings import OperatorSettings
from quantfleet.planning.capacity import usable_bytes
from quantfleet.planning.compat import Support, compatibility
from quantfleet.planning.gpu import ComputeCapability
from quantfleet.planning.inventory import Inventory, build_inventory
from quantfleet.planning.planner import (
    Plan,
    PlanRequest,
    Unplaceable,
    plan_placement,
)

B = 10**9
AUTO, FP8, INT8, W4A16, NVFP4 = (
    Scheme.AUTO,
    Scheme.FP8_DYNAMIC,
    Scheme.W8A8,
    Scheme.W4A16,
    Scheme.NVFP4,
)
LATENCY, THROUGHPUT, BALANCED = Objective.LATENCY, Objective.THROUGHPUT, Objective.BALANCED
MOST_CAPABLE = PlacementPolicy.MOST_CAPABLE
Kind = str | tuple[str, int]


@dataclass(frozen=True)
class Case:
    id: str
    fleet: tuple[Kind, ...]
    request: PlanRequest
    want_scheme: Scheme | None = None
    want_families: tuple[str, ...] = ()
    want_gpus: int | None = None
    want_support: Support = Support.NATIVE
    want_rationale: tuple[str, ...] = ()
    want_reason: Reason | None = None
    want_message: tuple[str, ...] = field(default_factory=tuple)


def ask(
    params: int, objective: Objective = BALANCED, scheme: Scheme = AUTO, **kw: Any
) -> PlanRequest:
    return PlanRequest(parameters=params, objective=objective, scheme=scheme, **kw)


CASES = [
    # auto follows the study (§1) per objective and GPU.
    Case(
        "throughput on hopper gets fp8",
        ("h100",),
        ask(72 * B, THROUGHPUT),
        FP8,
        ("hopper",),
        2,
        want_rationale=(
            "auto chose FP8_DYNAMIC for throughput",
            "hopper runs FP8 natively",
            "72B needs",
        ),
    ),
    Case(
        "throughput on a100 gets int8, two gpus as in the study",
        ("a100",),
        ask(72 * B, THROUGHPUT),
        INT8,
        ("ampere",),
        2,
    ),
    Case("throughput on t4 gets int8", (("t4", 1),), ask(3 * B, THROUGHPUT), INT8, ("turing",), 1),
    Case("balanced on l40s gets fp8", (("l40s", 4),), ask(7 * B), FP8, ("ada-lovelace",), 1),
    Case(
        "latency on a100 gets w4a16 on one gpu as in the study",
        ("a100",),
        ask(72 * B, LATENCY),
        W4A16,
        ("ampere",),
        1,
    ),
    Case("latency on hopper gets w4a16", ("h100",), ask(72 * B, LATENCY), W4A16, ("hopper",), 1),
    Case(
        "latency on blackwell gets nvfp4", ("b200",), ask(72 * B, LATENCY), NVFP4, ("blackwell",), 1
    ),
    Case(
        "throughput on blackwell gets fp8",
        ("b200",),
        ask(72 * B, THROUGHPUT),
        FP8,
        ("blackwell",),
        1,
    ),
    Case(
        "most capable: a mixed fleet keeps fp8 off the a100s",
        ("h100", "a100"),
        ask(72 * B, THROUGHPUT, policy=MOST_CAPABLE),
        FP8,
        ("hopper",),
        2,
    ),
    Case(
        "best fit: the same size of gpu, the older generation serves int8 and hopper stays free",
        ("h100", "a100"),
        ask(72 * B, THROUGHPUT),
        INT8,
        ("ampere", "hopper"),
        2,
        want_rationale=("by BestFit", "runner-up: FP8_DYNAMIC on 2 x hopper 80 GiB"),
    ),
    Case(
        "a fleet without fp8 serves int8 on every gpu that holds it, the smallest first",
        ("a100", "t4"),
        ask(7 * B, THROUGHPUT),
        INT8,
        ("turing", "ampere"),
        1,
    ),
    Case(
        "most capable: latency ranks hopper before ampere for w4a16",
        ("a100", "h100"),
        ask(72 * B, LATENCY, policy=MOST_CAPABLE),
        W4A16,
        ("hopper", "ampere"),
        1,
    ),
    Case(
        "best fit: latency on the older of two 80 gb gpus for w4a16",
        ("a100", "h100"),
        ask(72 * B, LATENCY),
        W4A16,
        ("ampere", "hopper"),
        1,
    ),
    Case(
        "memory-bound: 8-bit 72b does not fit four l4s, so w4a16",
        (("l4", 4),),
        ask(72 * B, THROUGHPUT),
        W4A16,
        ("ada-lovelace",),
        4,
        want_rationale=("memory-bound", "FP8_DYNAMIC does not fit"),
    ),
    Case(
        "memory-bound on ampere steps down from int8",
        (("a6000", 1),),
        ask(40 * B, THROUGHPUT),
        W4A16,
        ("ampere",),
        1,
    ),
    # A requested scheme is checked, sized and placed.
    Case(
        "fp8 requested lands on ada and hopper only, the smaller l40s first",
        ("h100", ("l40s", 4), "a100"),
        ask(7 * B, scheme=FP8),
        FP8,
        ("ada-lovelace", "hopper"),
        1,
        want_rationale=("FP8_DYNAMIC as requested", "native FP8"),
    ),
    Case(
        "fp8 on a100 with fallback allowed loads as weight-only",
        ("a100",),
        ask(7 * B, scheme=FP8, allow_fallback=True),
        FP8,
        ("ampere",),
        1,
        want_support=Support.FALLBACK,
        want_rationale=("fallback allowed",),
    ),
    Case(
        "fallback gpus stay out when a native gpu fits",
        ("h100", "a100"),
        ask(7 * B, scheme=FP8, allow_fallback=True),
        FP8,
        ("hopper",),
        1,
    ),
    Case(
        "int8 requested on blackwell only with fallback",
        ("b200",),
        ask(7 * B, scheme=INT8, allow_fallback=True),
        INT8,
        ("blackwell",),
        1,
        want_support=Support.FALLBACK,
    ),
    Case(
        "a fixed gpu count is honoured",
        ("a100",),
        ask(72 * B, scheme=INT8, gpus_per_replica=4),
        INT8,
        ("ampere",),
        4,
    ),
    Case(
        "tensor parallelism divides 28 heads",
        (("l4", 8),),
        ask(32 * B, scheme=INT8, attention_heads=28),
        INT8,
        ("ada-lovelace",),
        2,
    ),
    Case(
        "an unknown product is placed by its labels",
        ("mystery",),
        ask(7 * B, THROUGHPUT),
        FP8,
        ("hopper",),
        1,
    ),
    # Refusals name what exists and what would be needed.
    Case(
        "fp8 on an ampere-only fleet is refused with the way out",
        ("a100", ("a6000", 4)),
        ask(7 * B, scheme=FP8),
        want_reason=Reason.NO_COMPATIBLE_GPU,
        want_message=(
            "runs natively on ada-lovelace, hopper, blackwell",
            "ampere (8.0)",
            "ampere (8.6)",
            "allow fallback",
            "W4A16, W8A8 run natively there",
        ),
    ),
    Case(
        "nvfp4 without blackwell is refused",
        ("h100",),
        ask(7 * B, scheme=NVFP4),
        want_reason=Reason.NO_COMPATIBLE_GPU,
        want_message=("runs natively on blackwell", "hopper (9.0)"),
    ),
    Case(
        "int8 on blackwell is not guessed",
        ("b200",),
        ask(7 * B, scheme=INT8),
        want_reason=Reason.NO_COMPATIBLE_GPU,
        want_message=("allow fallback", "FP8_DYNAMIC", "NVFP4"),
    ),
    Case(
        "fp8 on turing has no fallback and no native family there",
        (("t4", 1),),
        ask(7 * B, scheme=FP8),
        want_reason=Reason.NO_COMPATIBLE_GPU,
        want_message=("turing (7.5)", "W8A8 run natively there"),
    ),
    Case(
        "auto on volta names the families each scheme needs",
        ("v100",),
        ask(7 * B),
        want_reason=Reason.NO_COMPATIBLE_GPU,
        want_message=(
            "volta (7.0)",
            "W8A8 needs turing",
            "FP8_DYNAMIC needs ada-lovelace",
            "NVFP4 needs blackwell",
        ),
    ),
    Case(
        "72b int8 on one-gpu l4 nodes asks for more gpus or a smaller scheme",
        (("l4", 1),),
        ask(72 * B, scheme=INT8),
        want_reason=Reason.INSUFFICIENT_GPU_MEMORY,
        want_message=(
            "72B at W8A8 needs 90.7 GB",
            "1 x ada-lovelace 22 GiB",
            "nodes with 8 such GPUs",
        ),
    ),
    Case(
        "a fixed gpu count that cannot hold the model says so",
        ("a100",),
        ask(72 * B, scheme=INT8, gpus_per_replica=1),
        want_reason=Reason.INSUFFICIENT_GPU_MEMORY,
        want_message=("fixes 1 GPUs per replica", "W4A16 (51.0 GB)"),
    ),
    Case(
        "auto when nothing fits names the smallest scheme's need",
        (("t4", 1),),
        ask(400 * B),
        want_reason=Reason.INSUFFICIENT_GPU_MEMORY,
        want_message=("400B at W4A16 needs",),
    ),
    Case(
        "an empty inventory is said plainly",
        (),
        ask(7 * B),
        want_reason=Reason.NO_GPU_NODES,
        want_message=("no GPU nodes",),
    ),
]


def _inventory(fleet: tuple[Kind, ...]) -> Inventory:
    if fleet == ("mystery",):
        node = make_node(
            "h100",
            labels={
                "nvidia.com/gpu.product": "NVIDIA-Next-Big-Thing",
                "nvidia.com/gpu.family": None,
            },
        )
        return build_inventory([node])
    return make_inventory(*fleet)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_placement(case: Case) -> None:
    result = plan_placement(case.request, _inventory(case.fleet))

    if case.want_reason is not None:
        assert isinstance(result, Unplaceable), result
        assert result.reason is case.want_reason
        for fragment in case.want_message:
            assert fragment in result.message
        assert len(result.message) <= 512
        return
    assert isinstance(result, Plan), result
    assert result.scheme is case.want_scheme
    assert result.target_families == case.want_families
    assert result.gpus_per_replica == result.tensor_parallel_size == case.want_gpus
    assert result.support is case.want_support
    for fragment in case.want_rationale:
        assert fragment in result.rationale
    assert len(result.rationale) <= 512


def test_gpu_taints_of_the_targets_are_carried_for_tolerations() -> None:
    inventory = build_inventory(
        [make_node("h100", taints=[GPU_TAINT]), make_node("a100", name="a100-0")]
    )

    result = plan_placement(ask(7 * B, THROUGHPUT), inventory)

    assert isinstance(result, Plan)
    assert [str(t) for t in result.gpu_taints] == ["nvidia.com/gpu=present:NoSchedule"]


def test_all_nodes_skipped_names_why() -> None:
    inventory = build_inventory(
        [make_node("h100", taints=[{"key": "team", "effect": "NoExecute"}])]
    )

    result = plan_placement(ask(7 * B), inventory)

    assert isinstance(result, Unplaceable)
    assert result.reason is Reason.NO_GPU_NODES
    assert "reserved by taint team:NoExecute" in result.message


@pytest.mark.parametrize(
    ("fields", "want_error"),
    [
        pytest.param({"parameters": -1}, "parameter count must be positive", id="negative size"),
        pytest.param(
            {"parameters": 7 * B, "attention_heads": 0}, "attention head", id="zero heads"
        ),
        pytest.param(
            {"parameters": 7 * B, "gpus_per_replica": 0}, "GPUs per replica", id="zero gpus"
        ),
        pytest.param(
            {"parameters": 7 * B, "gpu_memory_utilization": 1.5}, "utilization", id="over 100%"
        ),
    ],
)
def test_nonsense_requests_are_rejected(fields: dict[str, float], want_error: str) -> None:
    with pytest.raises(ValueError, match=want_error):
        PlanRequest(**fields)


@pytest.mark.parametrize(
    ("utilization", "want_gpus", "want_min_memory_mib"),
    [
        # 72B W8A8 with headroom is 90.7 GB: two 80 GB A100s at vLLM's 90%, four at half.
        pytest.param(0.90, 2, math.ceil(90.72e9 / 2 / 0.90 / 2**20), id="vllm-default-share"),
        pytest.param(0.50, 4, math.ceil(90.72e9 / 4 / 0.50 / 2**20), id="half-of-each-gpu"),
    ],
)
def test_plans_are_sized_with_the_requested_gpu_memory_utilization(
    utilization: float, want_gpus: int, want_min_memory_mib: int
) -> None:
    request = ask(72 * B, scheme=INT8, gpu_memory_utilization=utilization)

    result = plan_placement(request, make_inventory("a100"))

    assert isinstance(result, Plan), result
    assert result.gpus_per_replica == want_gpus
    assert result.min_gpu_memory_mib == want_min_memory_mib
    assert result.parameters == 72 * B


def test_the_operator_setting_and_the_planner_default_to_one_share() -> None:
    # OperatorSettings.gpu_memory_utilization is what vLLM is started with and what the
    # handlers plan with; a plan made without it (quantfleet plan) uses the same default.
    assert PlanRequest(7 * B).gpu_memory_utilization == OperatorSettings().gpu_memory_utilization


# Property tests over random fleets drawn from the catalogue.
gpu_kinds = st.tuples(st.sampled_from(sorted(GPU_CATALOG)), st.sampled_from([1, 2, 4, 8]))
fleets = st.lists(gpu_kinds, min_size=1, max_size=5)
requests = st.builds(
    PlanRequest,
    parameters=st.integers(min_value=5 * 10**8, max_value=10**12),
    objective=st.sampled_from(list(Objective)),
    scheme=st.sampled_from(list(Scheme)),
    allow_fallback=st.booleans(),
    attention_heads=st.none() | st.sampled_from([16, 28, 32, 40, 64, 96]),
)
FP8_FLOOR, FP4_FLOOR = ComputeCapability(8, 9), ComputeCapability(10, 0)


def _plan(fleet: list[tuple[str, int]], request: PlanRequest) -> Plan | Unplaceable:
    return plan_placement(request, make_inventory(*fleet))


@settings(max_examples=300)
@given(fleet=fleets, request=requests)
def test_no_plan_puts_fp8_below_8_9_or_nvfp4_below_10_0(
    fleet: list[tuple[str, int]], request: PlanRequest
) -> None:
    result = _plan(fleet, request)
    explicit_fallback = request.allow_fallback and request.scheme is not Scheme.AUTO
    floors = {FP8: FP8_FLOOR, NVFP4: FP4_FLOOR}

    if isinstance(result, Plan) and result.scheme in floors and not explicit_fallback:
        ccs = [t.pool.compute_capability for t in result.targets]
        assert min(ccs) >= floors[result.scheme]


@settings(max_examples=300)
@given(fleet=fleets, request=requests)
def test_every_target_runs_the_scheme_as_admitted(
    fleet: list[tuple[str, int]], request: PlanRequest
) -> None:
    result = _plan(fleet, request)
    allow = request.allow_fallback and request.scheme is not Scheme.AUTO

    if isinstance(result, Plan):
        assert result.targets
        for target in result.targets:
            verdict = compatibility(result.scheme, target.pool.compute_capability)
            assert verdict.admitted(allow)
            assert target.support is verdict.support
        if request.scheme is not Scheme.AUTO:
            assert result.scheme is request.scheme
    else:
        assert len(result.message) <= 512


@settings(max_examples=300)
@given(fleet=fleets, request=requests)
def test_every_plan_fits_its_gpus(fleet: list[tuple[str, int]], request: PlanRequest) -> None:
    result = _plan(fleet, request)

    if isinstance(result, Plan):
        for target in result.targets:
            assert target.pool.max_gpus_per_node >= result.gpus_per_replica
            assert target.pool.memory_mib >= result.min_gpu_memory_mib
            fits = result.gpus_per_replica * usable_bytes(target.pool.memory_mib)
            assert result.required_bytes <= fits
        if request.attention_heads:
            assert request.attention_heads % result.tensor_parallel_size == 0
        weights = [t.weight for t in result.targets]
        assert weights == sorted(weights, reverse=True)
        assert all(1 <= w <= 100 for w in weights)


@given(fleet=fleets, request=requests)
def test_nvfp4_lands_only_on_blackwell_unless_fallback_is_allowed(
    fleet: list[tuple[str, int]], request: PlanRequest
) -> None:
    result = _plan(fleet, request)
    explicit_fallback = request.allow_fallback and request.scheme is not Scheme.AUTO

    if isinstance(result, Plan) and result.scheme is NVFP4 and not explicit_fallback:
        assert set(result.target_families) == {GpuFamily.BLACKWELL}


def test_the_fleet_factory_covers_the_catalogue() -> None:
    assert len(make_fleet(*GPU_CATALOG)) == len(GPU_CATALOG)


def test_a_whole_catalogue_fleet_plans_every_objective(
    inventory_factory: Callable[..., Inventory],
) -> None:
    inventory = inventory_factory(*GPU_CATALOG)

    schemes = {o: plan_placement(ask(70 * B, o, policy=MOST_CAPABLE), inventory) for o in Objective}

    assert {o: getattr(p, "scheme", None) for o, p in schemes.items()} == {
        THROUGHPUT: FP8,
        BALANCED: FP8,
        LATENCY: NVFP4,
    }


@pytest.mark.parametrize(
    ("scheme", "want_first"),
    [
        pytest.param(Scheme.W8A8, "ampere", id="int8-prefers-ampere-leaving-hopper-to-fp8"),
        pytest.param(Scheme.FP8_DYNAMIC, "hopper", id="fp8-prefers-the-gpus-with-fp8-cores"),
    ],
)
def test_an_explicit_scheme_prefers_the_gpus_it_is_meant_for(
    scheme: Scheme, want_first: str
) -> None:
    plan = plan_placement(
        PlanRequest(parameters=7 * 10**9, scheme=scheme), make_inventory("h100", "a100")
    )
    assert isinstance(plan, Plan)
    assert plan.target_families[0] == want_first
