"""`quantfleet report` from stored results: the terminal table, the figure's series (inspected
before it is saved), the PNG on disk and the HTML page, with simulated data labelled SIMULATED
everywhere and measured data never so labelled."""

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from quantfleet.api.results import BenchmarkMeasurement, BenchmarkResult, Percentiles
from quantfleet.cli import main as cli_main
from quantfleet.cli.report import build_figure, report_from

Json = dict[str, Any]


def make_result(target: str, workload: str, scenario: str, rps: float, p50: float,
                simulated: bool = True) -> Json:  # fmt: skip
    p = {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5}
    return {
        "target": target, "workload": workload, "scenario": scenario,
        "requestsPerSecond": rps, "outputTokensPerSecond": rps * 128,
        "ttftMs": {"p50": 180.0, "p90": 240.0, "p99": 320.0},
        "itlMs": {"p50": 12.0, "p90": 15.0, "p99": 21.0},
        "latencySeconds": p, "errorRate": 0.0, "simulated": simulated,
    }  # fmt: skip


def make_stored_run(simulated: bool = True) -> Json:
    """A BenchmarkRun as `kubectl get -o json` shows it: two targets, two workloads, a sweep."""
    results = [
        make_result(t, w, s, rps, p50, simulated)
        for t, scale in (("baseline", 1.0), ("fp8", 1.5))
        for w in ("doc", "cap")
        for s, rps, p50 in (("rate@1", 1.0, 2.0), ("rate@2", 2.0, 2.4), ("throughput", 3.0, 4.0))
        for rps, p50 in [(rps * scale, p50 / scale)]
    ]
    return {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "BenchmarkRun",
        "metadata": {"name": "cmp", "namespace": "ml"},
        "spec": {},
        "status": {"results": results},
    }


def run_report(tmp_path: Path, document: Json, capsys: pytest.CaptureFixture[str]) -> str:
    stored = tmp_path / "stored.json"
    stored.write_text(json.dumps(document))
    code = cli_main.main(["report", "cmp", "--from", str(stored), "--out", str(tmp_path / "out")])
    assert code == 0
    return capsys.readouterr().out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_figure_has_a_latency_series_per_target_and_workload_and_throughput_bars() -> None:
    report = report_from("cmp", make_stored_run())
    figure = build_figure(report)
    latency, throughput = figure.axes
    series = {line.get_label(): list(zip(*line.get_data(), strict=True)) for line in latency.lines}
    assert set(series) == {
        "baseline · doc (SIMULATED)",
        "baseline · cap (SIMULATED)",
        "fp8 · doc (SIMULATED)",
        "fp8 · cap (SIMULATED)",
    }
    # Latency p50 against completed requests/s, in rate order.
    assert series["baseline · doc (SIMULATED)"] == [(1.0, 2.0), (2.0, 2.4), (3.0, 4.0)]
    assert series["fp8 · doc (SIMULATED)"][0] == pytest.approx((1.5, 2.0 / 1.5))
    bars = {c.get_label(): [b.get_height() for b in c] for c in throughput.containers}
    assert bars == {"baseline": [3.0, 3.0], "fp8": [4.5, 4.5]}  # peak req/s per workload
    assert [t.get_text() for t in throughput.get_xticklabels()] == ["doc", "cap"]
    assert "SIMULATED" in latency.get_title()
    assert "SIMULATED" in throughput.get_title()
    assert "SIMULATED" in [t.get_text() for t in figure.texts]


def test_report_from_a_stored_simulated_run_writes_table_png_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_report(tmp_path, make_stored_run(), capsys)
    png, page = tmp_path / "out" / "cmp.png", tmp_path / "out" / "cmp.html"
    assert png_size(png) == (1200, 500)
    assert png.stat().st_size > 10_000  # drawn, not an empty canvas
    html = page.read_text()
    assert '<img src="cmp.png"' in html
    assert "SIMULATED data" in html
    assert "SIMULATED data" in out.splitlines()[0]
    assert "fp8 *" in out  # simulated rows are starred
    assert "1.50x throughput" in out
    assert f"wrote {png}" in out


def test_measured_results_are_never_labelled_simulated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_report(tmp_path, make_stored_run(simulated=False), capsys)
    assert "SIMULATED" not in out
    assert "SIMULATED" not in (tmp_path / "out" / "cmp.html").read_text()
    figure = build_figure(report_from("cmp", make_stored_run(simulated=False)))
    assert all("SIMULATED" not in line.get_label() for line in figure.axes[0].lines)
    assert all("SIMULATED" not in text.get_text() for text in figure.texts)


def test_report_from_the_benchmark_programs_own_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Percentiles(p50=1.0, p90=1.1, p99=1.2)
    result = BenchmarkResult(
        target="http://127.0.0.1:8000", model="tiny", max_error_rate=0.01, report="/tmp/r",
        duration_seconds=3.0, library_versions={"guidellm": "0.8.1"},
        runs=[BenchmarkMeasurement(workload="text", scenario="latency", requests_per_second=2.0,
                           output_tokens_per_second=16.0, ttft_ms=p, itl_ms=p, latency_s=p,
                           successful=5, errored=0, error_rate=0.0)],
    )  # fmt: skip
    out = run_report(tmp_path, result.model_dump(mode="json", by_alias=True), capsys)
    assert "tiny  " in out
    assert "SIMULATED" not in out
    assert png_size(tmp_path / "out" / "cmp.png") == (1200, 500)


@pytest.mark.parametrize(
    ("document", "want_error"),
    [
        pytest.param([1, 2], "want a BenchmarkRun", id="not-an-object"),
        pytest.param(
            {"program": "benchmark", "outcome": "Failed", "reason": "boom"},
            "is a failure",
            id="a-failed-program-result",
        ),
    ],
)
def test_unusable_stored_documents_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any, want_error: str
) -> None:
    stored = tmp_path / "stored.json"
    stored.write_text(json.dumps(document))
    assert cli_main.main(["report", "cmp", "--from", str(stored)]) == 2
    err = capsys.readouterr().err
    assert want_error in err
    assert len(err.strip().splitlines()) == 1
