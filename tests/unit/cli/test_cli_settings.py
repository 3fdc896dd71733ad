"""`quantfleet operator` and `quantfleet plan` flags for placement: the policy and GPU costs."""

from pathlib import Path

import pytest

from quantfleet.api.enums import PlacementPolicy
from quantfleet.cli import plan
from quantfleet.cli.main import build_parser
from quantfleet.cli.operator import settings_from

FLEET_FILE = Path(plan.__file__).parents[1] / "testbed" / "fleet.yaml"


def operator_args(*extra: str) -> list[str]:
    return ["operator", "--all-namespaces", *extra]


def test_the_operator_defaults_to_best_fit_without_costs() -> None:
    settings = settings_from(build_parser().parse_args(operator_args()))

    assert (settings.placement_policy, settings.gpu_costs) == (PlacementPolicy.BEST_FIT, {})


def test_the_operator_reads_its_policy_and_a_cost_file(tmp_path: Path) -> None:
    costs = tmp_path / "costs.yaml"
    costs.write_text("NVIDIA-H100-80GB-HBM3: 2.5\nampere: 1.1\n")

    settings = settings_from(
        build_parser().parse_args(
            operator_args("--placement-policy=Cheapest", f"--gpu-costs={costs}")
        )
    )

    assert settings.placement_policy is PlacementPolicy.CHEAPEST
    assert settings.gpu_costs == {"NVIDIA-H100-80GB-HBM3": 2.5, "ampere": 1.1}


def test_an_absent_cost_file_means_no_costs(tmp_path: Path) -> None:
    args = build_parser().parse_args(operator_args(f"--gpu-costs={tmp_path / 'none.yaml'}"))

    assert settings_from(args).gpu_costs == {}


@pytest.mark.parametrize("text", ["[1, 2]", "h100: -1", "h100: cheap", "{: 1"])
def test_a_cost_file_that_does_not_parse_stops_the_start(tmp_path: Path, text: str) -> None:
    costs = tmp_path / "costs.yaml"
    costs.write_text(text)

    with pytest.raises(ValueError, match="not a map of GPU product or family to a positive cost"):
        settings_from(build_parser().parse_args(operator_args(f"--gpu-costs={costs}")))


def test_plan_ranks_by_cost_and_prints_the_ranking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    costs = tmp_path / "costs.yaml"
    costs.write_text("NVIDIA-H200: 3.5\nampere: 1.1\n")
    args = build_parser().parse_args(
        [
            *("plan", "--params=72B", "--objective=throughput", "--policy=Cheapest"),
            *(f"--gpu-costs={costs}", f"--fleet={FLEET_FILE}"),
        ]
    )

    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "policy:           Cheapest" in out
    assert (
        "ranking:          1. ampere 48 GiB (2 nodes, 8 of 8 GPUs free), cost 2.20 per replica;"
        in out
    )
    assert "by Cheapest; runner-up: FP8_DYNAMIC on 1 x hopper 140 GiB (TP 1)" in out


def test_the_operator_takes_a_model_cache_claim() -> None:
    args = build_parser().parse_args(operator_args("--model-cache-claim=model-cache"))

    assert settings_from(args).model_cache_claim == "model-cache"
    assert settings_from(build_parser().parse_args(operator_args())).model_cache_claim is None
