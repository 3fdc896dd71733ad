"""Which precision runs natively, as a slow fallback, or not at all on which GPU generation or
CPU instruction-set level.

One table: per precision, bands keyed by compute capability for GPUs (the GFD family follows
from it, §4) and by CPU level for CPUs. Each band names its source: for GPUs vLLM's
`get_min_capability()` per compressed-tensors scheme (../shared/reference/quantization.md §3);
for CPUs the kernel vLLM's CPU build selected here (../shared/reference/vllm-cpu.md, held to it by
tests/serving) or vLLM's CPU installation docs.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from quantfleet.api.enums import CpuLevel, GpuFamily, Scheme
from quantfleet.planning.gpu import ComputeCapability, family_floor, family_of

BF16: Final = "BF16"
# A precision the planner can size and place: a quantization scheme, or the unquantized baseline
# that evaluation and benchmarks compare against.
Precision = Scheme | Literal["BF16"]
# What a verdict is about: a GPU generation or a CPU level.
Hardware = ComputeCapability | CpuLevel


class Support(StrEnum):
    """How a GPU runs a precision. Fallback loads but without the scheme's speed."""

    NATIVE = "Native"
    FALLBACK = "Fallback"
    UNSUPPORTED = "Unsupported"


@dataclass(frozen=True)
class _Band:
    floor: Hardware
    support: Support
    reason: str
    source: str = "quantization.md §3"

    def covers(self, hardware: Hardware) -> bool:
        """Whether `hardware` is of this band's kind and at or above its floor."""
        if isinstance(hardware, CpuLevel) and isinstance(self.floor, CpuLevel):
            return hardware.rank >= self.floor.rank
        if isinstance(hardware, ComputeCapability) and isinstance(self.floor, ComputeCapability):
            return hardware >= self.floor
        return False


CC = ComputeCapability
# The linear kernel vLLM 0.32's CPU build selects per scheme on an AVX-512/AMX host (measured:
# vllm-cpu.md; tests/serving holds a real server to it). NVFP4 has none.
VLLM_CPU_KERNEL: Final[dict[Scheme, str]] = {
    Scheme.W8A8: "CPUInt8ScaledMMLinearKernel",
    Scheme.W4A16: "CPUWNA16LinearKernel",
    Scheme.FP8_DYNAMIC: "ChannelWiseTorchFP8ScaledMMLinearKernel",
}
# Sources of the CPU rows.
MEASURED = "measured: vllm-cpu.md (tests/serving)"
VLLM_CPU_DOCS = "vLLM CPU installation docs"
# vLLM's CPU docs recommend AVX512F; below it only the slower AVX2 path runs.
_AVX2_ONLY = "AVX2 only: vLLM's CPU backend wants AVX512F (its docs) and runs a slower path"

# Per precision, bands newest first: the first band whose floor is <= the GPU's compute
# capability applies; below the last floor the precision is unsupported.
COMPATIBILITY: Final[dict[Precision, tuple[_Band, ...]]] = {
    Scheme.FP8_DYNAMIC: (
        _Band(CC(8, 9), Support.NATIVE, "FP8 W8A8 uses native FP8 tensor cores from 8.9"),
        # §3: below 8.9 vLLM silently falls back to FP8 weight-only Marlin; vLLM's
        # is_fp8_marlin_supported() needs capability 8.0.
        _Band(
            CC(8, 0),
            Support.FALLBACK,
            "below 8.9 vLLM runs FP8 as weight-only Marlin: it loads without FP8 speed",
        ),
        _Band(
            CpuLevel.AVX2,
            Support.FALLBACK,
            "CPUs have no FP8 units: vLLM emulates FP8 W8A8 "
            f"({VLLM_CPU_KERNEL[Scheme.FP8_DYNAMIC]})",
            MEASURED,
        ),
    ),
    Scheme.W8A8: (
        # §3 marks INT8 on Blackwell UNCERTAIN: never chosen or placed there unless allowed.
        _Band(
            CC(10, 0),
            Support.FALLBACK,
            "INT8 W8A8 kernels on Blackwell are unconfirmed; prefer FP8 or NVFP4",
        ),
        _Band(CC(7, 5), Support.NATIVE, "INT8 W8A8 runs natively from 7.5"),
        _Band(
            CpuLevel.AMX,
            Support.NATIVE,
            f"INT8 W8A8 runs on AMX-INT8 tiles (oneDNN, {VLLM_CPU_KERNEL[Scheme.W8A8]})",
            MEASURED,
        ),
        _Band(
            CpuLevel.AVX512_VNNI,
            Support.NATIVE,
            "INT8 W8A8 runs on AVX512-VNNI dot products (oneDNN)",
            VLLM_CPU_DOCS,
        ),
        _Band(
            CpuLevel.AVX2,
            Support.FALLBACK,
            "no AVX512-VNNI or AMX-INT8: oneDNN runs INT8 W8A8 without int8 dot products",
            VLLM_CPU_DOCS,
        ),
    ),
    Scheme.W4A16: (
        _Band(CC(10, 0), Support.NATIVE, "W4A16 runs on the Marlin kernel"),
        _Band(CC(9, 0), Support.NATIVE, "W4A16 runs on Machete, its fastest kernel, on 9.0"),
        _Band(CC(8, 0), Support.NATIVE, "W4A16 runs on the Marlin kernel from 8.0"),
        # §3: min capability 8.0 in older vLLM, 7.5 in newer; the serving image pins a newer one.
        _Band(
            CC(7, 5),
            Support.NATIVE,
            "W4A16 runs on Marlin from 7.5 in newer vLLM (8.0 in older ones)",
        ),
        _Band(
            CpuLevel.AVX512,
            Support.NATIVE,
            "W4A16 is weight-only: int4 weights unpacked per layer "
            f"({VLLM_CPU_KERNEL[Scheme.W4A16]})",
            MEASURED,
        ),
        _Band(CpuLevel.AVX2, Support.FALLBACK, _AVX2_ONLY, VLLM_CPU_DOCS),
    ),
    Scheme.NVFP4: (
        _Band(CC(10, 0), Support.NATIVE, "NVFP4 uses native FP4 tensor cores from 10.0"),
        # §3: newer vLLM emulates NVFP4 below 10.0; its FP4 Marlin path needs capability 8.0.
        _Band(
            CC(8, 0),
            Support.FALLBACK,
            "below 10.0 vLLM emulates NVFP4 (FP4 weight-only): it loads without FP4 speed",
        ),
        # No CPU band: vLLM's CPU build has no NVFP4 kernel (measured: "Failed to find a kernel
        # that can implement the NVFP4 linear layer").
    ),
    BF16: (
        _Band(CC(8, 0), Support.NATIVE, "BF16 runs natively from 8.0"),
        # vLLM refuses bfloat16 below 8.0 and asks for --dtype half (FP16) instead.
        _Band(CC(7, 0), Support.FALLBACK, "below 8.0 vLLM serves BF16 models only as FP16"),
        _Band(
            CpuLevel.AVX512_BF16,
            Support.NATIVE,
            "BF16 runs on AVX512-BF16/AMX-BF16 instructions",
            VLLM_CPU_DOCS,
        ),
        _Band(
            CpuLevel.AVX2,
            Support.FALLBACK,
            "no AVX512-BF16 or AMX-BF16: vLLM converts BF16 in software, slowly",
            VLLM_CPU_DOCS,
        ),
    ),
}


