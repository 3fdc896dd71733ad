"""`quantfleet report <benchmarkrun>`: a BenchmarkRun's results as a terminal table, a PNG
(latency against request rate per target, peak throughput per workload, the shape of the
study's figures) and a small HTML page embedding it. Simulated data is labelled SIMULATED in
all three. Reads the run from the cluster, or a stored run, status or program result (`--from`).
"""

import argparse
import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from quantfleet.api.benchmarkrun import Result, Speedup
from quantfleet.api.common import BENCHMARK_RUNS, GROUP, VERSION
from quantfleet.api.results import BenchmarkResult, parse_result
from quantfleet.builders.benchmark_status import results_of, speedups

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
SIMULATED = "SIMULATED"


@dataclass(frozen=True)
class Report:
    """What is shown: results and speed-ups of one run."""

    name: str
    results: list[Result]
    speedups: list[Speedup]

    @property
    def simulated(self) -> bool:
        return any(result.simulated for result in self.results)

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(result.target for result in self.results))

    @property
    def workloads(self) -> list[str]:
        return list(dict.fromkeys(result.workload for result in self.results))


def report_from(name: str, document: Any) -> Report:
    """A report from a BenchmarkRun, its status (or the report ConfigMap's summary.json), or the
    benchmark program's result (one target, named after the served model)."""
    if isinstance(document, dict) and document.get("program") == "benchmark":
        result = parse_result(json.dumps(document))
        if not isinstance(result, BenchmarkResult):
            raise ValueError("the stored program result is a failure: nothing to show")
        results = results_of(result.model, result)
        return Report(name, results, speedups(results))
    if not isinstance(document, dict):
        raise ValueError("want a BenchmarkRun, its status or a benchmark program result")
    status = document.get("status", document) if "kind" in document else document
    results = [Result.model_validate(r) for r in (status or {}).get("results") or []]
    found = [Speedup.model_validate(s) for s in (status or {}).get("speedups") or []]
    return Report(name, results, found or speedups(results))


