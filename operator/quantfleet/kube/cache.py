"""What a pass reads instead of the API server: the objects the operator watches (its own kinds
and the children it owns: Jobs, pods, Deployments, Services, ConfigMaps), kept in memory by a
Kopf index (`quantfleet.handlers.watched`) as compact JSON (`packed`), overlaid with what this
process itself just wrote until the watch brings it back. Kopf fills its indexes before any other
handler runs, so a pass never sees an empty cache for a full cluster; the overlay covers the
moment between a write and its watch event, so a pass right after a write neither writes again
nor creates twice.

resourceVersions are compared as numbers: they are etcd revisions on every API server we know;
one that is not a number counts as newer when it comes from the watch."""

import json
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client

from quantfleet.api.common import BENCHMARK_RUN, QUANTIZED_MODEL
from quantfleet.api.contract import LABEL_BENCHMARK_RUN, LABEL_MODEL
from quantfleet.builders.children import Json

# The labels that name a child's owner, the key its owner's lookups go by.
OWNER_LABELS = (LABEL_MODEL, LABEL_BENCHMARK_RUN)
# Our own kinds, listed by namespace (the runs that name a model).
LISTED = (QUANTIZED_MODEL, BENCHMARK_RUN)
# Kinds whose managedFields a pass reads (a hand edit of an applied child is put back).
KEEP_MANAGED_FIELDS = {"Deployment", "Service"}

Key = tuple[str, ...]
Value = TypeVar("Value")

# This process's writes by (kind, namespace, name), and the uids of objects it deleted, until
# the watch catches up.
_written: dict[Key, Json] = {}
_written_by: dict[Key, set[str]] = {}  # the names in _written by their other keys (owner)
_deleted: dict[Key, str] = {}
_guard = threading.Lock()


def keys(body: Json) -> list[Key]:
    """Where the index keeps an object: by kind and name, by owner (per owner label it carries),
    and by kind and namespace for our own kinds' listings."""
    kind, meta = body["kind"], body["metadata"]
    namespace = meta.get("namespace", "")
    found: list[Key] = [name_key(kind, namespace, meta["name"])]
    if kind in LISTED:
        found += [(kind, namespace), (kind,)]
    labels = meta.get("labels") or {}
    found += [
        owner_key(kind, namespace, label, labels[label])
        for label in OWNER_LABELS
        if label in labels
    ]
    return found


def name_key(kind: str, namespace: str, name: str) -> Key:
    return ("name", kind, namespace, name)


def key_of(body: Json) -> Key:
    """The name key of an object (with its kind and metadata)."""
    meta = body["metadata"]
    return name_key(body["kind"], meta.get("namespace", ""), meta["name"])


def owner_key(kind: str, namespace: str, label: str, owner: str) -> Key:
    return ("owner", kind, namespace, label, owner)


def slim(body: Mapping[str, Any], kind: str | None = None) -> Json:
    """The object as the cache keeps it: managedFields only where a pass reads them, and of a
    Job's or a pod's spec only what a pass reads (a pod template is most of a Job)."""
    raw = dict(body)
    kind = kind or str(raw.get("kind"))
    meta = dict(raw["metadata"])
    if kind not in KEEP_MANAGED_FIELDS:
        meta.pop("managedFields", None)
    spec = raw.get("spec") or {}
    if kind == "Job":
        raw["spec"] = {"suspend": spec.get("suspend")}
    elif kind == "Pod":
        containers = [
            {"name": c.get("name"), "startupProbe": c.get("startupProbe")}
            for c in spec.get("containers") or ()
        ]
        raw["spec"] = {"nodeName": spec.get("nodeName"), "containers": containers}
        raw["status"] = _pod_status(raw.get("status") or {})
    return {**raw, "kind": kind, "metadata": meta}


def indexed(body: Mapping[str, Any], kind: str | None = None) -> dict[Key, bytes]:
    """What the index keeps of an object: slimmed and packed, under each of its keys."""
    kept = slim(body, kind)
    return dict.fromkeys(keys(kept), packed(kept))


def packed(body: Json) -> bytes:
    """An object as the index keeps it: compact JSON. One allocation, not the hundreds of small
    dicts, lists and strings of a decoded object: at a thousand models those filled the
    allocator's pages among each watch event's short-lived ones, which then stayed resident.
    Each read decodes its own copy (tens of µs), which a pass may change freely."""
    return json.dumps(body, separators=(",", ":")).encode()


def interned(value: Any) -> Any:
    """`value` copied with its keys interned: hundreds of Nodes kept in memory repeat the same
    keys, each decoded anew from its own watch event. Not the values: the unique ones (uids,
    resourceVersions, times) would grow the interpreter's table of interned strings with every
    event."""
    if isinstance(value, dict):
        return {sys.intern(key): interned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interned(item) for item in value]
    return value