# The compressed-tensors scheme class vLLM loads each scheme's checkpoints with: the class whose
# get_min_capability() the bands above follow (§3), named in vLLM's startup log as "Selected
# <kernel> for <class>". tests/serving holds a real vLLM server to it.
VLLM_SCHEME_CLASS: Final[dict[Scheme, str]] = {
    Scheme.FP8_DYNAMIC: "CompressedTensorsW8A8Fp8",
    Scheme.W8A8: "CompressedTensorsW8A8Int8",
    Scheme.W4A16: "CompressedTensorsWNA16",
    Scheme.NVFP4: "CompressedTensorsW4A4Fp4",
}


@dataclass(frozen=True)
class Compatibility:
    """The verdict for one precision on one GPU generation or CPU level, with the reason a user
    reads and where the fact comes from."""

    precision: Precision
    hardware: Hardware
    support: Support
    reason: str
    source: str = ""

    def admitted(self, allow_fallback: bool) -> bool:
        """Native always; fallback only where the spec explicitly allows it."""
        return self.support is Support.NATIVE or (
            allow_fallback and self.support is Support.FALLBACK
        )


def compatibility(precision: Precision, hardware: Hardware) -> Compatibility:
    """Look up how a GPU of compute capability `hardware`, or a CPU at level `hardware`, runs
    `precision`."""
    if precision == Scheme.AUTO:
        raise ValueError("`auto` is not a precision; resolve it with the planner first")
    what = f"CPU is {hardware}" if isinstance(hardware, CpuLevel) else f"GPU is {hardware}"
    bands = [band for band in COMPATIBILITY[precision] if band.covers(hardware)]
    if bands:
        band = bands[0]
        return Compatibility(
            precision, hardware, band.support, f"{band.reason}; {what}", band.source
        )
    if isinstance(hardware, CpuLevel):
        floors = [b.floor for b in COMPATIBILITY[precision] if isinstance(b.floor, CpuLevel)]
        if floors:
            reason = f"{precision} needs a CPU at {floors[-1]} or newer; {what}"
            return Compatibility(precision, hardware, Support.UNSUPPORTED, reason, VLLM_CPU_DOCS)
        reason = f"vLLM's CPU backend has no {precision} kernel; {what}"
        return Compatibility(precision, hardware, Support.UNSUPPORTED, reason, MEASURED)
    lowest = _gpu_floors(precision)[-1]
    reason = f"{precision} needs compute capability {lowest} or newer; {what}"
    return Compatibility(precision, hardware, Support.UNSUPPORTED, reason)


def native_families(precision: Precision) -> tuple[GpuFamily, ...]:
    """The GFD families that run `precision` natively, oldest first (for messages)."""
    # Band floors coincide with family floors (§3 against §4), so a family's floor speaks for all
    # of its members; tests hold the table to that.
    return tuple(
        family
        for family in GpuFamily
        if compatibility(precision, family_floor(family)).support is Support.NATIVE
    )


def band_floors(precision: Precision) -> tuple[ComputeCapability, ...]:
    """Every compute capability where the verdict for `precision` may change."""
    return _gpu_floors(precision)


def _gpu_floors(precision: Precision) -> tuple[ComputeCapability, ...]:
    return tuple(
        band.floor for band in COMPATIBILITY[precision] if isinstance(band.floor, ComputeCapability)
    )


def family_label(cc: ComputeCapability) -> str:
    """`hopper (9.0)`: how messages name a GPU generation."""
    family = family_of(cc)
    return f"{family or 'pre-volta'} ({cc})"
