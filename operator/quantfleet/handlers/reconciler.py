"""The skeleton both kinds' handlers share: the Kopf handlers themselves, one pass per object
at a time from what the watches keep, timed, counted and retried; the resync loops; an invalid
spec stopped with a condition; one status writer; events; and forgetting an object once it is
deleted."""

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar, cast

import kopf
from pydantic import BaseModel, ValidationError

from quantfleet.api.common import GROUP, MAX_MESSAGE_CHARS, PLURALS, VERSION, Condition
from quantfleet.api.contract import LABEL_MANAGED_BY, MANAGED_BY
from quantfleet.builders.children import Json
from quantfleet.builders.conditions import ConditionStatus, condition, stamp
from quantfleet.handlers import metrics, nodes, runtime, watched
from quantfleet.handlers.startup import FINALIZER
from quantfleet.kube import children, custom_objects
from quantfleet.kube.cache import Cache

logger = logging.getLogger(__name__)
Parsed = TypeVar("Parsed", bound=BaseModel)
# One lock per object (kind, namespace, name), dropped when the object is gone.
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()
# The objects a pass waits to start for (it holds no lock yet).
_waiting: set[tuple[str, str, str]] = set()
# The indexes Kopf last handed a handler (live views: Kopf updates them in place), for the
# resync loops, which no Kopf handler calls.
INDEXES = (nodes.NODES_INDEX, nodes.PODS_INDEX, nodes.OUTPUTS_INDEX, watched.INDEX)
_indexes: dict[str, Any] = {}
# The delay before the next try of an object whose last pass failed, by (kind, namespace, name).
_retries: dict[tuple[str, str, str], float] = {}
RETRY_SECONDS = 5
# A child's events come in bursts (a Job created, its pod made, bound and started, the Job
# counting it): the pass they trigger starts this much later, so a burst costs one pass.
CHILD_SETTLE_SECONDS = 1.0
# The passes children triggered that wait to settle (a task needs a reference while it runs).
SETTLING: set["asyncio.Task[None]"] = set()


@dataclass(frozen=True)
class Handlers:
    """The Kopf handlers `register` made for one kind."""

    changed: Callable[..., None]
    child_changed: Callable[..., Awaitable[None]]
    event: Callable[..., Awaitable[None]]


def register(
    kind: str,
    reconcile: Callable[[Json, nodes.Fleet], Any],
    owner_label: str,
    resync_seconds: float,
    forget_more: Callable[[str, str, Json], None],
) -> Handlers:
    """Register the handlers every kind of ours has; one idempotent `reconcile` serves them:
    - when an object appears (or is listed at start) or its spec changes (a generation its
      status has not observed), reconcile it; its own status writes and metadata edits do not;
    - every `resync_seconds`, reconcile it (`_start_resync`): the pass reads the cache, so one
      that changes nothing costs the API server nothing;
    - when one of its Jobs, Deployments, Services or their pods (labelled `owner_label`: its
      name) changes, reconcile the object that owns it CHILD_SETTLE_SECONDS later (one pass
      for a burst of events): a pod's waiting reason (ImagePullBackOff, a crash loop) reaches
      the conditions within a second or two, not at the next resync;
    - when it is gone, drop its lock and call `forget_more` (namespace, name, last body).
    Watch events, not Kopf's on.create/on.update: those would store Kopf's progress in two
    annotation patches per change (writes for nothing: the pass is level-based), and no
    on.delete handler, which would add a finalizer (the children go by owner references). A
    pass that fails is tried again after RETRY_SECONDS, doubling up to the resync."""
    plural = PLURALS[kind]

    def changed(name: str, namespace: str | None, **kwargs: Any) -> None:
        _indexes.update(passed := indexes(kwargs))
        reconcile_with_retry(kind, namespace or "", name, reconcile, passed, resync_seconds)

    async def child_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
        key = (kind, namespace or "", labels[owner_label])
        if not claim(key):
            return  # a pass that has not started yet will see this change
        _indexes.update(passed := indexes(kwargs))
        args = (*key, reconcile, passed, resync_seconds, True)
        # A task of its own: Kopf handles a child's next event only once this handler returns.
        task = asyncio.create_task(_settled(args))
        SETTLING.add(task)
        task.add_done_callback(SETTLING.discard)

    async def event(
        event: kopf.RawEvent, namespace: str | None, name: str, body: kopf.Body, **kwargs: Any
    ) -> None:
        if event["type"] == "DELETED":
            forget(kind, namespace or "", name)
            forget_more(namespace or "", name, dict(event["object"]))
            return
        status = body.get("status") or {}
        if event["type"] == "MODIFIED" and status.get("observedGeneration") == body["metadata"].get(
            "generation"
        ):
            return
        await asyncio.to_thread(changed, name, namespace, **indexes(kwargs))

    kopf.on.startup(id=f"{plural}-resync")(lambda **_: _start_resync(kind, changed, resync_seconds))
    kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-event")(event)
    # Any: kopf does not export its filter-token type.
    owned: dict[str, Any] = {LABEL_MANAGED_BY: MANAGED_BY, owner_label: kopf.PRESENT}
    for group_version, child_plural in (
        ("batch/v1", "jobs"),
        ("apps/v1", "deployments"),
        ("v1", "services"),
        ("v1", "pods"),
    ):
        kopf.on.event(group_version, child_plural, id=f"{plural}-children", labels=owned)(
            child_changed
        )
    return Handlers(changed, child_changed, event)


