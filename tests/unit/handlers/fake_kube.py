"""An in-memory stand-in for the `quantfleet.kube` functions the handlers call: it stores objects
by (kind, namespace, name), applies status merge patches as the API server does (RFC 7386), and
records every write, so a test can say what a pass wrote and deleted."""

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from quantfleet.api.contract import ANNOTATION_SPEC_HASH, LABEL_COMPONENT
from quantfleet.api.results import AnyResult, EvaluateResult
from quantfleet.builders.status import JobObservation, JobPhase
from quantfleet.builders.storage import Reference
from quantfleet.kube import children
from quantfleet.kube.baseline_cache import cache_entries

Json = dict[str, Any]
Key = tuple[str, str, str]


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 applied: what the API server makes of a JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def key_of(manifest: Json) -> Key:
    meta = manifest["metadata"]
    return manifest["kind"], meta["namespace"], meta["name"]


@dataclass
class FakeKube:
    """Objects, Job outcomes per component, the baseline cache, and a log of writes."""

    objects: dict[Key, Json] = field(default_factory=dict)
    # What a created Job of each component is seen as on later passes.
    outcomes: dict[str, tuple[JobPhase, AnyResult | None]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, kind, name)
    reads: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, kind, what)
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (ns, pod, container)
    status_patches: list[Json] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)

    def add(self, body: Json) -> Json:
        self.objects[key_of(body)] = copy.deepcopy(body)
        return body

    def writes_of(self, verb: str) -> list[tuple[str, str]]:
        return [(kind, name) for v, kind, name in self.writes if v == verb]

    def clear_log(self) -> None:
        self.writes.clear()
        self.reads.clear()
        self.status_patches.clear()
        self.events.clear()

    # --- Jobs ---
    def observe_job(self, api: object, namespace: str, name: str) -> JobObservation | None:
        job = self.objects.get(("Job", namespace, name))
        if job is None:
            return None
        component = job["metadata"]["labels"][LABEL_COMPONENT]
        phase, result = self.outcomes.get(component, ("Pending", None))
        return JobObservation(name, phase, result)

    def ensure_job(self, api: object, manifest: Json) -> JobObservation:
        meta = manifest["metadata"]
        return self.observe_job(api, meta["namespace"], meta["name"]) or self.create_job(
            api, manifest
        )

    def create_job(self, api: object, manifest: Json) -> JobObservation:
        meta = manifest["metadata"]
        self.add(manifest)
        self.writes.append(("create", "Job", meta["name"]))
        return JobObservation(meta["name"], "Pending")

    def delete_other_jobs(
        self, api: object, namespace: str, labels: dict[str, str], keep: str
    ) -> list[str]:
        stale = [
            name
            for (kind, ns, name), job in self.objects.items()
            if kind == "Job"
            and ns == namespace
            and name != keep
            and labels.items() <= job["metadata"]["labels"].items()
        ]
        for name in stale:
            del self.objects[("Job", namespace, name)]
            self.writes.append(("delete", "Job", name))
        return stale

    # --- What a Job mounts (kube.references) ---
    def missing(self, api: object, namespace: str, references: list[Reference]) -> str | None:
        for ref in references:
            self.reads.append(("get", ref.kind, ref.name))
            found = self.objects.get((ref.kind, namespace, ref.name))
            if found is None:
                return f"{ref.kind} {namespace}/{ref.name} not found ({ref.field})"
            if ref.key is not None and ref.key not in (found.get("data") or {}):
                return f"ConfigMap {namespace}/{ref.name} has no key {ref.key} ({ref.field})"
        return None

    # --- Any object by manifest ---
    def read(self, api: object, manifest: Json) -> Json | None:
        live = self.objects.get(key_of(manifest))
        return copy.deepcopy(live) if live is not None else None

    def ensure_applied(self, api: object, manifest: Json) -> Json:
        live = self.read(api, manifest)
        wanted = manifest["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
        if live and live["metadata"].get("annotations", {}).get(ANNOTATION_SPEC_HASH) == wanted:
            return live
        self.writes.append(("apply", manifest["kind"], manifest["metadata"]["name"]))
        return copy.deepcopy(self.add(manifest))

    def delete(self, api: object, manifest: Json) -> bool:
        self.writes.append(("delete", manifest["kind"], manifest["metadata"]["name"]))
        return self.objects.pop(key_of(manifest), None) is not None

    def patch(self, api: object, body: Json, patch: Json) -> None:
        key = key_of(body)
        self.objects[key] = apply_merge_patch(self.objects[key], patch)
        self.writes.append(("patch", body["kind"], body["metadata"]["name"]))

    def patch_status(self, api: object, body: Json, status: Json) -> None:
        stored = self.objects[key_of(body)]
        stored["status"] = apply_merge_patch(stored.get("status"), status)
        self.writes.append(("patch-status", body["kind"], body["metadata"]["name"]))
        self.status_patches.append(copy.deepcopy(status))

    observe_deployment = staticmethod(children.observe_deployment)

    def read_log(
        self, api: object, namespace: str, pod: str, container: str, *, previous: bool, lines: int
    ) -> str:
        self.reads.append(("log", "Pod", f"{pod}/{container}{' previous' if previous else ''}"))
        return "\n".join(self.logs.get((namespace, pod, container), "").splitlines()[-lines:])

    def list_pods(self, api: object, namespace: str, match_labels: dict[str, str]) -> list[Json]:
        self.reads.append(("list", "Pod", ",".join(f"{k}={v}" for k, v in match_labels.items())))
        return [
            copy.deepcopy(pod)
            for (kind, ns, _), pod in self.objects.items()
            if kind == "Pod"
            and ns == namespace
            and match_labels.items() <= pod["metadata"]["labels"].items()
        ]

    # --- Our own kinds ---
    def read_custom(self, api: object, kind: str, namespace: str, name: str) -> Json | None:
        return self.read(api, {"kind": kind, "metadata": {"namespace": namespace, "name": name}})

    def list_custom(self, api: object, kind: str, namespace: str) -> list[Json]:
        return [
            copy.deepcopy(body)
            for (held, ns, _), body in self.objects.items()
            if held == kind and ns == namespace
        ]

    # --- The baseline score cache ---
    def read_baseline_scores(self, api: object, namespace: str, spec: object) -> dict[str, Any]:
        return copy.deepcopy(self.scores)

    def write_baseline_scores(
        self, api: object, namespace: str, spec: object, result: EvaluateResult
    ) -> None:
        for task, entry in cache_entries(result).items():
            self.scores[task] = json.loads(entry)
        self.writes.append(("apply", "ConfigMap", "baseline-cache"))

    # --- Events (kopf.event) ---
    def event(self, body: object, *, type: str, reason: str, message: str = "") -> None:
        self.events.append((reason, message))
