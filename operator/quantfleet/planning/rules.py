"""The rules `scheme: auto` follows, as tables: which scheme per objective and GPU family or CPU
level, and how a placement policy ranks the GPU kinds and CPU pools that qualify.

Findings of the study, ../shared/reference/quantization.md §1; hardware floors §3; CPU kernels
../shared/reference/vllm-cpu.md.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from quantfleet.api.enums import CpuLevel, GpuFamily, Objective, PlacementPolicy, Scheme
from quantfleet.planning.inventory import CpuPool, GpuPool

Kind = GpuFamily | CpuLevel  # what an auto rule is keyed by
Pool = GpuPool | CpuPool

BLACKWELL: Final = frozenset({GpuFamily.BLACKWELL})
ADA_HOPPER: Final = frozenset({GpuFamily.ADA_LOVELACE, GpuFamily.HOPPER})  # native FP8, §3
TURING_AMPERE: Final = frozenset({GpuFamily.TURING, GpuFamily.AMPERE})  # INT8 era, §1
PRE_BLACKWELL: Final = ADA_HOPPER | TURING_AMPERE
INT8_CPUS: Final = frozenset({CpuLevel.AMX, CpuLevel.AVX512_BF16, CpuLevel.AVX512_VNNI})
# AVX2-only CPUs have no row: nothing runs natively there (vLLM's CPU docs want AVX512F).
CPUS: Final = frozenset(CpuLevel) - {CpuLevel.AVX2}
OTHER_CPUS: Final = CPUS - INT8_CPUS
# `auto`, and `hardware: any`, consider CPUs only for models up to this size: a CPU serves a 3B
# VLM for captioning or tagging at useful speed, never a 72B one. `hardware: cpu` has no cap.
CPU_MAX_PARAMETERS: Final = 8 * 10**9


@dataclass(frozen=True)
class AutoRule:
    """For `objective` on these families, try `schemes` in order: the first is the study's pick;
    a later one is the memory-bound step-down when the first does not fit a node."""

    objective: Objective
    families: frozenset[GpuFamily] | frozenset[CpuLevel]
    schemes: tuple[Scheme, ...]
    why: str


_MOST_RPS = "W8A8-class serves the most requests/s"
_BALANCED = "8-bit recovers >99% of BF16 and speeds both latency and throughput"
_LOW_LATENCY = "4-bit weights give the lowest single-stream latency (1.3-1.7x)"
_FP8 = "{family} runs FP8 natively"
_INT8 = "INT8 is the 8-bit scheme of {family}"
_FP4 = "{family} runs NVFP4 natively"
_W4 = "{family} runs W4A16 natively"
_CPU_INT8 = "INT8 W8A8 runs on the int8 units of {family} CPUs"
_CPU_W4 = (
    "without AVX512-VNNI or AMX INT8 is a fallback; weight-only W4A16 runs natively on {family}"
)
FP8, INT8, W4A16, NVFP4 = Scheme.FP8_DYNAMIC, Scheme.W8A8, Scheme.W4A16, Scheme.NVFP4
THROUGHPUT, BALANCED, LATENCY = Objective.THROUGHPUT, Objective.BALANCED, Objective.LATENCY

# The first row matching (objective, family) applies. Volta has no row: no scheme runs natively
# below 7.5 (§3), so auto refuses it rather than guess. NVFP4 appears only with Blackwell.
# fmt: off
AUTO_RULES: Final[tuple[AutoRule, ...]] = (
    #        objective   families       pick, step-down  why
    AutoRule(THROUGHPUT, BLACKWELL,     (FP8, NVFP4),    f"{_MOST_RPS}; {_FP8}"),
    AutoRule(THROUGHPUT, ADA_HOPPER,    (FP8, W4A16),    f"{_MOST_RPS}; {_FP8}"),
    AutoRule(THROUGHPUT, TURING_AMPERE, (INT8, W4A16),   f"{_MOST_RPS}; {_INT8}"),
    AutoRule(BALANCED,   BLACKWELL,     (FP8, NVFP4),    f"{_BALANCED}; {_FP8}"),
    AutoRule(BALANCED,   ADA_HOPPER,    (FP8, W4A16),    f"{_BALANCED}; {_FP8}"),
    AutoRule(BALANCED,   TURING_AMPERE, (INT8, W4A16),   f"{_BALANCED}; {_INT8}"),
    AutoRule(LATENCY,    BLACKWELL,     (NVFP4,),        f"{_LOW_LATENCY}; {_FP4}"),
    AutoRule(LATENCY,    PRE_BLACKWELL, (W4A16,),        f"{_LOW_LATENCY}; {_W4}"),
    AutoRule(THROUGHPUT, INT8_CPUS,     (INT8, W4A16),   f"{_MOST_RPS}; {_CPU_INT8}"),
    AutoRule(BALANCED,   INT8_CPUS,     (INT8, W4A16),   f"{_BALANCED}; {_CPU_INT8}"),
    AutoRule(THROUGHPUT, OTHER_CPUS,    (W4A16,),        _CPU_W4),
    AutoRule(BALANCED,   OTHER_CPUS,    (W4A16,),        _CPU_W4),
    AutoRule(LATENCY,    CPUS,          (W4A16,),        f"{_LOW_LATENCY}; {_W4}"),
)
# fmt: on

MEMORY_BOUND_WHY: Final = "memory-bound: {first} does not fit a node, and 4-bit weights do"


def auto_rule(objective: Objective, family: Kind) -> AutoRule | None:
    """The rule `auto` follows for an objective on a GPU family or CPU level, or None (no
    native scheme)."""
    return next(
        (rule for rule in AUTO_RULES if rule.objective is objective and family in rule.families),
        None,
    )


def meant_for(scheme: Scheme, family: Kind) -> bool:
    """Whether the rules pick `scheme` first on `family` for some objective: the GPUs a scheme
    is meant for (INT8 on Ampere and older, FP8 from Ada, §1). An explicit W8A8 then prefers
    Ampere and leaves Hopper to the scheme it runs best."""
    return any(rule.schemes[0] is scheme and family in rule.families for rule in AUTO_RULES)


# Which GPU kind serves an objective best, as a sort key over (pool, GPUs per replica), smaller
# first. Latency: the newest generation has the fastest kernels (§3: Machete on 9.0, FP8/FP4
# tensor cores), and fewer GPUs mean less tensor-parallel traffic. Throughput: the fewest GPUs per
# replica make the most replicas from the same GPUs, then the newest. Balanced: as latency.
# Compute capabilities compare as numbers ((10, 0) > (9, 0)), never as strings.
# A CPU pool ranks as a replica of no GPUs: first where the policy wants the smallest hardware
# (BestFit keeps every GPU free), after every GPU where it wants the most capable.
PreferenceKey = tuple[float, ...]
Preference = Callable[[Pool, int], PreferenceKey]
# What one GPU of a kind costs (any unit, e.g. per hour), by `nvidia.com/gpu.product` or family;
# the key `cpu` prices one CPU core of a serving CPU node.
GpuCosts = Mapping[str, float]
CPU_COST_KEY: Final = "cpu"


def _newest_first(pool: Pool, gpus_per_replica: int) -> PreferenceKey:
    if isinstance(pool, CpuPool):
        return (math.inf, -pool.level.rank, 0, -pool.max_memory_bytes)
    cc = pool.compute_capability
    return (-cc.major, -cc.minor, gpus_per_replica, -pool.memory_mib)


def _fewest_gpus_first(pool: Pool, gpus_per_replica: int) -> PreferenceKey:
    if isinstance(pool, CpuPool):
        return (math.inf, -pool.level.rank, 0, -pool.max_memory_bytes)
    cc = pool.compute_capability
    return (gpus_per_replica, -cc.major, -cc.minor, -pool.memory_mib)


def _smallest_first(pool: Pool, gpus_per_replica: int) -> PreferenceKey:
    """BestFit: a CPU node (no GPU at all; the most capable CPU level first), then the fewest
    GPUs, then the least memory per GPU in whole GiB (an 80 GB A100 and an 80 GB H100 report a
    few hundred MiB apart), then the oldest generation."""
    if isinstance(pool, CpuPool):
        return (0, -pool.level.rank, 0, 0)
    cc = pool.compute_capability
    return (gpus_per_replica, round(pool.memory_mib / 1024), cc.major, cc.minor)


MOST_CAPABLE: Final[dict[Objective, Preference]] = {
    Objective.LATENCY: _newest_first,
    Objective.THROUGHPUT: _fewest_gpus_first,
    Objective.BALANCED: _newest_first,
}


def gpu_cost(pool: Pool, costs: GpuCosts) -> float | None:
    """One GPU of `pool`, by its nodes' product (the highest, if they differ) or its family;
    for a CPU pool one core (`cpu`). None when the cluster gives no cost for it."""
    if isinstance(pool, CpuPool):
        return costs.get(CPU_COST_KEY)
    known = [
        costs[node.product] if node.product and node.product in costs else costs.get(pool.family)
        for node in pool.nodes
    ]
    priced = [cost for cost in known if cost is not None]
    return max(priced) if priced else None


def pool_preference(
    policy: PlacementPolicy,
    objective: Objective,
    costs: GpuCosts,
    pools: Sequence[Pool],
    cpu_cores: int = 1,
) -> Preference:
    """The sort key `policy` ranks GPU kinds and CPU pools by (smaller first) for `objective`
    among `pools`; a CPU replica takes `cpu_cores` cores."""
    if policy is PlacementPolicy.MOST_CAPABLE:
        return MOST_CAPABLE[objective]
    if policy is PlacementPolicy.CHEAPEST:

        def cheapest(pool: Pool, gpus: int) -> PreferenceKey:
            cost = gpu_cost(pool, costs)
            units = cpu_cores if isinstance(pool, CpuPool) else gpus
            return (math.inf if cost is None else cost * units, *_smallest_first(pool, gpus))

        return cheapest
    if policy is PlacementPolicy.FIRST_AVAILABLE:
        # The cluster's node order, as `kubectl get nodes` lists it: no ranking at all.
        order = sorted(pools, key=lambda pool: min(node.name for node in pool.nodes))
        rank = {pool: float(index) for index, pool in enumerate(order)}
        return lambda pool, _gpus: (rank[pool],)
    return _smallest_first
