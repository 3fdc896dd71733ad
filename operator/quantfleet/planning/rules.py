"""The rules `scheme: auto` follows, as tables: which scheme per objective and GPU family, and
how a placement policy ranks the GPU kinds that qualify.

Findings of the study, ../shared/reference/quantization.md §1; hardware floors §3.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from quantfleet.api.enums import GpuFamily, Objective, PlacementPolicy, Scheme
from quantfleet.planning.inventory import GpuPool

BLACKWELL: Final = frozenset({GpuFamily.BLACKWELL})
ADA_HOPPER: Final = frozenset({GpuFamily.ADA_LOVELACE, GpuFamily.HOPPER})  # native FP8, §3
TURING_AMPERE: Final = frozenset({GpuFamily.TURING, GpuFamily.AMPERE})  # INT8 era, §1
PRE_BLACKWELL: Final = ADA_HOPPER | TURING_AMPERE


@dataclass(frozen=True)
class AutoRule:
    """For `objective` on these families, try `schemes` in order: the first is the study's pick;
    a later one is the memory-bound step-down when the first does not fit a node."""

    objective: Objective
    families: frozenset[GpuFamily]
    schemes: tuple[Scheme, ...]
    why: str


_MOST_RPS = "W8A8-class serves the most requests/s"
_BALANCED = "8-bit recovers >99% of BF16 and speeds both latency and throughput"
_LOW_LATENCY = "4-bit weights give the lowest single-stream latency (1.3-1.7x)"
_FP8 = "{family} runs FP8 natively"
_INT8 = "INT8 is the 8-bit scheme of {family}"
_FP4 = "{family} runs NVFP4 natively"
_W4 = "{family} runs W4A16 natively"
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
)
# fmt: on

MEMORY_BOUND_WHY: Final = "memory-bound: {first} does not fit a node, and 4-bit weights do"


def auto_rule(objective: Objective, family: GpuFamily) -> AutoRule | None:
    """The rule `auto` follows for an objective on a family, or None (no native scheme)."""
    return next(
        (rule for rule in AUTO_RULES if rule.objective is objective and family in rule.families),
        None,
    )


def meant_for(scheme: Scheme, family: GpuFamily) -> bool:
    """Whether the rules pick `scheme` first on `family` for some objective: the GPUs a scheme
    is meant for (INT8 on Ampere and older, FP8 from Ada, §1). An explicit W8A8 then prefers
    Ampere and leaves Hopper to the scheme it runs best."""
    return any(rule.schemes[0] is scheme and family in rule.families for rule in AUTO_RULES)


# Which GPU kind serves an objective best, as a sort key over (pool, GPUs per replica), smaller
# first. Latency: the newest generation has the fastest kernels (§3: Machete on 9.0, FP8/FP4
# tensor cores), and fewer GPUs mean less tensor-parallel traffic. Throughput: the fewest GPUs per
# replica make the most replicas from the same GPUs, then the newest. Balanced: as latency.
# Compute capabilities compare as numbers ((10, 0) > (9, 0)), never as strings.
PreferenceKey = tuple[float, ...]
Preference = Callable[[GpuPool, int], PreferenceKey]
# What one GPU of a kind costs (any unit, e.g. per hour), by `nvidia.com/gpu.product` or family.
GpuCosts = Mapping[str, float]


def _newest_first(pool: GpuPool, gpus_per_replica: int) -> PreferenceKey:
    cc = pool.compute_capability
    return (-cc.major, -cc.minor, gpus_per_replica, -pool.memory_mib)


def _fewest_gpus_first(pool: GpuPool, gpus_per_replica: int) -> PreferenceKey:
    cc = pool.compute_capability
    return (gpus_per_replica, -cc.major, -cc.minor, -pool.memory_mib)


def _smallest_first(pool: GpuPool, gpus_per_replica: int) -> PreferenceKey:
    """BestFit: the fewest GPUs, then the least memory per GPU in whole GiB (an 80 GB A100 and
    an 80 GB H100 report a few hundred MiB apart), then the oldest generation."""
    cc = pool.compute_capability
    return (gpus_per_replica, round(pool.memory_mib / 1024), cc.major, cc.minor)


MOST_CAPABLE: Final[dict[Objective, Preference]] = {
    Objective.LATENCY: _newest_first,
    Objective.THROUGHPUT: _fewest_gpus_first,
    Objective.BALANCED: _newest_first,
}


def gpu_cost(pool: GpuPool, costs: GpuCosts) -> float | None:
    """One GPU of `pool`, by its nodes' product (the highest, if they differ) or its family;
    None when the cluster gives no cost for it."""
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
    pools: Sequence[GpuPool],
) -> Preference:
    """The sort key `policy` ranks GPU kinds by (smaller first) for `objective` among `pools`."""
    if policy is PlacementPolicy.MOST_CAPABLE:
        return MOST_CAPABLE[objective]
    if policy is PlacementPolicy.CHEAPEST:

        def cheapest(pool: GpuPool, gpus: int) -> PreferenceKey:
            cost = gpu_cost(pool, costs)
            return (math.inf if cost is None else cost * gpus, *_smallest_first(pool, gpus))

        return cheapest
    if policy is PlacementPolicy.FIRST_AVAILABLE:
        # The cluster's node order, as `kubectl get nodes` lists it: no ranking at all.
        order = sorted(pools, key=lambda pool: min(node.name for node in pool.nodes))
        rank = {pool: float(index) for index, pool in enumerate(order)}
        return lambda pool, _gpus: (rank[pool],)
    return _smallest_first
