"""Which precision runs natively, as a slow fallback, or not at all on which GPU generation.

One table, keyed by compute capability (the GFD family follows from it, §4). Facts: vLLM's
`get_min_capability()` per compressed-tensors scheme, ../shared/reference/quantization.md §3.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from quantfleet.api.enums import GpuFamily, Scheme
from quantfleet.planning.gpu import ComputeCapability, family_floor, family_of

BF16: Final = "BF16"
# A precision the planner can size and place: a quantization scheme, or the unquantized baseline
# that evaluation and benchmarks compare against.
Precision = Scheme | Literal["BF16"]


class Support(StrEnum):
    """How a GPU runs a precision. Fallback loads but without the scheme's speed."""

    NATIVE = "Native"
    FALLBACK = "Fallback"
    UNSUPPORTED = "Unsupported"


@dataclass(frozen=True)
class _Band:
    floor: ComputeCapability
    support: Support
    reason: str


CC = ComputeCapability

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
    ),
    Scheme.W8A8: (
        # §3 marks INT8 on Blackwell UNCERTAIN: never chosen or placed there unless allowed.
        _Band(
            CC(10, 0),
            Support.FALLBACK,
            "INT8 W8A8 kernels on Blackwell are unconfirmed; prefer FP8 or NVFP4",
        ),
        _Band(CC(7, 5), Support.NATIVE, "INT8 W8A8 runs natively from 7.5"),
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
    ),
    Scheme.NVFP4: (
        _Band(CC(10, 0), Support.NATIVE, "NVFP4 uses native FP4 tensor cores from 10.0"),
        # §3: newer vLLM emulates NVFP4 below 10.0; its FP4 Marlin path needs capability 8.0.
        _Band(
            CC(8, 0),
            Support.FALLBACK,
            "below 10.0 vLLM emulates NVFP4 (FP4 weight-only): it loads without FP4 speed",
        ),
    ),
    BF16: (
        _Band(CC(8, 0), Support.NATIVE, "BF16 runs natively from 8.0"),
        # vLLM refuses bfloat16 below 8.0 and asks for --dtype half (FP16) instead.
        _Band(CC(7, 0), Support.FALLBACK, "below 8.0 vLLM serves BF16 models only as FP16"),
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
    """The verdict for one precision on one GPU generation, with the reason a user reads."""

    precision: Precision
    compute_capability: ComputeCapability
    support: Support
    reason: str

    def admitted(self, allow_fallback: bool) -> bool:
        """Native always; fallback only where the spec explicitly allows it."""
        return self.support is Support.NATIVE or (
            allow_fallback and self.support is Support.FALLBACK
        )


def compatibility(precision: Precision, cc: ComputeCapability) -> Compatibility:
    """Look up how a GPU of compute capability `cc` runs `precision`."""
    if precision == Scheme.AUTO:
        raise ValueError("`auto` is not a precision; resolve it with the planner first")
    bands = COMPATIBILITY[precision]
    for band in bands:
        if cc >= band.floor:
            return Compatibility(precision, cc, band.support, f"{band.reason}; GPU is {cc}")
    lowest = bands[-1].floor
    reason = f"{precision} needs compute capability {lowest} or newer; GPU is {cc}"
    return Compatibility(precision, cc, Support.UNSUPPORTED, reason)


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
    return tuple(band.floor for band in COMPATIBILITY[precision])


def family_label(cc: ComputeCapability) -> str:
    """`hopper (9.0)`: how messages name a GPU generation."""
    family = family_of(cc)
    return f"{family or 'pre-volta'} ({cc})"