def render_table(report: Report) -> str:
    """A plain-text table, one row per target x workload x scenario; simulated rows starred."""
    header = (
        "target", "workload", "scenario", "req/s", "out tok/s", "TTFT p50 ms", "TTFT p99 ms",
        "ITL p50 ms", "lat p50 s", "lat p90 s", "lat p99 s", "errors", "speed-up",
    )  # fmt: skip
    by_key = {(s.target, s.workload, s.scenario): s for s in report.speedups}
    rows = [header]
    for r in report.results:
        gain = by_key.get((r.target, r.workload, r.scenario))
        rows.append(
            (
                r.target + (" *" if r.simulated else ""), r.workload, r.scenario,
                f"{r.requests_per_second:.2f}", f"{r.output_tokens_per_second:.1f}",
                f"{r.ttft_ms.p50:.1f}", f"{r.ttft_ms.p99:.1f}", f"{r.itl_ms.p50:.1f}",
                f"{r.latency_seconds.p50:.3f}", f"{r.latency_seconds.p90:.3f}",
                f"{r.latency_seconds.p99:.3f}", f"{r.error_rate:.1%}",
                f"{gain.value:.2f}x {gain.metric}" if gain else "",
            )
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    title = f"BenchmarkRun {report.name}"
    if report.simulated:
        title += f"  [{SIMULATED} data: * rows come from a simulated worker, nothing was measured]"
    best = max((s.value for s in report.speedups), default=None)
    footer = [f"best speed-up: {best:.2f}x"] if best is not None else []
    return "\n".join([title, "", *lines, "", *footer]).rstrip() + "\n"


def build_figure(report: Report) -> "Figure":
    """Left: latency p50 against completed requests/s, one series per target x workload.
    Right: peak requests/s per workload, one bar per target. SIMULATED in the titles and
    across the figure when any result was simulated."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), dpi=100)
    latency, throughput = figure.subplots(1, 2)
    suffix = f" ({SIMULATED} data)" if report.simulated else ""
    for target in report.targets:
        for workload in report.workloads:
            points = sorted(
                (r.requests_per_second, r.latency_seconds.p50)
                for r in report.results
                if r.target == target and r.workload == workload
            )
            if points:
                simulated = any(
                    r.simulated for r in report.results if r.target == target
                )  # per target: one Job, one program result
                label = f"{target} · {workload}" + (f" ({SIMULATED})" if simulated else "")
                latency.plot(*zip(*points, strict=True), marker="o", label=label)
    latency.set_xlabel("requests / s")
    latency.set_ylabel("request latency p50 (s)")
    latency.set_title("Latency vs request rate" + suffix)
    latency.legend(fontsize="small")
    width = 0.8 / max(len(report.targets), 1)
    for index, target in enumerate(report.targets):
        peaks = [
            max(
                (r.requests_per_second for r in report.results
                 if r.target == target and r.workload == workload),
                default=0.0,
            )
            for workload in report.workloads
        ]  # fmt: skip
        positions = [i + index * width for i in range(len(report.workloads))]
        throughput.bar(positions, peaks, width=width, label=target)
    throughput.set_xticks(
        [i + width * (len(report.targets) - 1) / 2 for i in range(len(report.workloads))],
        report.workloads,
    )
    throughput.set_ylabel("peak requests / s")
    throughput.set_title("Throughput per workload" + suffix)
    throughput.legend(fontsize="small")
    if report.simulated:
        figure.text(
            0.5, 0.5, SIMULATED, fontsize=64, color="red", alpha=0.25, ha="center",
            va="center", rotation=20,
        )  # fmt: skip
    figure.suptitle(f"BenchmarkRun {report.name}" + suffix)
    figure.tight_layout()
    return figure


def render_html(report: Report, image: str) -> str:
    """A small page embedding the PNG above the table."""
    banner = (
        f'<p style="color:#b00;font-weight:bold">{SIMULATED} data: these numbers come from a '
        "simulated worker; nothing was measured.</p>"
        if report.simulated
        else ""
    )
    name = html.escape(report.name)
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>BenchmarkRun {name}"
        f"{' (' + SIMULATED + ')' if report.simulated else ''}</title></head><body>\n"
        f"<h1>BenchmarkRun {name}</h1>\n{banner}\n"
        f'<img src="{html.escape(image)}" alt="latency vs request rate; throughput per '
        f'workload" style="max-width:100%">\n'
        f"<pre>{html.escape(render_table(report))}</pre>\n</body></html>\n"
    )


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    """The PNG and the HTML page under `out`; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    png, page = out / f"{report.name}.png", out / f"{report.name}.html"
    figure = build_figure(report)
    figure.savefig(png, format="png")  # a bare Figure: no pyplot state, Agg chosen by format
    page.write_text(render_html(report, png.name))
    return png, page


def run(args: argparse.Namespace) -> int:
    try:
        if args.from_file:
            document = yaml.safe_load(Path(args.from_file).read_text())  # JSON is YAML too
        else:
            document = _read_from_cluster(args.namespace, args.benchmarkrun)
            if document is None:
                print(
                    f"quantfleet report: BenchmarkRun {args.namespace}/{args.benchmarkrun} "
                    "not found",
                    file=sys.stderr,
                )
                return EXIT_NOT_FOUND
        report = report_from(args.benchmarkrun, document)
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as error:
        print(f"quantfleet report: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(render_table(report), end="")
    if not report.results:
        print("no results yet: nothing to plot")
        return 0
    try:
        png, page = write_report(report, Path(args.out))
    except ImportError:
        print("quantfleet report: the PNG needs matplotlib: pip install 'quantfleet[report]'")
        return EXIT_USAGE
    print(f"\nwrote {png}\nwrote {page}")
    return 0


def _read_from_cluster(namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    config.load_kube_config()
    try:
        body: dict[str, Any] = client.CustomObjectsApi().get_namespaced_custom_object(
            GROUP, VERSION, namespace, BENCHMARK_RUNS, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise ValueError(f"reading BenchmarkRun {namespace}/{name}: {error.reason}") from error
    return body


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "report", help="show a BenchmarkRun's results: table, PNG and HTML page"
    )
    parser.add_argument("benchmarkrun", help="the BenchmarkRun's name (titles the report)")
    parser.add_argument("-n", "--namespace", default="default", help="its namespace")
    parser.add_argument("--out", default=".", help="folder for the PNG and HTML (default: .)")
    parser.add_argument(
        "--from",
        dest="from_file",
        help="a stored BenchmarkRun, status or benchmark program result (JSON or YAML) "
        "instead of the cluster",
    )
    parser.set_defaults(run=run)
