"""Benchmark an OpenAI-compatible endpoint with GuideLLM (0.8.1's CLI) over the study's workloads
and scenarios; summarise each workload x scenario and fail on a run whose error rate is too high.

parse → check the endpoint answers → one `guidellm run` per workload x scenario → summarise its
JSON → keep the full reports (JSON, HTML) as the artifact → write the result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantfleet.api.contract import (
    DEFAULT_SWEEP_STEPS,
    MAX_BENCHMARKS,
    WORKLOAD_PRESETS,
    benchmarks_per_scenario,
    run_label,
)
from quantfleet.api.enums import ScenarioKind
from quantfleet.api.results import BenchmarkMeasurement, BenchmarkResult, Percentiles
from quantfleet_jobs.common import (
    JobArgumentParser,
    JobError,
    add_common_arguments,
    env_defaults,
    library_versions,
    publish,
    run_program,
    source_fetcher,
    split_list,
    staging_dir,
    workdir_for,
)


@dataclass(frozen=True)
class Workload:
    """Requests of one shape: an image of width x height (none if 0), prompt and output tokens."""

    name: str
    width: int
    height: int
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class RunPlan:
    """What the arguments ask GuideLLM for, checked: each workload under each scenario."""

    workloads: list[Workload]
    scenarios: list[str]
    rates: list[float]


PRESETS = {str(preset): Workload(str(preset), *shape) for preset, shape in WORKLOAD_PRESETS.items()}
SCENARIOS = [s.value for s in ScenarioKind]
# GuideLLM 0.8.1's throughput profile requires a bound on requests in flight (its sweep defaults
# to 512); one bound for both, so a sweep's throughput step measures what `throughput` does.
DEFAULT_MAX_CONCURRENCY = 64


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The program's flags; defaults from QF_* in `environ` (the process's env unless given)."""
    env_default = env_defaults(environ)
    parser = JobArgumentParser(prog="quantfleet-benchmark", description=__doc__)
    parser.add_argument("--target", default=env_default("TARGET"), help="Endpoint base URL")
    parser.add_argument("--model", default=env_default("MODEL"), help="Served model name")
    parser.add_argument(
        "--tokenizer",
        default=env_default("TOKENIZER"),
        help="Tokenizer for synthetic prompts: path, pvc://, hf://, s3:// (default: --model)",
    )
    parser.add_argument(
        "--workloads",
        default=env_default("WORKLOADS", ",".join(PRESETS)),
        help="Comma list of presets (docvqa, visual-reasoning, captioning) or "
        "NAME:WIDTHxHEIGHT:PROMPT_TOKENS:OUTPUT_TOKENS (0x0 = text only)",
    )
    parser.add_argument(
        "--scenarios",
        default=env_default("SCENARIOS", "latency,throughput"),
        help=f"Comma list of {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--rates", default=env_default("RATES", "1,2,4"), help="Requests/s for the rate scenario"
    )
    parser.add_argument(
        "--sweep-steps",
        type=int,
        default=int(env_default("SWEEP_STEPS") or DEFAULT_SWEEP_STEPS),
        help="Benchmarks a sweep makes: synchronous, throughput and constant rates between them "
        f"(GuideLLM's sweep_size; at least 2, default {DEFAULT_SWEEP_STEPS})",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=int(env_default("MAX_CONCURRENCY") or DEFAULT_MAX_CONCURRENCY),
        help="Most requests in flight in the throughput scenario and a sweep (GuideLLM's "
        f"max_concurrency, default {DEFAULT_MAX_CONCURRENCY})",
    )
    parser.add_argument("--max-requests", type=int, default=_int(env_default("MAX_REQUESTS")))
    parser.add_argument(
        "--max-seconds", type=float, default=float(env_default("MAX_SECONDS", "120") or 120)
    )
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=float(env_default("MAX_ERROR_RATE", "0.05") or 0.05),
        help="A run whose errored / (successful + errored) exceeds this fails",
    )
    parser.add_argument(
        "--output", default=env_default("OUTPUT"), help="Where the reports go: path, pvc://, s3://"
    )
    parser.add_argument(
        "--server-kind",
        default=env_default("SERVER_KIND", "vllm"),
        help="vllm: exact output lengths via vLLM's ignore_eos (the default); openai: a strict "
        "OpenAI server that rejects ignore_eos (e.g. transformers serve): max_tokens caps output",
    )
    add_common_arguments(parser, env_default)
    return parser


