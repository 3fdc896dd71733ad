"""CPUs as Node Feature Discovery labels them: the instruction-set level vLLM's CPU backend cares
about, from `feature.node.kubernetes.io/cpu-cpuid.<FLAG>=true` labels.

Facts: NFD's cpuid feature labels (the flag names are cpuid's: AMXINT8, AVX512VNNI, ...);
../shared/reference/vllm-cpu.md for what vLLM's CPU build does with them.
"""

from collections.abc import Mapping
from typing import Final

from quantfleet.api.enums import CpuLevel

NFD_CPUID: Final = "feature.node.kubernetes.io/cpu-cpuid."
LABEL_CPU_VENDOR: Final = "feature.node.kubernetes.io/cpu-model.vendor_id"

# The flags that make each level, newest first: a node is at the first level whose flags it all
# carries. Real CPUs with a level carry every flag below it too.
LEVEL_FLAGS: Final[dict[CpuLevel, tuple[str, ...]]] = {
    CpuLevel.AMX: ("AMXINT8", "AMXBF16"),
    CpuLevel.AVX512_BF16: ("AVX512BF16",),
    CpuLevel.AVX512_VNNI: ("AVX512VNNI",),
    CpuLevel.AVX512: ("AVX512F",),
    CpuLevel.AVX2: ("AVX2",),
}


def flag_label(flag: str) -> str:
    """`AMXINT8` -> `feature.node.kubernetes.io/cpu-cpuid.AMXINT8`."""
    return NFD_CPUID + flag


def level_labels(level: CpuLevel) -> tuple[str, ...]:
    """The NFD labels (each `true`) a node at `level` carries for it."""
    return tuple(flag_label(flag) for flag in LEVEL_FLAGS[level])


def cpu_level(labels: Mapping[str, str]) -> CpuLevel | None:
    """The newest level whose labels the node carries; None without even AVX2 (or without NFD)."""
    return next(
        (
            level
            for level, flags in LEVEL_FLAGS.items()
            if all(labels.get(flag_label(flag)) == "true" for flag in flags)
        ),
        None,
    )
