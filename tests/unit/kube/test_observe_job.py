"""Reading a Job from the cache the watches keep: one that Kueue holds (suspended, with its queue
label) is Queued, never failed; what this process just wrote is seen before the watch brings it,
and what it deleted is not."""

from typing import Any, cast

import pytest
from kubernetes import client

from quantfleet.api.contract import LABEL_MODEL
from quantfleet.kube import cache
from quantfleet.kube.cache import Cache
from quantfleet.kube.children import JOB_NAME_LABEL, observe_job

Json = dict[str, Any]
NO_API = cast(client.ApiClient, None)


def job(suspend: bool | None, labels: dict[str, str], active: int = 0, version: str = "1") -> Json:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "q",
            "namespace": "ns",
            "uid": "uid-q",
            "resourceVersion": version,
            "labels": {LABEL_MODEL: "m", **labels},
        },
        "spec": {"suspend": suspend},
        "status": {"active": active},
    }


def watched(*bodies: Json) -> Cache:
    """A cache whose index holds `bodies` as the Kopf index would."""
    index: dict[cache.Key, list[bytes]] = {}
    for body in bodies:
        for key, kept in cache.indexed(body).items():
            index.setdefault(key, []).append(kept)
    return Cache(NO_API, index)


@pytest.mark.parametrize(
    ("manifest", "phase", "detail"),
    [
        (job(True, {"kueue.x-k8s.io/queue-name": "gpus"}), "Queued", "Kueue LocalQueue gpus"),
        (job(False, {"kueue.x-k8s.io/queue-name": "gpus"}, active=1), "Running", ""),
        (job(False, {"kueue.x-k8s.io/queue-name": "gpus"}), "Pending", ""),
        # Suspended by someone else than Kueue: not ours to explain.
        (job(True, {}), "Pending", ""),
    ],
)
def test_a_job_held_by_kueue_is_queued(manifest: Json, phase: str, detail: str) -> None:
    seen = observe_job(watched(manifest), "ns", "q")
    assert seen is not None
    assert seen.phase == phase
    assert detail in seen.detail


def test_a_job_is_found_with_its_pods_by_owner() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "q-abc",
            "namespace": "ns",
            "labels": {LABEL_MODEL: "m", JOB_NAME_LABEL: "q"},
        },
        "status": {"phase": "Running"},
    }
    other = {**pod, "metadata": {**pod["metadata"], "name": "r-abc", "labels": {LABEL_MODEL: "m"}}}
    kube = watched(job(False, {}, active=1), pod, other)
    assert [
        p["metadata"]["name"]
        for p in kube.select("Pod", "ns", {LABEL_MODEL: "m", JOB_NAME_LABEL: "q"})
    ] == ["q-abc"]
    assert observe_job(kube, "ns", "absent") is None


def test_our_own_writes_are_seen_until_the_watch_catches_up() -> None:
    kube = watched(job(False, {}, version="5"))
    cache.remember(job(False, {}, active=1, version="6"))
    observed = observe_job(kube, "ns", "q")
    assert observed is not None
    assert observed.phase == "Running"
    # An older write never hides a newer version the watch brought (and is dropped then).
    newer = watched(job(False, {}, active=0, version="7"))
    assert observe_job(newer, "ns", "q").phase == "Pending"  # type: ignore[union-attr]
    assert observe_job(kube, "ns", "q").phase == "Pending"  # type: ignore[union-attr]


def test_a_deleted_job_is_hidden_until_the_watch_reports_it_gone() -> None:
    kube = watched(job(False, {}))
    cache.remember_deleted("Job", "ns", "q", "uid-q")
    assert observe_job(kube, "ns", "q") is None
    cache.gone(cache.slim(job(False, {})))
    assert observe_job(kube, "ns", "q") is not None


def test_a_write_is_let_go_once_the_watch_reports_its_version() -> None:
    """What this process wrote is not kept beside the watched copy once the watch has it (a
    thousand models' status answers would double what the cache holds)."""
    key = cache.name_key("Job", "ns", "q")
    cache.remember(job(False, {}, active=1, version="6"))
    cache.seen(job(False, {}, version="5"))  # an older version: ours is still the news
    assert key in cache._written
    cache.seen(job(False, {}, active=1, version="6"))
    assert key not in cache._written