def benchmark(args: argparse.Namespace) -> BenchmarkResult:
    started = time.monotonic()
    plan = plan_runs(args)
    check_endpoint(args.target)
    workdir = workdir_for(args)
    tokenizer: str | Path = args.tokenizer or args.model
    if _looks_like_location(str(tokenizer)):  # else a hub name GuideLLM resolves itself
        tokenizer = source_fetcher(args, workdir)(str(tokenizer))

    runs: list[BenchmarkMeasurement] = []
    with staging_dir(args.output, mount_root=args.mount_root, workdir=workdir) as staging:
        for workload in plan.workloads:
            for scenario in plan.scenarios:
                report = staging / f"{workload.name}-{scenario}.json"
                run_guidellm(args, workload, scenario, plan.rates, str(tokenizer), report)
                runs.extend(summarise(json.loads(report.read_text()), workload.name, scenario))
        for run in runs:
            if run.successful == 0 or run.error_rate > args.max_error_rate:
                raise JobError(
                    f"{run.workload}/{run.scenario}: error rate {run.error_rate:.2f} is over"
                    f" {args.max_error_rate:.2f} ({run.errored} of"
                    f" {run.errored + run.successful} requests failed)"
                )
        (staging / "summary.json").write_text(
            json.dumps([run.model_dump(by_alias=True) for run in runs], indent=1)
        )
        output = publish(staging, args.output, mount_root=args.mount_root, marker="summary.json")

    return result_of(
        args,
        runs,
        report=output,
        duration_seconds=round(time.monotonic() - started, 3),
        versions=library_versions("guidellm"),
    )


def result_of(
    args: argparse.Namespace,
    runs: list[BenchmarkMeasurement],
    *,
    report: str,
    duration_seconds: float,
    versions: dict[str, str],
) -> BenchmarkResult:
    """The program's result: every measurement and where the full reports went."""
    return BenchmarkResult(
        target=args.target,
        model=args.model,
        runs=runs,
        max_error_rate=args.max_error_rate,
        report=report,
        duration_seconds=duration_seconds,
        library_versions=versions,
    )


def plan_runs(args: argparse.Namespace) -> RunPlan:
    """The runs the arguments ask for; refused when a flag is missing, a name unknown or they
    would not fit in one result (at most MAX_BENCHMARKS benchmarks)."""
    if not args.target or not args.model or not args.output:
        raise JobError("--target, --model and --output are required")
    if args.server_kind not in ("vllm", "openai"):
        raise JobError(f"unknown server kind {args.server_kind!r}: want vllm or openai")
    workloads = [parse_workload(spec) for spec in split_list(args.workloads)]
    scenarios = split_list(args.scenarios)
    if unknown := [s for s in scenarios if s not in SCENARIOS]:
        raise JobError(f"unknown scenario {unknown[0]!r}: want one of {', '.join(SCENARIOS)}")
    if args.sweep_steps < 2:
        raise JobError(f"--sweep-steps {args.sweep_steps}: a sweep takes at least 2 benchmarks")
    if args.max_concurrency < 1:
        raise JobError(f"--max-concurrency {args.max_concurrency}: want at least 1")
    rates = [float(r) for r in split_list(args.rates)] if ScenarioKind.RATE in scenarios else []
    expected_runs = len(workloads) * sum(
        benchmarks_per_scenario(s, len(rates), args.sweep_steps) for s in scenarios
    )
    if not workloads or not scenarios or expected_runs > MAX_BENCHMARKS:
        raise JobError(
            f"{expected_runs} workload x scenario runs requested; want 1..{MAX_BENCHMARKS}"
        )
    return RunPlan(workloads, scenarios, rates)


def parse_workload(spec: str) -> Workload:
    """A preset name or NAME:WIDTHxHEIGHT:PROMPT_TOKENS:OUTPUT_TOKENS."""
    if spec in PRESETS:
        return PRESETS[spec]
    try:
        name, size, prompt, output = spec.split(":")
        width, height = (int(v) for v in size.lower().split("x"))
        workload = Workload(name, width, height, int(prompt), int(output))
    except ValueError as error:
        raise JobError(
            f"bad workload {spec!r}: want one of {', '.join(PRESETS)} or "
            "NAME:WIDTHxHEIGHT:PROMPT_TOKENS:OUTPUT_TOKENS"
        ) from error
    if workload.output_tokens < 1 or (workload.width == 0 and workload.prompt_tokens < 1):
        raise JobError(f"bad workload {spec!r}: a request needs a prompt and output tokens")
    return workload


def check_endpoint(target: str) -> None:
    """Fail fast, with the cause, when nothing answers at the endpoint."""
    url = target.rstrip("/") + "/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise JobError(f"endpoint {target} answered {error.code} for /v1/models") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise JobError(f"endpoint {target} is unreachable: {reason}") from error


