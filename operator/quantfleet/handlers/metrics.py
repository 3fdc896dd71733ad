"""Prometheus metrics of the operator (served by `quantfleet operator` on --metrics-port)."""

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from quantfleet.api.benchmarkrun import BenchmarkRunStatus
from quantfleet.api.quantizedmodel import QuantizedModelStatus
from quantfleet.builders.children import Json

RECONCILES = Counter("quantfleet_reconciles_total", "Reconcile passes, by kind.", ["kind"])
RECONCILE_ERRORS = Counter(
    "quantfleet_reconcile_errors_total",
    "Reconcile passes that raised, by kind and error class.",
    ["kind", "error"],
)
RECONCILE_SECONDS = Histogram(
    "quantfleet_reconcile_duration_seconds",
    "Time of one reconcile pass, by kind.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MODEL_CONDITION = "quantfleet_model_condition"
MODEL_CONDITION_HELP = (
    "Per QuantizedModel and condition: 1 True, 0 False, -1 Unknown; labelled with the resolved "
    "scheme. Models by condition and scheme: sum by (condition, scheme) (... == 1)."
)
RECOVERY = "quantfleet_recovery_percent"
RECOVERY_HELP = "Accuracy recovery against the BF16 baseline (ratio of averages), per model."
JOB_SECONDS = Gauge(
    "quantfleet_job_duration_seconds",
    "Duration reported by the latest quantize/evaluate Job result, per model.",
    ["namespace", "name", "program", "simulated"],
)
_VALUES = {"True": 1, "False": 0, "Unknown": -1}
_job_series: set[tuple[str, ...]] = set()


class ModelCollector(Collector):
    """The models' conditions and recoveries, read from their statuses at each scrape (`models`:
    the QuantizedModels the operator watches). Not a series kept per model and condition: at a
    thousand models those were 5,000 gauges repeating what the watched statuses already say, and
    a deleted model's series now go with it."""

    def __init__(self, models: Callable[[], Iterable[Json]]) -> None:
        self._models = models

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "name", "condition", "scheme"]
        conditions = GaugeMetricFamily(MODEL_CONDITION, MODEL_CONDITION_HELP, labels=labels)
        recovery = GaugeMetricFamily(
            RECOVERY, RECOVERY_HELP, labels=["namespace", "name", "scheme", "simulated"]
        )
        for body in self._models():
            meta = body["metadata"]
            try:
                status = QuantizedModelStatus.model_validate(body.get("status") or {})
            except ValidationError:
                continue  # not written by this operator: nothing to export
            scheme = str(status.plan.scheme) if status.plan else "unplanned"
            for c in status.conditions:
                labels = [meta["namespace"], meta["name"], c.type, scheme]
                conditions.add_metric(labels, _VALUES[c.status])
            if status.recovery is not None:
                simulated = str(status.recovery.simulated).lower()
                labels = [meta["namespace"], meta["name"], scheme, simulated]
                recovery.add_metric(labels, status.recovery.overall)
        yield conditions
        yield recovery

    def describe(self) -> Iterator[Metric]:
        return iter(())  # not collected at registration: no model is watched yet


def forget_model(namespace: str, name: str) -> None:
    """Remove the Job durations a deleted model exported (its conditions go with its status)."""
    for labels in [s for s in _job_series if s[:2] == (namespace, name)]:
        JOB_SECONDS.remove(*labels)
        _job_series.discard(labels)


def record_job(namespace: str, name: str, program: str, simulated: bool, seconds: float) -> None:
    """Export the duration the latest quantize/evaluate result of a model reported."""
    labels = (namespace, name, program, str(simulated).lower())
    JOB_SECONDS.labels(*labels).set(seconds)
    _job_series.add(labels)


BENCHMARK_SPEEDUP = Gauge(
    "quantfleet_benchmark_speedup",
    "Speed-up of a target over the baseline under one workload and scenario (latency: baseline "
    "p50 / target p50; throughput: target / baseline requests/s), from its latest BenchmarkRun.",
    ["namespace", "target", "benchmarkrun", "workload", "scenario", "metric", "simulated"],
)
BENCHMARK_LATENCY = Gauge(
    "quantfleet_benchmark_latency_seconds",
    "Request latency percentiles of a target under one workload and scenario, from its latest "
    "BenchmarkRun.",
    ["namespace", "target", "benchmarkrun", "workload", "scenario", "quantile", "simulated"],
)
BENCHMARK_TTFT = Gauge(
    "quantfleet_benchmark_ttft_seconds",
    "Time-to-first-token percentiles of a target, from its latest BenchmarkRun.",
    ["namespace", "target", "benchmarkrun", "workload", "scenario", "quantile", "simulated"],
)
BENCHMARK_REQUESTS = Gauge(
    "quantfleet_benchmark_requests_per_second",
    "Completed requests per second of a target, from its latest BenchmarkRun.",
    ["namespace", "target", "benchmarkrun", "workload", "scenario", "simulated"],
)
# The series last exported per (namespace, target): a newer run replaces an older one's. The run's
# name is the third label of each.
_benchmark_exported: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}


def record_benchmark(namespace: str, run: str, status: BenchmarkRunStatus) -> None:
    """Export each target's latest speed-ups and latencies, replacing what it exported before
    (the target name is the series' identity, so the latest run reporting it wins)."""
    by_target: dict[str, list[tuple[Gauge, tuple[str, ...], float]]] = {}
    for result in status.results:
        sim = str(result.simulated).lower()
        base = (namespace, result.target, run, result.workload, result.scenario)
        series = by_target.setdefault(result.target, [])
        series.append((BENCHMARK_REQUESTS, (*base, sim), result.requests_per_second))
        for quantile in ("p50", "p90", "p99"):
            latency = getattr(result.latency_seconds, quantile)
            ttft = getattr(result.ttft_ms, quantile) / 1000
            series.append((BENCHMARK_LATENCY, (*base, quantile, sim), latency))
            series.append((BENCHMARK_TTFT, (*base, quantile, sim), ttft))
    simulated = {(r.target, r.workload, r.scenario): r.simulated for r in status.results}
    for speedup in status.speedups:
        sim = str(simulated.get((speedup.target, speedup.workload, speedup.scenario), False))
        speedup_labels = (
            namespace,
            speedup.target,
            run,
            speedup.workload,
            speedup.scenario,
            speedup.metric,
            sim.lower(),
        )
        entry = (BENCHMARK_SPEEDUP, speedup_labels, speedup.value)
        by_target.setdefault(speedup.target, []).append(entry)
    for target, series in by_target.items():
        for gauge, old in _benchmark_exported.pop((namespace, target), []):
            gauge.remove(*old)
        for gauge, new, value in series:
            gauge.labels(*new).set(value)
        _benchmark_exported[(namespace, target)] = [(g, new) for g, new, _ in series]


def forget_benchmark(namespace: str, run: str) -> None:
    """Remove the series a deleted BenchmarkRun exported (targets a newer run reported keep
    theirs)."""
    for key, series in list(_benchmark_exported.items()):
        if key[0] == namespace and series and series[0][1][2] == run:
            for gauge, labels in _benchmark_exported.pop(key):
                gauge.remove(*labels)
