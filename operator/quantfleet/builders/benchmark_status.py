"""A BenchmarkRun's status from what one pass observed: results per target x workload x scenario,
speed-ups against the baseline, conditions, and the report ConfigMap. Pure: the clock comes in
as `now`."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from quantfleet.api.benchmarkrun import (
    BenchmarkRunSpec,
    BenchmarkRunStatus,
    Result,
    Speedup,
)
from quantfleet.api.common import Condition
from quantfleet.api.conditions import BenchmarkReason as Why
from quantfleet.api.conditions import BenchmarkRunCondition as Type
from quantfleet.api.contract import (
    BASELINE_TARGET,
    LABEL_BENCHMARK_RUN,
    MOUNT_ROOT,
    SWEEP_THROUGHPUT,
)
from quantfleet.api.results import BenchmarkResult, FailureResult
from quantfleet.builders.children import (
    Json,
    child_name,
    labels,
    owned,
)
from quantfleet.builders.conditions import condition, stamp
from quantfleet.builders.status import JobObservation

# A ConfigMap holds at most 1 MiB; stay well under it so the object stays cheap to watch.
MAX_REPORT_BYTES = 256 * 1024
SPEEDUP_DIGITS = 3
# A target that could start but whose turn has not come (sequential runs): not a readiness wait.
QUEUED = "waiting for the targets before it"


@dataclass(frozen=True)
class TargetProgress:
    """One target (the baseline included) as seen on this pass, in run order."""

    name: str
    job: JobObservation | None = None  # None: not started yet
    waiting: str | None = None  # why its Job cannot start yet
    failure: tuple[Why, str] | None = None  # why it never will


@dataclass(frozen=True)
class Verdict:
    """How the run stands: failed (with a reason), done, or in progress."""

    failure: tuple[Why, str] | None
    done: bool
    message: str


def speedup_metric(scenario: str) -> Literal["latency", "throughput"]:
    """Throughput scenarios (and a sweep's throughput step) compare requests/s; the others
    compare latency: synchronous ones by definition, fixed-rate ones because both sides carry
    the same offered load there, so only their latency can differ."""
    if scenario == "throughput" or scenario == SWEEP_THROUGHPUT:
        return "throughput"
    return "latency"


def speedup(baseline: Result, target: Result) -> Speedup | None:
    """The target's speed-up over the baseline (>1 is faster); None when a side measured 0."""
    metric = speedup_metric(target.scenario)
    if metric == "throughput":
        top, bottom = target.requests_per_second, baseline.requests_per_second
    else:
        top, bottom = baseline.latency_seconds.p50, target.latency_seconds.p50
    if top <= 0 or bottom <= 0:
        return None
    return Speedup(
        target=target.target,
        workload=target.workload,
        scenario=target.scenario,
        metric=metric,
        value=round(top / bottom, SPEEDUP_DIGITS),
    )


def speedups(results: list[Result]) -> list[Speedup]:
    """Each target's result against the baseline's under the same workload and scenario."""
    baseline = {(r.workload, r.scenario): r for r in results if r.target == BASELINE_TARGET}
    found = [
        speedup(baseline[(r.workload, r.scenario)], r)
        for r in results
        if r.target != BASELINE_TARGET and (r.workload, r.scenario) in baseline
    ]
    return [s for s in found if s is not None]


def results_of(target: str, result: BenchmarkResult) -> list[Result]:
    """The program's compact summary as status results; simulated stays simulated."""
    return [
        Result(
            target=target,
            workload=run.workload,
            scenario=run.scenario,
            requests_per_second=run.requests_per_second,
            output_tokens_per_second=run.output_tokens_per_second,
            ttft_ms=run.ttft_ms,
            itl_ms=run.itl_ms,
            latency_seconds=run.latency_s,
            error_rate=run.error_rate,
            simulated=result.simulated,
        )
        for run in result.runs
    ]


def benchmark_result(job: JobObservation | None) -> BenchmarkResult | None:
    if job and job.phase == "Succeeded" and isinstance(job.result, BenchmarkResult):
        return job.result
    return None


def job_failure(job: JobObservation, max_error_rate: float) -> tuple[Why, str] | None:
    """Why a finished Job fails the run: the program's own reason, no result, or an error
    rate above the spec's limit in a result that claims success (a peer bug, §5)."""
    if job.problem is not None:
        why = Why.NO_RESULT if job.phase == "Succeeded" else Why.BENCHMARK_FAILED
        if isinstance(job.result, FailureResult) and "error rate" in job.result.reason:
            why = Why.ERROR_RATE_EXCEEDED
        return why, f"Job {job.name}: {job.problem}"
    result = benchmark_result(job)
    if result is None:
        return None
    for run in result.runs:
        if run.successful == 0 or run.error_rate > max_error_rate:
            return Why.ERROR_RATE_EXCEEDED, (
                f"Job {job.name}: {run.workload}/{run.scenario}: error rate {run.error_rate:.2f}"
                f" is over {max_error_rate:g} ({run.errored} of {run.errored + run.successful}"
                " requests failed)"
            )
    return None


def judge(spec: BenchmarkRunSpec, progress: list[TargetProgress]) -> Verdict:
    """The first failure in run order, else whether every target has its results."""
    for target in progress:
        if target.failure is not None:
            why, message = target.failure
            return Verdict((why, f"{target.name}: {message}"), False, message)
        if target.job is not None and (failed := job_failure(target.job, spec.max_error_rate)):
            return Verdict((failed[0], f"{target.name}: {failed[1]}"), False, failed[1])
    done = [t.name for t in progress if benchmark_result(t.job) is not None]
    if len(done) == len(progress):
        return Verdict(None, True, f"benchmarked {', '.join(done)}")
    current = next(t for t in progress if benchmark_result(t.job) is None)
    if current.job is not None and current.job.pod_stuck:
        state = f"Job {current.job.name}: {current.job.pod_stuck}"
    elif current.job is not None:
        state = f"Job {current.job.name} is {current.job.detail or current.job.phase.lower()}"
        if current.job.pod_ended:
            state += f" (retrying after {current.job.pod_ended})"
    else:
        state = current.waiting or QUEUED
    return Verdict(
        None, False, f"{len(done)}/{len(progress)} targets done; {current.name}: {state}"
    )


def build_benchmark_status(
    spec: BenchmarkRunSpec,
    progress: list[TargetProgress],
    generation: int,
    previous: list[Condition],
    now: datetime,
) -> BenchmarkRunStatus:
    """The whole status for this pass (the report ConfigMap is named once it is written);
    conditions keep their transition time when unchanged."""
    verdict = judge(spec, progress)
    results = [
        r for t in progress if (res := benchmark_result(t.job)) for r in results_of(t.name, res)
    ]
    found = speedups(results)
    best = max((s.value for s in found), default=None)
    simulated = " (SIMULATED results)" if any(r.simulated for r in results) else ""
    if verdict.failure is not None:
        why, message = verdict.failure
        fresh = [
            condition(Type.RUNNING, "False", why, "stopped: " + message),
            condition(Type.SUCCEEDED, "False", why, message),
            condition(Type.FAILED, "True", why, message),
        ]
    elif verdict.done:
        message = verdict.message + (f"; best speed-up {best:g}x" if best else "") + simulated
        fresh = [
            condition(Type.RUNNING, "False", Why.COMPLETED, message),
            condition(Type.SUCCEEDED, "True", Why.COMPLETED, message),
            condition(Type.FAILED, "False", Why.COMPLETED, message),
        ]
    else:
        started = any(t.job is not None for t in progress)
        why = Why.BENCHMARKING if started else Why.WAITING_FOR_TARGETS
        if any(t.job is not None and t.job.phase == "Queued" for t in progress):
            why = Why.QUEUED
        if any(t.job is not None and t.job.pod_stuck for t in progress):
            why = Why.POD_FAILING
        fresh = [
            condition(Type.RUNNING, "True", why, verdict.message),
            condition(Type.SUCCEEDED, "Unknown", why, verdict.message),
            condition(Type.FAILED, "False", why, verdict.message),
        ]
    return BenchmarkRunStatus(
        observed_generation=generation,
        conditions=[stamp(c, previous, generation, now) for c in fresh],
        results=results,
        speedups=found,
        best_speedup=best,
        workloads=",".join(w.name for w in spec.workloads),
        jobs=[t.job.name for t in progress if t.job is not None],
    )


def is_finished(status: BenchmarkRunStatus | None, generation: int) -> bool:
    """Succeeded or Failed for this generation: a run does not start again by itself."""
    if status is None:
        return False
    return any(
        c.type in (Type.SUCCEEDED, Type.FAILED)
        and c.status == "True"
        and c.observed_generation == generation
        for c in status.conditions
    )


def report_name(owner_name: str) -> str:
    return child_name(owner_name, "report")


def build_report_config_map(
    owner: Json, status: BenchmarkRunStatus, results: dict[str, BenchmarkResult]
) -> Json:
    """The run's report, owned by the run: each target's full program result (what its pod
    left: every benchmark with request counts, durations, versions) and the status summary.
    Where that does not fit the bound, only the summary, and where each full report went."""
    summary = {
        "simulated": any(r.simulated for r in status.results),
        "results": [r.model_dump(mode="json", by_alias=True) for r in status.results],
        "speedups": [s.model_dump(mode="json", by_alias=True) for s in status.speedups],
        "bestSpeedup": status.best_speedup,
    }
    locations = {target: report_location(result.report) for target, result in results.items()}
    data = {"summary.json": json.dumps(summary, indent=1, sort_keys=True)}
    full = {
        f"{target}.json": result.model_dump_json(by_alias=True)
        for target, result in results.items()
    }
    if _size({**data, **full}) <= MAX_REPORT_BYTES:
        data.update(full)
    else:
        data["truncated.txt"] = (
            f"The full results exceed {MAX_REPORT_BYTES} bytes; summary.json holds the compact "
            "summary and reports.json where each full report is."
        )
    data["reports.json"] = json.dumps(locations, indent=1, sort_keys=True)
    owner_name = owner["metadata"]["name"]
    return owned(
        owner, "v1", "ConfigMap", report_name(owner_name),
        labels(LABEL_BENCHMARK_RUN, owner_name, "report"), data=data,
    )  # fmt: skip


def report_location(report: str) -> str:
    """Where a target's full GuideLLM reports are, and whether they outlive the Job's pod: under
    spec.reportUri (a claim mounted under the mount root, or s3://) they do, else they were in
    the pod's scratch volume."""
    if report.startswith(("s3://", MOUNT_ROOT + "/")):
        return f"{report} (GuideLLM JSON and HTML, kept under spec.reportUri)"
    return (
        f"{report} (GuideLLM JSON and HTML in the Job pod's scratch volume, gone with the pod; "
        "set spec.reportUri to keep them)"
    )


def _size(data: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
