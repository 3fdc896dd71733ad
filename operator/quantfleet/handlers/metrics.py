"""Prometheus metrics of the operator (served by `quantfleet operator` on --metrics-port)."""

from prometheus_client import Counter, Gauge, Histogram

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
# The label sets last exported per model, so a changed scheme leaves no stale series.
_exported: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}


def record_model(namespace: str, name: str, status: QuantizedModelStatus) -> None:
    """Export one model's conditions and recovery, replacing what it exported before."""
    for gauge, labels in _exported.pop((namespace, name), []):
        gauge.remove(*labels)
    scheme = str(status.plan.scheme) if status.plan else "unplanned"
    exported: list[tuple[Gauge, tuple[str, ...]]] = []
    for condition in status.conditions:
        labels = (namespace, name, condition.type, scheme)
        MODEL_CONDITION.labels(*labels).set(_VALUES[condition.status])
        exported.append((MODEL_CONDITION, labels))
    if status.recovery is not None:
        labels = (namespace, name, scheme, str(status.recovery.simulated).lower())
        RECOVERY.labels(*labels).set(status.recovery.overall)
        exported.append((RECOVERY, labels))
    _exported[(namespace, name)] = exported
