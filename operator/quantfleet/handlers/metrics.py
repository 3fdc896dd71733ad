"""Prometheus metrics of the operator (served by `quantfleet operator` on --metrics-port)."""

from prometheus_client import Counter, Gauge, Histogram

from quantfleet.api.benchmarkrun import BenchmarkRunStatus
from quantfleet.api.quantizedmodel import QuantizedModelStatus

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
MODEL_CONDITION = Gauge(
    "quantfleet_model_condition",
    "Per QuantizedModel and condition: 1 True, 0 False, -1 Unknown; labelled with the resolved "
    "scheme. Models by condition and scheme: sum by (condition, scheme) (... == 1).",
    ["namespace", "name", "condition", "scheme"],
)
RECOVERY = Gauge(
    "quantfleet_recovery_percent",
    "Accuracy recovery against the BF16 baseline (ratio of averages), per model.",
    ["namespace", "name", "scheme", "simulated"],
)
JOB_SECONDS = Gauge(
    "quantfleet_job_duration_seconds",
    "Duration reported by the latest quantize/evaluate Job result, per model.",
    ["namespace", "name", "program", "simulated"],
)
_VALUES = {"True": 1, "False": 0, "Unknown": -1}
_job_series: set[tuple[str, ...]] = set()
# The label sets last exported per model, so a changed scheme leaves no stale series.
_exported: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}


def record_model(namespace: str, name: str, status: QuantizedModelStatus) -> None:
    """Export one model's conditions and recovery; a series it exported before under other
    labels (another scheme, a condition gone) is removed, the others are only set."""
    scheme = str(status.plan.scheme) if status.plan else "unplanned"
    values: dict[tuple[Gauge, tuple[str, ...]], float] = {
        (MODEL_CONDITION, (namespace, name, c.type, scheme)): _VALUES[c.status]
        for c in status.conditions
    }
    if status.recovery is not None:
        simulated = str(status.recovery.simulated).lower()
        values[RECOVERY, (namespace, name, scheme, simulated)] = status.recovery.overall
    for series in _exported.pop((namespace, name), []):
        if series not in values:
            series[0].remove(*series[1])
    for (gauge, labels), value in values.items():
        gauge.labels(*labels).set(value)
    _exported[(namespace, name)] = list(values)


def forget_model(namespace: str, name: str) -> None:
    """Remove every series of a deleted model (an alert on it would fire forever)."""
    for gauge, labels in _exported.pop((namespace, name), []):
        gauge.remove(*labels)
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
