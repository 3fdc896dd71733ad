"""CPU serving targets: levels from NFD labels, the CPU rows of the compatibility table, serving CPU
nodes in the inventory, and the planner ranking them beside GPUs."""

from typing import Any

import pytest

from factories import make_node
from quantfleet.api.conditions import Reason
from quantfleet.api.enums import CpuLevel, Hardware, Objective, PlacementPolicy, Scheme
from quantfleet.builders.placement import build_pod_placement, build_resources
from quantfleet.planning.baseline import BaselinePlan, plan_cpu_baseline
from quantfleet.planning.compat import BF16, Precision, Support, compatibility
from quantfleet.planning.cpu import LEVEL_FLAGS, cpu_level, flag_label
from quantfleet.planning.inventory import (
    LABEL_CPU_SERVING,
    CpuNode,
    Held,
    SkippedNode,
    build_inventory,
    read_cpu_node,
)
from quantfleet.planning.planner import Plan, PlanRequest, Unplaceable, plan_placement

B = 10**9
NATIVE, FALLBACK, UNSUPPORTED = Support.NATIVE, Support.FALLBACK, Support.UNSUPPORTED
FP8, INT8, W4, FP4 = Scheme.FP8_DYNAMIC, Scheme.W8A8, Scheme.W4A16, Scheme.NVFP4
AMX, BF16_CPU, VNNI, AVX512, AVX2 = (
    CpuLevel.AMX,
    CpuLevel.AVX512_BF16,
    CpuLevel.AVX512_VNNI,
    CpuLevel.AVX512,
    CpuLevel.AVX2,
)


def flags_up_to(level: CpuLevel) -> list[str]:
    """Every cpuid flag a real CPU at `level` carries (its own and every older level's)."""
    return [flag for older in CpuLevel if older.rank <= level.rank for flag in LEVEL_FLAGS[older]]


