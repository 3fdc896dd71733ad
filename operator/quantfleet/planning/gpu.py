"""GPU generations as GPU Feature Discovery names them: compute capability and family.

Facts: ../shared/reference/quantization.md §4 (NVIDIA k8s-device-plugin, internal/lm/resource.go).
"""

from typing import NamedTuple

from quantfleet.api.enums import GpuFamily


class ComputeCapability(NamedTuple):
    """CUDA compute capability; tuple order makes (8, 9) > (8, 6) as the hardware does."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> "ComputeCapability":
        """Read "8.9" (or "9", meaning 9.0) into a compute capability."""
        major, _, minor = text.strip().partition(".")
        if not major.isdigit() or (minor and not minor.isdigit()):
            raise ValueError(f"not a compute capability: {text!r} (want e.g. 8.9)")
        return cls(int(major), int(minor or 0))


# §4: GFD derives the family from the compute capability: 7.0 volta, 7.5 turing, 8.0-8.8 ampere,
# 8.9 ada-lovelace, 9 hopper, 10/12 blackwell. Newest first; the first floor <= cc wins.
_FAMILY_FLOORS: tuple[tuple[ComputeCapability, GpuFamily], ...] = (
    (ComputeCapability(10, 0), GpuFamily.BLACKWELL),
    (ComputeCapability(9, 0), GpuFamily.HOPPER),
    (ComputeCapability(8, 9), GpuFamily.ADA_LOVELACE),
    (ComputeCapability(8, 0), GpuFamily.AMPERE),
    (ComputeCapability(7, 5), GpuFamily.TURING),
    (ComputeCapability(7, 0), GpuFamily.VOLTA),
)


def family_of(cc: ComputeCapability) -> GpuFamily | None:
    """The GFD family for a compute capability, or None for pre-Volta GPUs."""
    for floor, family in _FAMILY_FLOORS:
        if cc >= floor:
            return family
    return None


def family_floor(family: GpuFamily) -> ComputeCapability:
    """The lowest compute capability of a family (a node labelled only `ampere` is at least 8.0)."""
    return next(floor for floor, known in _FAMILY_FLOORS if known is family)
