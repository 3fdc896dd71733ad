"""The BenchmarkRun handler against an in-memory kube layer: a pass, and what deleting a run
leaves behind."""

import asyncio
from typing import Any

from fake_kube import FakeKube
from handler_factories import make_run_body

from quantfleet.api.benchmarkrun import BenchmarkRunStatus
from quantfleet.handlers import benchmarkrun, metrics, reconciler
from quantfleet.handlers.nodes import Fleet

Json = dict[str, Any]


def make_status(target: str) -> BenchmarkRunStatus:
    percentiles = {"p50": 0.1, "p90": 0.2, "p99": 0.3}
    result = {
        "target": target,
        "workload": "chat",
        "scenario": "latency",
        "requestsPerSecond": 4.0,
        "outputTokensPerSecond": 400.0,
        "ttftMs": percentiles,
        "itlMs": percentiles,
        "latencySeconds": percentiles,
        "errorRate": 0.0,
    }
    return BenchmarkRunStatus.model_validate({"results": [result]})


def run_series(run: str) -> list[Json]:
    return [
        sample.labels
        for gauge in (metrics.BENCHMARK_REQUESTS, metrics.BENCHMARK_LATENCY)
        for family in gauge.collect()
        for sample in family.samples
        if sample.labels.get("benchmarkrun") == run
    ]


def delete(body: Json) -> None:
    event = benchmarkrun.HANDLERS.event(
        event={"type": "DELETED", "object": body},
        namespace="ml",
        name=body["metadata"]["name"],
        body=body,
    )
    asyncio.run(event)


def test_a_first_pass_starts_the_job_and_a_second_writes_nothing(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    kube.add(make_run_body())
    reconciler.reconcile_named(
        benchmarkrun.KIND, "ml", "bench", benchmarkrun.reconcile, Fleet(fleet_nodes)
    )
    created = kube.writes_of("create")
    kube.clear_log()

    reconciler.reconcile_named(
        benchmarkrun.KIND, "ml", "bench", benchmarkrun.reconcile, Fleet(fleet_nodes)
    )

    assert [kind for kind, _ in created] == ["Job"]
    assert kube.writes == []


def test_deleting_a_run_removes_its_series_and_its_lock(
    kube: FakeKube, fleet_nodes: list[Json]
) -> None:
    """Also in issue 10: a deleted run's series and lock stayed."""
    body = kube.add(make_run_body(name="deleted-run"))
    reconciler.reconcile_named(
        benchmarkrun.KIND, "ml", "deleted-run", benchmarkrun.reconcile, Fleet(fleet_nodes)
    )
    metrics.record_benchmark("ml", "deleted-run", make_status("plain-deleted"))
    assert run_series("deleted-run") != []
    assert ("BenchmarkRun", "ml", "deleted-run") in reconciler.tracked()

    delete(body)

    assert run_series("deleted-run") == []
    assert ("BenchmarkRun", "ml", "deleted-run") not in reconciler.tracked()


def test_deleting_an_older_run_keeps_the_series_a_newer_run_took_over() -> None:
    metrics.record_benchmark("ml", "older", make_status("shared-target"))
    metrics.record_benchmark("ml", "newer", make_status("shared-target"))

    delete(make_run_body(name="older"))

    assert run_series("newer") != []
    delete(make_run_body(name="newer"))
    assert run_series("newer") == []