def cpu_node(
    name: str = "xeon-0",
    level: CpuLevel | None = AMX,
    *,
    cpu: str = "64",
    memory: str = "256Gi",
    opted: str | None = "true",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A Node without GPUs as NFD labels it, opted in to serving unless `opted` says."""
    node_labels = {flag_label(flag): "true" for flag in (flags_up_to(level) if level else [])}
    node_labels["feature.node.kubernetes.io/cpu-model.vendor_id"] = "GenuineIntel"
    if opted is not None:
        node_labels[LABEL_CPU_SERVING] = opted
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    return {
        "metadata": {"name": name, "labels": {**node_labels, **(labels or {})}},
        "spec": {"taints": taints or []},
        "status": {"capacity": dict(allocatable), "allocatable": allocatable},
    }


# ISA level x precision: the verdict every CPU row gives (vllm-cpu.md, vLLM's CPU docs).
TABLE: dict[Precision, dict[CpuLevel, Support]] = {
    INT8: {AMX: NATIVE, BF16_CPU: NATIVE, VNNI: NATIVE, AVX512: FALLBACK, AVX2: FALLBACK},
    W4: {AMX: NATIVE, BF16_CPU: NATIVE, VNNI: NATIVE, AVX512: NATIVE, AVX2: FALLBACK},
    FP8: {AMX: FALLBACK, BF16_CPU: FALLBACK, VNNI: FALLBACK, AVX512: FALLBACK, AVX2: FALLBACK},
    FP4: {level: UNSUPPORTED for level in CpuLevel},
    BF16: {AMX: NATIVE, BF16_CPU: NATIVE, VNNI: FALLBACK, AVX512: FALLBACK, AVX2: FALLBACK},
}


@pytest.mark.parametrize(
    ("precision", "level"),
    [(precision, level) for precision in TABLE for level in CpuLevel],
    ids=lambda value: str(value),
)
def test_each_cpu_row_gives_its_verdict_reason_and_source(
    precision: Precision, level: CpuLevel
) -> None:
    verdict = compatibility(precision, level)

    assert verdict.support is TABLE[precision][level]
    assert verdict.reason.endswith(f"CPU is {level}")
    assert verdict.source.startswith(("measured: vllm-cpu.md", "vLLM CPU installation docs"))


def test_cpu_levels_compare_by_rank_not_by_name() -> None:
    # As strings "avx512-vnni" > "amx"; as hardware AMX is the newest.
    assert [level.rank for level in CpuLevel] == [0, 1, 2, 3, 4]
    assert compatibility(INT8, AMX).support is NATIVE


@pytest.mark.parametrize("level", list(CpuLevel), ids=str)
def test_a_node_is_at_the_newest_level_whose_flags_it_carries(level: CpuLevel) -> None:
    labels = {flag_label(flag): "true" for flag in flags_up_to(level)}
    assert cpu_level(labels) is level


def test_amx_needs_both_tile_flags_and_no_labels_is_no_level() -> None:
    half_amx = {flag_label(f): "true" for f in [*flags_up_to(BF16_CPU), "AMXINT8"]}
    assert cpu_level(half_amx) is BF16_CPU
    assert cpu_level({}) is None


def test_only_opted_in_cpu_nodes_serve() -> None:
    labelled, unlabelled = cpu_node("a"), cpu_node("b", opted=None)
    opted_out = cpu_node("c", opted="false")
    control_plane = cpu_node("d", labels={"node-role.kubernetes.io/control-plane": ""})

    by_label = build_inventory([labelled, unlabelled, opted_out, control_plane])
    by_setting = build_inventory([labelled, unlabelled, opted_out, control_plane], cpu_nodes=True)

    assert [n.name for n in by_label.cpu_nodes] == ["a"]
    assert [n.name for n in by_setting.cpu_nodes] == ["a", "b"]
    assert [n.labelled for n in by_setting.cpu_nodes] == [True, False]


def test_gpu_nodes_stay_gpu_pools_even_with_cpu_labels() -> None:
    gpu = make_node("h100", labels=cpu_node()["metadata"]["labels"])
    inventory = build_inventory([gpu], cpu_nodes=True)

    assert len(inventory.nodes) == 1
    assert inventory.cpu_nodes == ()


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (cpu_node(level=None), "no Node Feature Discovery cpuid labels"),
        (cpu_node(taints=[{"key": "dedicated", "effect": "NoSchedule"}]), "reserved by taint"),
        (cpu_node(cpu="0"), "no allocatable cpu or memory"),
    ],
    ids=["no nfd labels", "tainted", "no allocatable cpu"],
)
def test_an_opted_in_node_that_cannot_serve_is_skipped_with_why(
    node: dict[str, Any], reason: str
) -> None:
    read = read_cpu_node(node)
    assert isinstance(read, SkippedNode)
    assert reason in read.reason


def test_free_cores_and_memory_count_what_pods_hold() -> None:
    read = read_cpu_node(cpu_node(), Held(millicores=40_500, memory_bytes=200 * 2**30))

    assert isinstance(read, CpuNode)
    assert (read.cores, read.free_cores) == (64, 23)
    assert read.free_memory_bytes == 56 * 2**30
    assert read.free_replicas(16, 11 * 2**30) == 1


XEONS = [cpu_node("spr-0", AMX), cpu_node("skx-0", AVX512, cpu="32", memory="128Gi")]
SKYLAKE_ONLY = [cpu_node("skx-0", AVX512, cpu="32", memory="128Gi")]


def plan(nodes: list[dict[str, Any]], **request: Any) -> Plan | Unplaceable:
    fields = {"parameters": 3 * B, "hardware": Hardware.CPU, **request}
    return plan_placement(PlanRequest(**fields), build_inventory(nodes))


def test_auto_on_cpus_picks_int8_on_amx_and_sizes_memory_and_cores() -> None:
    placed = plan(XEONS)

    assert isinstance(placed, Plan)
    assert placed.scheme is INT8
    assert placed.target_levels == (AMX,)
    assert placed.cpu is not None
    assert (placed.cpu.cores, placed.cpu.memory_bytes) == (16, 11 * 2**30)
    assert "INT8 W8A8 runs on the int8 units of amx CPUs" in placed.rationale
    assert "runner-up: W4A16 on cpu avx512" in placed.rationale


def test_int8_is_not_placed_on_a_cpu_without_vnni_or_amx_unless_fallback_is_allowed() -> None:
    refused = plan(SKYLAKE_ONLY, scheme=INT8)
    allowed = plan(SKYLAKE_ONLY, scheme=INT8, allow_fallback=True)
    auto = plan(SKYLAKE_ONLY)

    assert isinstance(refused, Unplaceable)
    assert refused.reason is Reason.NO_COMPATIBLE_CPU
    assert "allow fallback in the spec" in refused.message
    assert "W4A16 run natively there" in refused.message
    assert isinstance(allowed, Plan)
    assert allowed.support is FALLBACK
    assert isinstance(auto, Plan)
    assert auto.scheme is W4  # auto never picks a fallback


def test_nvfp4_on_cpus_is_unplaceable_with_the_reason() -> None:
    verdict = plan(XEONS, scheme=FP4)

    assert isinstance(verdict, Unplaceable)
    assert verdict.reason is Reason.NO_COMPATIBLE_CPU
    assert "vLLM's CPU backend has no NVFP4 kernel" in verdict.message


def test_a_model_bigger_than_every_cpu_nodes_memory_says_the_numbers() -> None:
    verdict = plan(SKYLAKE_ONLY, parameters=400 * B, scheme=W4)

    assert isinstance(verdict, Unplaceable)
    assert verdict.reason is Reason.INSUFFICIENT_NODE_MEMORY
    assert "400B at W4A16 needs 228 GiB and 16 cores per CPU replica" in verdict.message
    assert "the largest CPU node has 128 GiB allocatable" in verdict.message


def test_full_cpu_nodes_wait_for_free_cores() -> None:
    held = {"spr-0": Held(millicores=60_000)}
    verdict = plan_placement(
        PlanRequest(3 * B, hardware=Hardware.CPU), build_inventory(XEONS[:1], held)
    )

    assert isinstance(verdict, Unplaceable)
    assert verdict.reason is Reason.INSUFFICIENT_FREE_CPU
    assert "4 cores free" in verdict.message


def test_no_serving_cpu_nodes_is_its_own_reason() -> None:
    verdict = plan([cpu_node(opted=None)])

    assert isinstance(verdict, Unplaceable)
    assert verdict.reason is Reason.NO_CPU_NODES


CONTROL_PLANE = {"node-role.kubernetes.io/control-plane": ""}


@pytest.mark.parametrize(
    ("nodes", "want_message"),
    [
        (
            [cpu_node("xeon-0", opted=None)],
            "no CPU nodes opted in to serving: 1 node with Node Feature Discovery cpuid labels "
            f"but without {LABEL_CPU_SERVING}=true (xeon-0); label those that should serve "
            f"(`kubectl label node xeon-0 {LABEL_CPU_SERVING}=true`) or serve every such node "
            "with the operator's --cpu-nodes",
        ),
        (
            [cpu_node(f"xeon-{i}", opted=None) for i in range(5)],
            "no CPU nodes opted in to serving: 5 nodes with Node Feature Discovery cpuid labels "
            f"but without {LABEL_CPU_SERVING}=true (xeon-0, xeon-1, xeon-2, and 2 more); "
            f"label those that should serve (`kubectl label node xeon-0 {LABEL_CPU_SERVING}="
            "true`) or serve every such node with the operator's --cpu-nodes",
        ),
        (
            [cpu_node("a", opted="false"), cpu_node("b", opted=None, labels=CONTROL_PLANE)],
            f"no CPU nodes opted in to serving ({LABEL_CPU_SERVING}=true or the operator's "
            "--cpu-nodes)",
        ),
        (
            [cpu_node("plain", level=None, opted=None)],
            f"no CPU nodes opted in to serving ({LABEL_CPU_SERVING}=true or the operator's "
            "--cpu-nodes)",
        ),
    ],
    ids=[
        "an nfd node without the label is named with the command that opts it in",
        "many such nodes are counted and the list bounded",
        "opted out and control-plane nodes get no hint to opt in",
        "a node without nfd cpuid labels gets no hint",
    ],
)
def test_no_cpu_nodes_names_the_nodes_that_lack_only_the_opt_in_label(
    nodes: list[dict[str, Any]], want_message: str
) -> None:
    verdict = plan(nodes)

    assert isinstance(verdict, Unplaceable)
    assert verdict.reason is Reason.NO_CPU_NODES
    assert verdict.message == want_message


MIXED = [*XEONS, make_node("l40s", name="l40s-0"), make_node("h100", name="h100-0")]


@pytest.mark.parametrize(
    ("policy", "parameters", "want_cpu"),
    [
        (PlacementPolicy.BEST_FIT, 3 * B, True),  # the smallest hardware: every GPU stays free
        (PlacementPolicy.MOST_CAPABLE, 3 * B, False),
        (PlacementPolicy.BEST_FIT, 72 * B, False),  # above the CPU cap: GPUs only
    ],
    ids=["best fit keeps gpus free", "most capable takes a gpu", "72b never on cpu"],
)
def test_any_hardware_ranks_cpu_pools_beside_gpus(
    policy: PlacementPolicy, parameters: int, want_cpu: bool
) -> None:
    placed = plan(MIXED, parameters=parameters, hardware=Hardware.ANY, policy=policy)

    assert isinstance(placed, Plan)
    assert (placed.cpu is not None) is want_cpu
    if parameters > 8 * B:
        assert "CPUs not considered above 8B" in placed.rationale


def test_cheapest_prices_a_cpu_replica_by_its_cores() -> None:
    def cheapest(cpu_core_cost: float) -> Plan | Unplaceable:
        costs = {"cpu": cpu_core_cost, "ada-lovelace": 1.0, "hopper": 4.0}
        return plan(MIXED, hardware=Hardware.ANY, policy=PlacementPolicy.CHEAPEST, gpu_costs=costs)

    cheap_cores, dear_cores = cheapest(0.05), cheapest(0.5)  # 16 cores: 0.8 or 8.0 per replica

    assert isinstance(cheap_cores, Plan)
    assert isinstance(dear_cores, Plan)
    assert cheap_cores.cpu is not None
    assert dear_cores.cpu is None
    assert dear_cores.target_families[0] == "ada-lovelace"


def test_gpu_only_requests_never_see_cpu_pools() -> None:
    placed = plan(MIXED, hardware=Hardware.GPU, objective=Objective.LATENCY)

    assert isinstance(placed, Plan)
    assert placed.cpu is None
    assert placed.target_levels == ()


def test_the_bf16_baseline_of_a_cpu_model_runs_on_its_cpu_levels() -> None:
    inventory = build_inventory(XEONS)

    placed = plan_cpu_baseline(3 * B, (AMX,), inventory, 16, 4)
    too_big = plan_cpu_baseline(200 * B, (AMX,), inventory, 16, 4)

    assert isinstance(placed, BaselinePlan)
    assert placed.cpu is not None
    assert placed.cpu.memory_bytes == 14 * 2**30  # 6 GB of BF16 weights + 4 KV + 4 runtime
    assert [pool.level for pool in placed.cpu_pools] == [AMX]  # the quantized side's level only
    assert isinstance(too_big, str)
    assert "needs 381 GiB and 16 cores per CPU replica" in too_big
    assert "at amx has 256 GiB" in too_big
    resources = build_resources(placed)
    assert resources["requests"] == {"cpu": "16", "memory": "14Gi"}
    assert "nodeAffinity" in build_pod_placement(placed)["affinity"]
