"""The `auto` rule table holds together: every rule's schemes run natively where it applies."""

import pytest

from quantfleet.api.enums import CpuLevel, GpuFamily, Objective, Scheme
from quantfleet.planning.compat import Support, compatibility
from quantfleet.planning.gpu import family_floor
from quantfleet.planning.rules import AUTO_RULES, AutoRule, auto_rule

NON_VOLTA = [f for f in GpuFamily if f is not GpuFamily.VOLTA]


@pytest.mark.parametrize("rule", AUTO_RULES, ids=lambda r: r.why[:40])
def test_every_rule_scheme_is_native_on_its_families(rule: AutoRule) -> None:
    verdicts = {
        (kind, scheme): compatibility(
            scheme, kind if isinstance(kind, CpuLevel) else family_floor(kind)
        ).support
        for kind in rule.families
        for scheme in rule.schemes
    }

    assert set(verdicts.values()) == {Support.NATIVE}


@pytest.mark.parametrize(
    ("objective", "family", "want_schemes"),
    [
        pytest.param(
            Objective.THROUGHPUT, GpuFamily.TURING, ("W8A8", "W4A16"), id="throughput on t4 is int8"
        ),
        pytest.param(
            Objective.THROUGHPUT,
            GpuFamily.AMPERE,
            ("W8A8", "W4A16"),
            id="throughput on ampere is int8",
        ),
        pytest.param(
            Objective.THROUGHPUT,
            GpuFamily.ADA_LOVELACE,
            ("FP8_DYNAMIC", "W4A16"),
            id="throughput on ada is fp8",
        ),
        pytest.param(
            Objective.THROUGHPUT,
            GpuFamily.HOPPER,
            ("FP8_DYNAMIC", "W4A16"),
            id="throughput on hopper is fp8",
        ),
        pytest.param(
            Objective.THROUGHPUT,
            GpuFamily.BLACKWELL,
            ("FP8_DYNAMIC", "NVFP4"),
            id="throughput on blackwell is fp8 then nvfp4",
        ),
        pytest.param(
            Objective.BALANCED, GpuFamily.AMPERE, ("W8A8", "W4A16"), id="balanced on ampere is int8"
        ),
        pytest.param(
            Objective.BALANCED,
            GpuFamily.HOPPER,
            ("FP8_DYNAMIC", "W4A16"),
            id="balanced on hopper is fp8",
        ),
        pytest.param(Objective.LATENCY, GpuFamily.TURING, ("W4A16",), id="latency on t4 is w4a16"),
        pytest.param(
            Objective.LATENCY, GpuFamily.AMPERE, ("W4A16",), id="latency on ampere is w4a16"
        ),
        pytest.param(
            Objective.LATENCY, GpuFamily.HOPPER, ("W4A16",), id="latency on hopper is w4a16"
        ),
        pytest.param(
            Objective.LATENCY, GpuFamily.BLACKWELL, ("NVFP4",), id="latency on blackwell is nvfp4"
        ),
    ],
)
def test_auto_rule_picks_the_study_scheme(
    objective: Objective, family: GpuFamily, want_schemes: tuple[str, ...]
) -> None:
    rule = auto_rule(objective, family)

    assert rule is not None
    assert rule.schemes == want_schemes
    # User-visible: cites nothing a user does not have.
    assert rule.why
    assert "§" not in rule.why


@pytest.mark.parametrize("objective", list(Objective))
def test_every_objective_has_a_rule_for_every_family_but_volta(objective: Objective) -> None:
    assert all(auto_rule(objective, family) is not None for family in NON_VOLTA)
    assert auto_rule(objective, GpuFamily.VOLTA) is None


def test_nvfp4_is_chosen_only_on_blackwell() -> None:
    families = {f for rule in AUTO_RULES if Scheme.NVFP4 in rule.schemes for f in rule.families}

    assert families == {GpuFamily.BLACKWELL}
