"""The baseline score cache: one ConfigMap per source model, revision and sample limit, holding
the BF16 scores per task with the harness version that scored them, so a model's other schemes
skip re-scoring the baseline (the evaluate program takes only the scores of the harness version
it runs: a harness upgrade scores again)."""

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from quantfleet.api.contract import (
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    Component,
    harness_task,
)
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.results import EvaluateResult
from quantfleet.builders.children import Json, digest
from quantfleet.kube.cache import Cache, remember
from quantfleet.kube.errors import api_errors


def baseline_cache_name(spec: QuantizedModelSpec) -> str:
    """One ConfigMap per source model, revision and sample limit; a key per task."""
    key = digest(spec.source.uri, spec.source.revision, spec.evaluation.limit)
    return f"quantfleet-baseline-{key}"


def read_baseline_scores(
    kube: Cache, namespace: str, spec: QuantizedModelSpec
) -> dict[str, dict[str, Any]]:
    """Cached BF16 scores per task for this source, revision and limit (empty when none)."""
    cache = kube.get("ConfigMap", namespace, baseline_cache_name(spec))
    data: dict[str, str] = (cache or {}).get("data") or {}
    return {task: json.loads(value) for task, value in data.items()}


def cache_entries(result: EvaluateResult) -> dict[str, str]:
    """The ConfigMap's data from one result: a JSON entry per task, as the evaluate program's
    --baseline-scores reads them back."""
    return {
        score.task: json.dumps(
            {
                "metric": score.metric,
                "score": score.baseline,
                "version": score.version,
                "samples": score.samples,
                # The evaluate program reuses a score only from the harness version it runs.
                "harnessVersion": result.library_versions.get(harness_task(score.task).harness),
                "simulated": result.simulated,
            }
        )
        for score in result.tasks
    }


def write_baseline_scores(
    api: client.ApiClient, namespace: str, spec: QuantizedModelSpec, result: EvaluateResult
) -> None:
    """Add this run's baseline scores to the cache, keeping other tasks' scores."""
    name = baseline_cache_name(spec)
    body: Json = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_COMPONENT: Component.BASELINE_CACHE,
            },
            "annotations": {"quantfleet.io/source": spec.source.uri},
        },
        "data": cache_entries(result),
    }
    core = client.CoreV1Api(api)
    with api_errors(f"writing ConfigMap {namespace}/{name}"):
        try:
            written = core.create_namespaced_config_map(namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
            written = core.patch_namespaced_config_map(name, namespace, {"data": body["data"]})
    remember(api.sanitize_for_serialization(written), "ConfigMap")
