"""The rules `scheme: auto` follows, as tables: which scheme per objective and GPU family, and
which GPUs an objective prefers.

Findings of the study, ../shared/reference/quantization.md §1; hardware floors §3.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from quantfleet.api.enums import GpuFamily, Objective, Scheme
from quantfleet.planning.inventory import GpuPool

_NATIVE_FP8: Final = frozenset({GpuFamily.ADA_LOVELACE, GpuFamily.HOPPER, GpuFamily.BLACKWELL})
_INT8_ERA: Final = frozenset({GpuFamily.TURING, GpuFamily.AMPERE})
_PRE_BLACKWELL: Final = frozenset(
    {GpuFamily.TURING, GpuFamily.AMPERE, GpuFamily.ADA_LOVELACE, GpuFamily.HOPPER}
)
_ALL_BUT_LATENCY: Final = frozenset({Objective.THROUGHPUT, Objective.BALANCED})


@dataclass(frozen=True)
class AutoRule:
    """For these objectives on these families, try `schemes` in order: the first is the study's
    pick; later ones are the memory-bound step-down when the first does not fit a node."""

    objectives: frozenset[Objective]
    families: frozenset[GpuFamily]
    schemes: tuple[Scheme, ...]
    why: str


# Read top to bottom; the first row matching (objective, family) applies. Volta has no row: no
# scheme runs natively below 7.5 (§3), so auto refuses it rather than guess.
AUTO_RULES: Final[tuple[AutoRule, ...]] = (
    AutoRule(
        _ALL_BUT_LATENCY,
        frozenset({GpuFamily.BLACKWELL}),
        (Scheme.FP8_DYNAMIC, Scheme.NVFP4),
        "W8A8-class serves the most requests/s (§1) and blackwell runs FP8 natively (§3)",
    ),
    AutoRule(
        _ALL_BUT_LATENCY,
        _NATIVE_FP8,
        (Scheme.FP8_DYNAMIC, Scheme.W4A16),
        "W8A8-class serves the most requests/s (§1) and {family} runs FP8 natively (§3)",
    ),
    AutoRule(
        _ALL_BUT_LATENCY,
        _INT8_ERA,
        (Scheme.W8A8, Scheme.W4A16),
        "W8A8-class serves the most requests/s and INT8 is the 8-bit scheme of {family} (§1, §3)",
    ),
    AutoRule(
        frozenset({Objective.LATENCY}),
        frozenset({GpuFamily.BLACKWELL}),
        (Scheme.NVFP4,),
        "4-bit weights cut single-stream latency (§1) and blackwell runs NVFP4 natively (§3)",
    ),
    AutoRule(
        frozenset({Objective.LATENCY}),
        _PRE_BLACKWELL,
        (Scheme.W4A16,),
        "W4A16 gives the lowest single-stream latency (1.3-1.7x, §1) and runs natively on {family}",
    ),
)

MEMORY_BOUND_WHY: Final = "memory-bound: {first} does not fit a node, and 4-bit weights do (§1)"


def auto_rule(objective: Objective, family: GpuFamily) -> AutoRule | None:
    """The rule `auto` follows for an objective on a family, or None (no native scheme)."""
    return next(
        (rule for rule in AUTO_RULES if objective in rule.objectives and family in rule.families),
        None,
    )


# Which GPU kind serves an objective best, as a sort key over (pool, GPUs per replica), smaller
# first. Latency: the newest generation has the fastest kernels (§3: Machete on 9.0, FP8/FP4
# tensor cores), and fewer GPUs mean less tensor-parallel traffic. Throughput: the fewest GPUs per
# replica make the most replicas from the same GPUs, then the newest. Balanced: as latency.
PreferenceKey = tuple[int, int, int, int]


def _newest_first(pool: GpuPool, gpus_per_replica: int) -> PreferenceKey:
    cc = pool.compute_capability
    return (-cc.major, -cc.minor, gpus_per_replica, -pool.memory_mib)


def _fewest_gpus_first(pool: GpuPool, gpus_per_replica: int) -> PreferenceKey:
    cc = pool.compute_capability
    return (gpus_per_replica, -cc.major, -cc.minor, -pool.memory_mib)


POOL_PREFERENCE: Final[dict[Objective, Callable[[GpuPool, int], PreferenceKey]]] = {
    Objective.LATENCY: _newest_first,
    Objective.THROUGHPUT: _fewest_gpus_first,
    Objective.BALANCED: _newest_first,
}