def indexes(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The indexes among the keywords Kopf passed a handler (not the body: a pass reads the
    cache, and what waits to run holds no watch event)."""
    return {key: value for key, value in kwargs.items() if key in INDEXES}


def _start_resync(kind: str, changed: Callable[..., None], interval: float) -> None:
    """One thread per kind resyncs every object of it once per `interval`, spread over it:
    one loop for the fleet instead of a Kopf timer per object (each of which would put a
    finalizer on its object: a write per object, and deletion waiting on the operator)."""

    def resync() -> None:
        while True:
            time.sleep(interval)
            bodies = watched_objects(kind)
            for body in bodies:
                namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
                try:
                    changed(name, namespace, **_indexes)
                except kopf.PermanentError:
                    pass  # its conditions say why; the next change of its spec is tried
                except Exception:
                    logger.exception("Resync of %s %s/%s failed", kind, namespace, name)
                time.sleep(interval / 2 / max(len(bodies), 1))

    threading.Thread(target=resync, name=f"resync-{kind}", daemon=True).start()


def watched_objects(kind: str) -> list[Json]:
    """Every object of our `kind` the watches keep (none before a handler has run)."""
    return watched.view(_indexes, None).all_of(kind) if _indexes else []


def reconcile_with_retry(
    kind: str,
    namespace: str,
    name: str,
    reconcile: Callable[[Json, nodes.Fleet], Any],
    kwargs: dict[str, Any],
    resync_seconds: float,
    claimed: bool = False,
) -> None:
    """One pass for a trigger (`claimed`: see reconcile_named); a pass that failed for a reason
    a retry may mend (not a kopf.PermanentError) is tried again later, sooner than the
    resync."""
    key = (kind, namespace, name)
    try:
        reconcile_named(kind, namespace, name, reconcile, nodes.listed(kwargs), claimed)
    except kopf.PermanentError:
        raise
    except Exception:
        with _locks_guard:
            if claimed:
                _waiting.discard(key)  # a claimed pass that failed before it started
            delay = _retries[key] = min(_retries.get(key, RETRY_SECONDS / 2) * 2, resync_seconds)
        retry = threading.Timer(
            delay, _retry, (kind, namespace, name, reconcile, kwargs, resync_seconds)
        )
        retry.daemon = True
        retry.start()
        raise
    with _locks_guard:
        _retries.pop(key, None)


async def _settled(args: tuple[Any, ...]) -> None:
    """A pass a child triggered (claimed), once its burst of events has settled."""
    await asyncio.sleep(CHILD_SETTLE_SECONDS)
    await asyncio.to_thread(_retry, *args)


def _retry(*args: Any) -> None:
    """A retry (in a timer's thread) or a settled child's pass: its failure is logged (and
    retried in turn)."""
    try:
        reconcile_with_retry(*args)
    except Exception:
        logger.exception("Retried pass of %s %s/%s failed", *args[:3])


def reconcile_named(
    kind: str,
    namespace: str,
    name: str,
    reconcile: Callable[[Json, nodes.Fleet], Any],
    fleet: nodes.Fleet,
    claimed: bool = False,
) -> None:
    """Reconcile one object at a time, from the cache: triggers arriving together (a Job
    event, a resync, a model turning Ready) then cost one set of writes, not racing ones, and
    while one pass waits to start, further triggers add none (it reads the cache after they
    arrived: a work queue's deduplication; `claimed`: the trigger already claimed it). An
    object being deleted (foreground deletion, Argo CD's default, keeps it while the garbage
    collector removes its children) is left alone: a pass would recreate what is going and
    report the children's going as failures."""
    key = (kind, namespace, name)
    if not (claimed or claim(key)):
        return  # a pass that has not started yet will see what this trigger would
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        with _locks_guard:
            _waiting.discard(key)
        body = custom_objects.read_custom(fleet.cache, kind, namespace, name)
        if body is None:
            forget(kind, namespace, name)
            return
        if FINALIZER in (finalizers := body["metadata"].get("finalizers") or []):
            # Left by an older operator's Kopf timers; nothing here waits on it any more.
            rest = [f for f in finalizers if f != FINALIZER]
            version = body["metadata"]["resourceVersion"]
            children.patch(
                fleet.cache, body, {"metadata": {"finalizers": rest, "resourceVersion": version}}
            )
        if body["metadata"].get("deletionTimestamp"):
            return
        with timed(kind):
            reconcile(body, fleet)


def claim(key: tuple[str, str, str]) -> bool:
    """Whether a trigger for the object `key` names needs a pass of its own: not while one has
    yet to start."""
    with _locks_guard:
        if key in _waiting:
            return False
        _waiting.add(key)
        return True


def forget(kind: str, namespace: str, name: str) -> None:
    """Drop what this process keeps for an object that is gone."""
    with _locks_guard:
        _locks.pop((kind, namespace, name), None)
        _retries.pop((kind, namespace, name), None)


def tracked() -> set[tuple[str, str, str]]:
    """The objects this process holds a lock for."""
    with _locks_guard:
        return set(_locks)


@contextmanager
def timed(kind: str) -> Iterator[None]:
    """Count a pass, time it, and count its failure by exception class."""
    started = time.monotonic()
    metrics.RECONCILES.labels(kind).inc()
    try:
        yield
    except Exception as error:
        metrics.RECONCILE_ERRORS.labels(kind, type(error).__name__).inc()
        raise
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)


def parse(
    model: type[Parsed],
    body: Json,
    refused: Sequence[tuple[StrEnum, ConditionStatus]],
    reason: StrEnum,
) -> Parsed:
    """The typed object; a spec the CRD let through but the models refuse sets the `refused`
    conditions (with `reason`) and observedGeneration, and stops with a PermanentError."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        write_conditions(body, refused, reason, message)
        raise kopf.PermanentError(f"Invalid spec: {message[:MAX_MESSAGE_CHARS]}") from error


@contextmanager
def refusal_reported(
    body: Json, refused: Sequence[tuple[StrEnum, ConditionStatus]], reason: StrEnum
) -> Iterator[None]:
    """A pass stopped for good (kopf.PermanentError: a child the API server calls invalid, a
    verb RBAC denies) still leaves its reason in status: the `refused` conditions, with
    `reason` and the error, never an object without status."""
    try:
        yield
    except kopf.PermanentError as error:
        write_conditions(body, refused, reason, str(error))
        raise


def write_conditions(
    body: Json, conditions: Sequence[tuple[StrEnum, ConditionStatus]], reason: StrEnum, message: str
) -> None:
    """Set `conditions` (with `reason` and `message`) and observedGeneration over the status
    last written, the rest of it kept."""
    old = body.get("status") or {}
    generation = body["metadata"].get("generation", 0)
    previous = _conditions(old.get("conditions") or [])
    now = datetime.now(UTC)
    fresh = [
        stamp(condition(kind, state, reason, message), previous, generation, now)
        for kind, state in conditions
    ]
    kept = [c for c in previous if c.type not in {f.type for f in fresh}]
    dumped = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in [*kept, *fresh]]
    write_status(body, {**old, "observedGeneration": generation, "conditions": dumped})


def write_status(body: Json, status: BaseModel | Json) -> bool:
    """The one status writer: a merge patch from the status `body` holds to `status`, sent only
    when more than transition times differ. Returns whether it wrote."""
    new = (
        status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(status, BaseModel)
        else status
    )
    old = body.get("status") or {}
    if _comparable(new) == _comparable(old):
        return False
    children.patch_status(runtime.api_client(), body, merge_patch(old, new))
    return True


def merge_patch(old: Json, new: Json) -> Json:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: changed values, and a null
    for each key gone at any depth; lists are replaced whole."""
    patch: Json = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            if nested := merge_patch(before, value):
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = value
    return patch


def remove_existing(kube: Cache, *manifests: Json) -> bool:
    """Delete those of the objects `manifests` name that exist, deciding from the watched
    objects (a status can be stale; a DELETE of what is gone is a wasted write). Whether any
    went."""
    removed = False
    for manifest in manifests:
        if children.read(kube, manifest) is not None:
            removed = children.delete(kube, manifest) or removed
    return removed


def post_event(body: Json, reason: str, message: str, kind: str = "Normal") -> None:
    """A Kubernetes event on the object (kopf.event: not filtered by the posting level)."""
    kopf.event(
        cast(kopf.Body, body),  # kopf reads only the object's reference from it
        type=kind,
        reason=reason,
        message=message[:MAX_MESSAGE_CHARS],
    )


def _comparable(status: Json) -> Json:
    """Status without transition times, which change only when the status does."""
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions", [])
    ]
    return {**status, "conditions": conditions}


def _conditions(raw: list[Json]) -> list[Condition]:
    """The conditions last written, as far as they still parse."""
    parsed = []
    for entry in raw:
        try:
            parsed.append(Condition.model_validate(entry))
        except ValidationError:
            continue
    return parsed
