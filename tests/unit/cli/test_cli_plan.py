"""`quantfleet plan`: output for a fleet file, exit codes, and one-line errors for nonsense."""

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from factories import make_node
from quantfleet.api.enums import CpuLevel
from quantfleet.cli import main as cli_main
from quantfleet.cli import plan
from quantfleet.planning.cpu import level_labels
from quantfleet.planning.inventory import LABEL_CPU_SERVING

DEV_FLEET_FILE = Path(plan.__file__).parents[1] / "testbed" / "fleet.yaml"


A100 = make_node("a100", name="a100-0")
H100 = make_node("h100", name="h100-0")
CPU = {"kind": "Node", "metadata": {"name": "cpu-0"}, "status": {"allocatable": {"cpu": "8"}}}


def nfd_cpu_node(name: str = "xeon-0", labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Node without GPUs that Node Feature Discovery labelled AVX-512, plus `labels`."""
    return {
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {**dict.fromkeys(level_labels(CpuLevel.AVX512), "true"), **(labels or {})},
        },
        "status": {"allocatable": {"cpu": "32", "memory": "128Gi"}},
    }


def run_plan(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="quantfleet")
    plan.register(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["plan", *args])
    code = parsed.run(parsed)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, *documents: object) -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def test_plan_is_a_registered_subcommand() -> None:
    assert "plan" in cli_main.SUBCOMMANDS


def test_study_72b_on_a100s_for_latency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = write(tmp_path, A100)

    code, out, err = run_plan(
        ["--params", "72B", "--objective", "latency", "--fleet", fleet], capsys
    )

    assert (code, err) == (0, "")
    assert "scheme:           W4A16 (native)" in out
    assert "gpus per replica: 1" in out
    assert "tensor parallel:  1" in out
    assert "target families:  ampere" in out
    assert "rationale:        auto chose W4A16 for latency" in out


@pytest.mark.parametrize(
    ("documents", "want_families"),
    [
        pytest.param([A100, H100], "ampere, hopper", id="multi-document node manifests"),
        pytest.param(
            [{"apiVersion": "v1", "kind": "List", "items": [A100, H100, CPU]}],
            "ampere, hopper",
            id="a v1 List as kubectl prints it",
        ),
    ],
)
def test_fleet_file_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], documents: list[Any], want_families: str
) -> None:
    fleet = write(tmp_path, *documents)

    code, out, _ = run_plan(
        ["--params", "72B", "--objective", "throughput", "--fleet", fleet], capsys
    )

    assert code == 0
    assert f"target families:  {want_families}" in out
    assert "scheme:           W8A8" in out


def test_the_testbed_fleet_file_is_read(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(
        ["--params", "7B", "--scheme", "W8A8", "--fleet", str(DEV_FLEET_FILE)], capsys
    )

    assert code == 0
    assert "target families:  turing, ampere, ada-lovelace, hopper" in out


def test_show_placement_prints_the_pod_terms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = write(tmp_path, A100)

    code, out, _ = run_plan(
        ["--params", "72B", "--scheme", "W8A8", "--fleet", fleet, "--show-placement"], capsys
    )
    terms = yaml.safe_load(out.split("---\n", 1)[1])

    assert code == 0
    assert terms["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert "nodeAffinity" in terms["affinity"]


def test_unplaceable_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = write(tmp_path, A100)

    code, out, _ = run_plan(["--params", "7B", "--scheme", "FP8_DYNAMIC", "--fleet", fleet], capsys)

    assert code == plan.EXIT_UNPLACEABLE
    assert out.startswith("unplaceable (NoCompatibleGpu): FP8_DYNAMIC runs natively on")
    assert len(out.strip().splitlines()) == 1


OPT_IN_HINT = (
    f"1 node with Node Feature Discovery cpuid labels but without {LABEL_CPU_SERVING}=true "
    f"(xeon-0); label those that should serve (`kubectl label node xeon-0 {LABEL_CPU_SERVING}="
    "true`) or serve every such node with the operator's --cpu-nodes"
)


@pytest.mark.parametrize(
    ("documents", "want_code", "want_start", "want_end"),
    [
        pytest.param(
            [nfd_cpu_node()],
            plan.EXIT_USAGE,
            "quantfleet plan: error: no GPU nodes in ",
            f"and no CPU nodes opted in to serving: {OPT_IN_HINT}",
            id="only cpu nodes, none opted in: the missing label, not 'no serving cpu nodes'",
        ),
        pytest.param(
            [A100, nfd_cpu_node()],
            plan.EXIT_UNPLACEABLE,
            "unplaceable (NoCpuNodes): no CPU nodes opted in to serving: ",
            OPT_IN_HINT,
            id="gpus beside them: the planner's NoCpuNodes gives the same hint",
        ),
        pytest.param(
            [nfd_cpu_node(labels={LABEL_CPU_SERVING: "true"})],
            0,
            "scheme:           W4A16 (native)",
            "",
            id="opted in by label: planned on it",
        ),
    ],
)
def test_cpu_nodes_without_the_opt_in_label_say_how_to_opt_in(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    documents: list[Any],
    want_code: int,
    want_start: str,
    want_end: str,
) -> None:
    fleet = write(tmp_path, *documents)

    code, out, err = run_plan(["--params", "3B", "--hardware", "cpu", "--fleet", fleet], capsys)
    said = (out + err).strip()

    assert code == want_code
    assert said.startswith(want_start)
    assert said.endswith(want_end)
    assert "no GPU or serving CPU nodes" not in said


@pytest.mark.parametrize(
    ("args", "fleet_documents", "want_error"),
    [
        pytest.param(
            ["--params=-3B"], [A100], "parameter count must be positive", id="negative size"
        ),
        pytest.param(["--params", "lots"], [A100], "not a parameter count", id="size in words"),
        pytest.param(["--params", "7B"], [], "holds no Node objects", id="empty fleet file"),
        pytest.param(
            ["--params", "7B"], [CPU], "no GPU or serving CPU nodes in", id="fleet without gpus"
        ),
        pytest.param(
            ["--params", "7B"],
            [["not", "a", "node"]],
            "expected Node manifests",
            id="not manifests",
        ),
    ],
)
def test_nonsense_input_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fleet_documents: list[Any],
    want_error: str,
) -> None:
    fleet = write(tmp_path, *fleet_documents)

    code, out, err = run_plan([*args, "--fleet", fleet], capsys)

    assert code == plan.EXIT_USAGE
    assert out == ""
    assert err.startswith("quantfleet plan: error: ")
    assert want_error in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_fleet_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_plan(["--params", "7B", "--fleet", str(tmp_path / "nope.yaml")], capsys)

    assert code == plan.EXIT_USAGE
    assert "nope.yaml" in err
    assert len(err.strip().splitlines()) == 1


def test_no_fleet_and_no_kubeconfig_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))

    code, _, err = run_plan(["--params", "7B"], capsys)

    assert code == plan.EXIT_USAGE
    assert "no --fleet given and no usable kubeconfig" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--params", "7B", "--objective", "fast"], id="unknown objective"),
        pytest.param(["--params", "7B", "--scheme", "FP16"], id="unknown scheme"),
        pytest.param(["--params", "7B", "--attention-heads", "0"], id="zero heads"),
        pytest.param(["--params", "7B", "--gpus-per-replica", "-2"], id="negative gpus"),
        pytest.param([], id="no size"),
    ],
)
def test_argument_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_plan(args, capsys)

    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err
