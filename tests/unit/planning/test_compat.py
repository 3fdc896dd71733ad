"""The scheme x GPU generation table (§3): every scheme on every family, and its invariants."""

from dataclasses import dataclass

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from quantfleet.api.enums import GpuFamily, Scheme
from quantfleet.planning.compat import (
    BF16,
    COMPATIBILITY,
    VLLM_SCHEME_CLASS,
    Precision,
    Support,
    band_floors,
    compatibility,
    native_families,
)
from quantfleet.planning.gpu import ComputeCapability, family_floor, family_of

CC = ComputeCapability
NATIVE, FALLBACK, UNSUPPORTED = Support.NATIVE, Support.FALLBACK, Support.UNSUPPORTED


@dataclass(frozen=True)
class Case:
    id: str
    precision: Precision
    cc: ComputeCapability
    want_support: Support
    want_reason: str


CASES = [
    # FP8 W8A8: native from 8.9, weight-only Marlin fallback from 8.0 (§3).
    Case("fp8 on volta does not load at all", Scheme.FP8_DYNAMIC, CC(7, 0), UNSUPPORTED, "8.0"),
    Case("fp8 on turing does not load at all", Scheme.FP8_DYNAMIC, CC(7, 5), UNSUPPORTED, "8.0"),
    Case(
        "fp8 on a100 silently loses its speed",
        Scheme.FP8_DYNAMIC,
        CC(8, 0),
        FALLBACK,
        "weight-only",
    ),
    Case(
        "fp8 on a6000 silently loses its speed",
        Scheme.FP8_DYNAMIC,
        CC(8, 6),
        FALLBACK,
        "weight-only",
    ),
    Case("fp8 on ada has fp8 tensor cores", Scheme.FP8_DYNAMIC, CC(8, 9), NATIVE, "8.9"),
    Case("fp8 on hopper has fp8 tensor cores", Scheme.FP8_DYNAMIC, CC(9, 0), NATIVE, "8.9"),
    Case("fp8 on blackwell has fp8 tensor cores", Scheme.FP8_DYNAMIC, CC(10, 0), NATIVE, "8.9"),
    Case("fp8 on consumer blackwell too", Scheme.FP8_DYNAMIC, CC(12, 0), NATIVE, "8.9"),
    # INT8 W8A8: native from 7.5; Blackwell UNCERTAIN in §3, so held back as a fallback.
    Case("int8 on volta is below the 7.5 floor", Scheme.W8A8, CC(7, 0), UNSUPPORTED, "7.5"),
    Case("int8 on turing is the t4's scheme", Scheme.W8A8, CC(7, 5), NATIVE, "7.5"),
    Case("int8 on a100 is the study's ampere scheme", Scheme.W8A8, CC(8, 0), NATIVE, "7.5"),
    Case("int8 on ada runs natively", Scheme.W8A8, CC(8, 9), NATIVE, "7.5"),
    Case("int8 on hopper runs natively", Scheme.W8A8, CC(9, 0), NATIVE, "7.5"),
    Case("int8 on blackwell is unconfirmed", Scheme.W8A8, CC(10, 0), FALLBACK, "unconfirmed"),
    # W4A16: Marlin from 7.5 (newer vLLM), Machete on 9.0.
    Case("w4a16 on volta is below every floor", Scheme.W4A16, CC(7, 0), UNSUPPORTED, "7.5"),
    Case("w4a16 on turing needs newer vllm", Scheme.W4A16, CC(7, 5), NATIVE, "newer vLLM"),
    Case("w4a16 on ampere runs marlin", Scheme.W4A16, CC(8, 6), NATIVE, "Marlin"),
    Case("w4a16 on ada runs marlin", Scheme.W4A16, CC(8, 9), NATIVE, "Marlin"),
    Case("w4a16 on hopper runs machete", Scheme.W4A16, CC(9, 0), NATIVE, "Machete"),
    Case("w4a16 on blackwell runs marlin", Scheme.W4A16, CC(10, 0), NATIVE, "Marlin"),
    # NVFP4: native from 10.0, emulated from 8.0.
    Case("nvfp4 on volta does not load", Scheme.NVFP4, CC(7, 0), UNSUPPORTED, "8.0"),
    Case("nvfp4 on turing does not load", Scheme.NVFP4, CC(7, 5), UNSUPPORTED, "8.0"),
    Case("nvfp4 on ampere is emulated", Scheme.NVFP4, CC(8, 0), FALLBACK, "emulates"),
    Case("nvfp4 on ada is emulated", Scheme.NVFP4, CC(8, 9), FALLBACK, "emulates"),
    Case("nvfp4 on hopper is emulated", Scheme.NVFP4, CC(9, 0), FALLBACK, "emulates"),
    Case("nvfp4 on blackwell has fp4 tensor cores", Scheme.NVFP4, CC(10, 0), NATIVE, "10.0"),
    # The BF16 baseline the evaluation compares against.
    Case("bf16 baseline on volta only as fp16", BF16, CC(7, 0), FALLBACK, "FP16"),
    Case("bf16 baseline on turing only as fp16", BF16, CC(7, 5), FALLBACK, "FP16"),
    Case("bf16 baseline on ampere is native", BF16, CC(8, 0), NATIVE, "8.0"),
    Case("bf16 baseline on hopper is native", BF16, CC(9, 0), NATIVE, "8.0"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_compatibility_table(case: Case) -> None:
    verdict = compatibility(case.precision, case.cc)

    assert verdict.support is case.want_support
    assert case.want_reason in verdict.reason
    assert str(case.cc) in verdict.reason
    # Reasons reach status: they cite no section of a file a user does not have.
    assert "§" not in verdict.reason


def test_every_scheme_and_family_is_covered() -> None:
    covered = {(c.precision, family_of(c.cc)) for c in CASES}
    schemes = [s for s in Scheme if s is not Scheme.AUTO]

    assert {(s, f) for s in schemes for f in GpuFamily} <= covered


def test_every_scheme_names_the_vllm_class_that_loads_it() -> None:
    # tests/serving checks the classes against a real vLLM; here only that none is missing.
    schemes = {s for s in Scheme if s is not Scheme.AUTO}

    assert set(VLLM_SCHEME_CLASS) == schemes
    assert all(name.startswith("CompressedTensors") for name in VLLM_SCHEME_CLASS.values())


@pytest.mark.parametrize(
    ("support", "allow_fallback", "want_admitted"),
    [
        pytest.param(NATIVE, False, True, id="native is always admitted"),
        pytest.param(FALLBACK, False, False, id="fallback is refused by default"),
        pytest.param(FALLBACK, True, True, id="fallback is admitted when the spec allows it"),
        pytest.param(UNSUPPORTED, True, False, id="unsupported is refused even when allowed"),
    ],
)
def test_fallback_is_refused_unless_allowed(
    support: Support, allow_fallback: bool, want_admitted: bool
) -> None:
    cc = {NATIVE: CC(9, 0), FALLBACK: CC(8, 0), UNSUPPORTED: CC(7, 0)}[support]
    verdict = compatibility(Scheme.FP8_DYNAMIC, cc)

    assert verdict.support is support
    assert verdict.admitted(allow_fallback) is want_admitted


@pytest.mark.parametrize(
    ("precision", "want_families"),
    [
        pytest.param(Scheme.FP8_DYNAMIC, ("ada-lovelace", "hopper", "blackwell"), id="fp8"),
        pytest.param(Scheme.W8A8, ("turing", "ampere", "ada-lovelace", "hopper"), id="int8"),
        pytest.param(
            Scheme.W4A16, ("turing", "ampere", "ada-lovelace", "hopper", "blackwell"), id="w4a16"
        ),
        pytest.param(Scheme.NVFP4, ("blackwell",), id="nvfp4 only on blackwell"),
    ],
)
def test_native_families(precision: Precision, want_families: tuple[str, ...]) -> None:
    assert native_families(precision) == want_families


def test_auto_is_not_a_precision() -> None:
    with pytest.raises(ValueError, match="resolve it with the planner"):
        compatibility(Scheme.AUTO, CC(9, 0))


@pytest.mark.parametrize("precision", list(COMPATIBILITY), ids=str)
def test_band_floors_sit_on_family_floors(precision: Precision) -> None:
    # Placement may select a whole family; that is only sound if no family straddles a floor.
    family_floors = {family_floor(family) for family in GpuFamily}

    assert set(band_floors(precision)) <= family_floors


compute_capabilities = st.builds(
    ComputeCapability, st.integers(min_value=5, max_value=13), st.integers(min_value=0, max_value=9)
)


@given(cc=compute_capabilities)
def test_fp8_is_native_only_from_8_9(cc: ComputeCapability) -> None:
    native = compatibility(Scheme.FP8_DYNAMIC, cc).support is NATIVE

    assert native == (cc >= CC(8, 9))


@given(cc=compute_capabilities)
def test_nvfp4_is_native_only_from_10_0(cc: ComputeCapability) -> None:
    native = compatibility(Scheme.NVFP4, cc).support is NATIVE

    assert native == (cc >= CC(10, 0))


@given(cc=compute_capabilities, precision=st.sampled_from(list(COMPATIBILITY)))
def test_every_family_member_shares_its_family_verdict(
    cc: ComputeCapability, precision: Precision
) -> None:
    family = family_of(cc)
    assume(family is not None)
    assert family is not None
    at_floor = compatibility(precision, family_floor(family)).support

    assert compatibility(precision, cc).support is at_floor
