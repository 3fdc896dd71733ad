"""The skeleton both kinds' handlers share: the Kopf handlers themselves, one pass per object
at a time from a fresh read, timed and counted; an invalid spec stopped with a condition; one
status writer; events; and forgetting an object once it is deleted."""

import threading
import time
from collections.abc import Callable, Iterator, Sequence
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
from quantfleet.handlers import metrics, nodes, runtime
from quantfleet.kube import children, custom_objects

Parsed = TypeVar("Parsed", bound=BaseModel)
# One lock per object (kind, namespace, name), dropped when the object is gone.
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Handlers:
    """The Kopf handlers `register` made for one kind."""

    changed: Callable[..., None]
    child_changed: Callable[..., None]
    deleted: Callable[..., None]


def register(
    kind: str,
    reconcile: Callable[[Json, nodes.Fleet], Any],
    owner_label: str,
    resync_seconds: float,
    forget_more: Callable[[str, str, Json], None],
) -> Handlers:
    """Register the handlers every kind of ours has; one idempotent `reconcile` serves them:
    - when an object appears, changes, resumes or is due a resync, reconcile it;
    - when one of its Jobs, Deployments or their pods (labelled `owner_label`: its name)
      changes, reconcile the object that owns it: a pod's waiting reason (ImagePullBackOff, a
      crash loop) reaches the conditions at once, not at the next resync;
    - when it is gone, drop its lock and call `forget_more` (namespace, name, last body). This is
      a watch event, not an on.delete handler, which would add a finalizer for nothing (the
      children go by owner references)."""
    plural = PLURALS[kind]

    def changed(name: str, namespace: str | None, **kwargs: Any) -> None:
        reconcile_named(kind, namespace or "", name, reconcile, nodes.listed(kwargs))

    def child_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
        owner = labels[owner_label]
        reconcile_named(kind, namespace or "", owner, reconcile, nodes.listed(kwargs))

    def deleted(event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
        if event["type"] == "DELETED":
            forget(kind, namespace or "", name)
            forget_more(namespace or "", name, dict(event["object"]))

    kopf.timer(
        GROUP, VERSION, plural, id=plural, interval=resync_seconds, initial_delay=resync_seconds
    )(changed)
    for on in (kopf.on.update, kopf.on.create, kopf.on.resume):
        on(GROUP, VERSION, plural, id=plural)(changed)
    # Any: kopf does not export its filter-token type.
    owned: dict[str, Any] = {LABEL_MANAGED_BY: MANAGED_BY, owner_label: kopf.PRESENT}
    for group_version, child_plural in (
        ("batch/v1", "jobs"),
        ("apps/v1", "deployments"),
        ("v1", "pods"),
    ):
        kopf.on.event(group_version, child_plural, id=f"{plural}-children", labels=owned)(
            child_changed
        )
    kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-deleted")(deleted)
    return Handlers(changed, child_changed, deleted)


def reconcile_named(
    kind: str,
    namespace: str,
    name: str,
    reconcile: Callable[[Json, nodes.Fleet], Any],
    fleet: nodes.Fleet,
) -> None:
    """Reconcile one object at a time, from a fresh read: triggers arriving together (a Job
    event, a resync, a model turning Ready) then cost one set of writes, not racing ones. An
    object being deleted (foreground deletion, Argo CD's default, keeps it while the garbage
    collector removes its children) is left alone: a pass would recreate what is going and
    report the children's going as failures."""
    key = (kind, namespace, name)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        body = custom_objects.read_custom(runtime.api_client(), kind, namespace, name)
        if body is None:
            forget(kind, namespace, name)
            return
        if body["metadata"].get("deletionTimestamp"):
            return
        with timed(kind):
            reconcile(body, fleet)


def forget(kind: str, namespace: str, name: str) -> None:
    """Drop what this process keeps for an object that is gone."""
    with _locks_guard:
        _locks.pop((kind, namespace, name), None)


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


def remove_existing(*manifests: Json) -> bool:
    """Delete those of the objects `manifests` name that exist, deciding from the live objects
    (a status can be stale; a DELETE of what is gone is a wasted write). Whether any went."""
    api, removed = runtime.api_client(), False
    for manifest in manifests:
        if children.read(api, manifest) is not None:
            removed = children.delete(api, manifest) or removed
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