def run_guidellm(
    args: argparse.Namespace,
    workload: Workload,
    scenario: str,
    rates: list[float],
    tokenizer: str,
    report: Path,
) -> None:
    """One `guidellm run` (0.8.1 CLI, checked on this kind of machine) writing JSON and HTML."""
    # GuideLLM sends vLLM's `ignore_eos` when the data names output tokens; strict OpenAI
    # servers answer 422 to that, so for them the backend caps output with `max_tokens` instead.
    exact = args.server_kind == "vllm"
    output_tokens = f",output_tokens={workload.output_tokens}" if exact else ""
    backend: dict[str, Any] = {"kind": "openai_http", "target": args.target, "model": args.model}
    if not exact:
        backend["extras"] = {"body": {"max_tokens": workload.output_tokens}}
    data = []
    if workload.prompt_tokens > 0 or workload.width == 0:
        data += ["--data", f"kind=synthetic_text,prompt_tokens={workload.prompt_tokens}"
                 + output_tokens]  # fmt: skip
    if workload.width > 0:
        image = f"kind=synthetic_image,width={workload.width},height={workload.height}"
        if workload.prompt_tokens == 0:  # image-only prompt (captioning): tokens go here
            image += output_tokens
        data += ["--data", image]
    profile = profile_args(scenario, rates, args.sweep_steps, args.max_concurrency)
    constraints = ["--constraint", f"kind=max_duration,seconds={args.max_seconds:g}"]
    if args.max_requests:
        constraints += ["--constraint", f"kind=max_requests,count={args.max_requests}"]
    command = [
        sys.executable, "-m", "guidellm", "run",
        "--backend", json.dumps(backend),
        *profile, *constraints,
        "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
        *data,
        "--output", f"kind=json,path={report}",
        "--output", f"kind=html,path={report.with_suffix('.html')}",
        "--disable-progress",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0 or not report.is_file():
        lines = [ln for ln in (completed.stderr + completed.stdout).splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "")
        raise JobError(
            f"guidellm failed for {workload.name}/{scenario} (exit {completed.returncode}): {last}"
        )


def profile_args(
    scenario: str, rates: list[float], sweep_steps: int, max_concurrency: int
) -> list[str]:
    """GuideLLM 0.8.1's profile flags for one scenario."""
    bound = f"max_concurrency={max_concurrency}"
    return {
        ScenarioKind.LATENCY: ["--profile", "kind=synchronous"],
        ScenarioKind.THROUGHPUT: ["--profile", f"kind=throughput,{bound}"],
        ScenarioKind.SWEEP: ["--profile", f"kind=sweep,sweep_size={sweep_steps},{bound}"],
        ScenarioKind.RATE: ["--profile", "kind=constant", "--override", "profile.rate",
                            ",".join(f"{r:g}" for r in rates)],
    }[ScenarioKind(scenario)]  # fmt: skip


def summarise(report: dict[str, Any], workload: str, scenario: str) -> list[BenchmarkMeasurement]:
    """One measurement per benchmark in a GuideLLM report (a rate list or sweep gives several),
    labelled with contract.run_label."""
    runs = []
    for bench in report.get("benchmarks", []):
        metrics = bench["metrics"]
        totals = metrics["request_totals"]
        successful, errored = int(totals["successful"]), int(totals["errored"])
        strategy = bench["config"]["strategy"]
        runs.append(
            BenchmarkMeasurement(
                workload=workload,
                scenario=run_label(scenario, strategy["type_"], strategy.get("rate")),
                requests_per_second=_mean(metrics, "requests_per_second"),
                output_tokens_per_second=_mean(metrics, "output_tokens_per_second"),
                ttft_ms=_percentiles(metrics, "time_to_first_token_ms"),
                itl_ms=_percentiles(metrics, "inter_token_latency_ms"),
                latency_s=_percentiles(metrics, "request_latency"),
                successful=successful,
                errored=errored,
                error_rate=errored / (successful + errored) if successful + errored else 1.0,
            )
        )
    if not runs:
        raise JobError(f"guidellm report for {workload}/{scenario} holds no benchmark")
    return runs


def _mean(metrics: dict[str, Any], name: str) -> float:
    return round(float(metrics[name]["successful"]["mean"] or 0.0), 4)


def _percentiles(metrics: dict[str, Any], name: str) -> Percentiles:
    p = metrics[name]["successful"]["percentiles"]
    return Percentiles(
        p50=round(float(p["p50"] or 0.0), 4),
        p90=round(float(p["p90"] or 0.0), 4),
        p99=round(float(p["p99"] or 0.0), 4),
    )


def _looks_like_location(reference: str) -> bool:
    return "://" in reference or Path(reference).exists()


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def main(argv: list[str] | None = None) -> int:
    return run_program("benchmark", build_parser(), benchmark, argv)


if __name__ == "__main__":
    raise SystemExit(main())