def _pod_status(status: Json) -> Json:
    """Of a pod's status, what a pass reads: its phase and why, whether the scheduler refused
    it, and its containers' states (not its addresses, images or other conditions)."""
    containers = [
        {key: c[key] for key in ("name", "ready", "state", "lastState") if key in c}
        for c in status.get("containerStatuses") or ()
    ]
    kept: Json = {key: status[key] for key in ("phase", "reason", "message") if key in status}
    scheduled = [c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"]
    return {**kept, "conditions": scheduled, "containerStatuses": containers}


def remember(body: Json, kind: str | None = None) -> Json:
    """What the API server answered a write of ours with, until the watch brings it."""
    kept = slim(body, kind)
    meta, key = kept["metadata"], key_of(kept)
    with _guard:
        _forget_written(key)
        _written[key] = kept
        for owned in keys(kept)[1:]:
            _written_by.setdefault(owned, set()).add(meta["name"])
    return kept


def remember_deleted(kind: str, namespace: str, name: str, uid: str) -> None:
    """An object of ours we deleted: hidden until the watch reports it gone."""
    with _guard:
        _forget_written(name_key(kind, namespace, name))
        _deleted[name_key(kind, namespace, name)] = uid


def seen(body: Json) -> None:
    """The watch brought `body`: a write of ours it is as new as need not be kept any more."""
    key = key_of(body)
    with _guard:
        written = _written.get(key)
        if written is not None and not _newer(written, body):
            _forget_written(key)


def gone(body: Json) -> None:
    """The watch reported `body` deleted: neither a write nor a deletion of ours is kept."""
    key = key_of(body)
    with _guard:
        _deleted.pop(key, None)
        _forget_written(key)


def _forget_written(key: Key) -> None:
    """Drop a write of ours (the caller holds _guard)."""
    body = _written.pop(key, None)
    if body is None:
        return
    for owned in keys(body)[1:]:
        names = _written_by.get(owned, set())
        names.discard(body["metadata"]["name"])
        if not names:
            _written_by.pop(owned, None)


@dataclass(frozen=True)
class Cache:
    """One pass's view of the cluster: the API client it writes with, and for reading the index
    Kopf handed the handler, with this process's own writes over it."""

    api: client.ApiClient
    _index: Mapping[Key, Iterable[bytes]]

    def get(self, kind: str, namespace: str, name: str) -> Json | None:
        """The object, or None when the watch has none (or we deleted it)."""
        key = name_key(kind, namespace, name)
        return _current(key, next(iter(_unpacked(self._index.get(key, ()))), None))

    def select(self, kind: str, namespace: str, labels: Mapping[str, str]) -> list[Json]:
        """The objects of `kind` carrying `labels`, one of which names their owner."""
        label = next(label for label in OWNER_LABELS if label in labels)
        owner = owner_key(kind, namespace, label, labels[label])
        watched = {body["metadata"]["name"]: body for body in _unpacked(self._index.get(owner, ()))}
        with _guard:
            written = [name for name in _written_by.get(owner, ()) if name not in watched]
        found = [_current(name_key(kind, namespace, name), body) for name, body in watched.items()]
        found += [self.get(kind, namespace, name) for name in written]
        return [
            body
            for body in found
            if body is not None and labels.items() <= (body["metadata"].get("labels") or {}).items()
        ]

    def of_kind(self, kind: str, namespace: str) -> list[Json]:
        """Every object of our `kind` in `namespace`."""
        return _unpacked(self._index.get((kind, namespace), ()))

    def all_of(self, kind: str) -> list[Json]:
        """Every object of our `kind` the operator watches."""
        return _unpacked(self._index.get((kind,), ()))


def flatten(index: Mapping[Any, Iterable[Value]]) -> list[Value]:
    """Every value of a Kopf index. The handlers' threads read the indexes while Kopf's event
    loop updates them; `list()` over a dict's own iterator runs without giving up the GIL, so
    the keys, then each store, are copied whole (a Python-level walk over the index would see
    it change size)."""
    return [value for key in list(index) for value in _values(index.get(key, ()))]


def _values(store: Iterable[Value]) -> list[Value]:
    """A Kopf store's values, copied at once (see flatten)."""
    return list(store)


def _current(key: Key, watched: Json | None) -> Json | None:
    """The object at `key` as the watch has it (`watched`, read from the index first: a write
    is dropped only once the index holds what replaces it), with this process's own write or
    deletion over it."""
    with _guard:
        written = _written.get(key)
        deleted = _deleted.get(key)
        if written is not None and watched is not None and not _newer(written, watched):
            _forget_written(key)  # the watch has caught up
            written = None
    if written is not None:
        return written
    if watched is not None and deleted is not None and deleted == watched["metadata"].get("uid"):
        return None
    return watched


def _unpacked(store: Iterable[bytes]) -> list[Json]:
    """The objects of a store of the watched index, each decoded (see packed)."""
    return [json.loads(value) for value in _values(store)]


def _newer(ours: Json, theirs: Json) -> bool:
    """Whether `ours` is a later version than `theirs`."""
    mine, other = ours["metadata"].get("resourceVersion"), theirs["metadata"].get("resourceVersion")
    try:
        return int(mine) > int(other)
    except (TypeError, ValueError):
        return False
