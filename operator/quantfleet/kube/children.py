"""Reading and writing the objects the reconcilers own, by manifest: Jobs (and their pods'
results), applied children (Deployment, Service, ConfigMap), any object by name, and the status
of our own kinds."""

from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from quantfleet.api import common as api_common
from quantfleet.api.contract import ANNOTATION_SPEC_HASH, JOB_CONTAINER, LABEL_KUEUE_QUEUE
from quantfleet.api.results import AnyResult, parse_result
from quantfleet.builders import job_pods
from quantfleet.builders.children import Json, edited_by_others
from quantfleet.builders.status import DeploymentObservation, JobObservation, JobPhase
from quantfleet.kube.cache import OWNER_LABELS, Cache, remember, remember_deleted
from quantfleet.kube.errors import api_errors

FIELD_MANAGER = "quantfleet"
# Kubernetes' resource names for the kinds we read and write by manifest, and our own.
PLURALS = {
    "Job": "jobs",
    "Deployment": "deployments",
    "Service": "services",
    "ConfigMap": "configmaps",
    **api_common.PLURALS,
}
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
_VERBS = {"POST": "creating", "GET": "reading", "DELETE": "deleting", "PATCH": "patching"}


def observe_job(kube: Cache, namespace: str, name: str) -> JobObservation | None:
    """The Job's phase and its pod's result, or None when there is no such Job (from the
    cache)."""
    job = kube.get("Job", namespace, name)
    if job is None:
        return None
    status, labels = job.get("status") or {}, job["metadata"].get("labels") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or [] if c["status"] == "True"}
    owner = next(label for label in OWNER_LABELS if label in labels)
    pods = list_pods(kube, namespace, {owner: labels[owner], JOB_NAME_LABEL: name})
    if "Complete" in conditions:
        return JobObservation(name, "Succeeded", _result(pods))
    if job["spec"].get("suspend") and (queue := labels.get(LABEL_KUEUE_QUEUE)):
        # Kueue holds it until its ClusterQueue has quota; it alone unsuspends the Job.
        return JobObservation(name, "Queued", detail=f"queued in Kueue LocalQueue {queue}")
    if "Failed" in conditions:
        failed = conditions["Failed"]
        detail = failed.get("message") or failed.get("reason") or ""
        return JobObservation(name, "Failed", _result(pods), detail, pod_ended=job_pods.ended(pods))
    # Pending until a pod has started; one that ended before the Job's condition is set (the
    # controller's next write) still counts as running, not as pending again.
    started = any(
        status.get(count) for count in ("active", "succeeded", "failed", "uncountedTerminatedPods")
    )
    phase: JobPhase = "Running" if started else "Pending"
    stuck = job_pods.stuck(pods, datetime.now(UTC))
    return JobObservation(name, phase, pod_ended=job_pods.ended(pods), pod_stuck=stuck)


def ensure_job(kube: Cache, manifest: Json) -> JobObservation:
    """The Job named in `manifest`, created if missing. Jobs are immutable: never patched."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    return observe_job(kube, namespace, name) or create_job(kube, manifest)


def create_job(kube: Cache, manifest: Json) -> JobObservation:
    """Create the Job `manifest` describes; one that already exists (made by this process a
    moment before the watch told it) is read instead."""
    # JSON in and out: the typed client would build a model object, and a Configuration copy
    # for each of its parts, from the whole Job (a third of a pass at a thousand models).
    created = _call(kube.api, "POST", manifest, body=manifest, exists_ok=True)
    if created := created or _call(kube.api, "GET", manifest):
        remember(created, "Job")
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    return observe_job(kube, namespace, name) or JobObservation(name, "Pending")


def delete_other_jobs(kube: Cache, namespace: str, labels: dict[str, str], keep: str) -> list[str]:
    """Delete the Jobs carrying `labels` (a component's, for inputs that no longer apply) but
    `keep`; returns their names."""
    stale = [
        job for job in kube.select("Job", namespace, labels) if job["metadata"]["name"] != keep
    ]
    for job in stale:
        name = job["metadata"]["name"]
        _call(
            kube.api,
            "DELETE",
            job,
            missing_ok=True,
            query_params=[("propagationPolicy", "Background")],
        )
        remember_deleted("Job", namespace, name, job["metadata"].get("uid", ""))
    return [job["metadata"]["name"] for job in stale]


def ensure_applied(kube: Cache, manifest: Json) -> Json:
    """Server-side apply `manifest` unless the live object already carries its spec hash and
    nobody else changed what it sets (a hand edit is put back)."""
    live = read(kube, manifest)
    wanted = manifest["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    if (
        live
        and (live["metadata"].get("annotations") or {}).get(ANNOTATION_SPEC_HASH) == wanted
        and not edited_by_others(live, manifest, FIELD_MANAGER)
    ):
        return live
    applied = _call(
        kube.api,
        "PATCH",
        manifest,
        body=manifest,
        query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml"},
    )
    assert applied is not None  # a 404 raises: apply creates what is missing
    return remember(applied, manifest["kind"])


def delete(kube: Cache, manifest: Json) -> bool:
    """Delete the object `manifest` names; False when it was already gone."""
    live = read(kube, manifest)
    gone = _call(kube.api, "DELETE", manifest, missing_ok=True) is None
    meta = manifest["metadata"]
    uid = (live or {}).get("metadata", {}).get("uid", "")
    remember_deleted(manifest["kind"], meta["namespace"], meta["name"], uid)
    return not gone


def read(kube: Cache, manifest: Json) -> Json | None:
    """The object `manifest` names (any kind the operator watches), or None: from the cache."""
    meta = manifest["metadata"]
    return kube.get(manifest["kind"], meta["namespace"], meta["name"])


def observe_deployment(live: Json) -> DeploymentObservation:
    status = live.get("status") or {}
    containers = live["spec"]["template"]["spec"]["containers"]
    return DeploymentObservation(
        name=live["metadata"]["name"],
        replicas=live["spec"].get("replicas", 1),
        ready_replicas=status.get("readyReplicas") or 0,
        image=containers[0].get("image", ""),
    )


def list_pods(kube: Cache, namespace: str, match_labels: dict[str, str]) -> list[Json]:
    """The pods carrying `match_labels` (one of which names their owner), from the cache."""
    return kube.select("Pod", namespace, match_labels)


def read_log(
    api: client.ApiClient, namespace: str, pod: str, container: str, *, previous: bool, lines: int
) -> str:
    """The last `lines` of a container's log (of its run before this one when `previous`); ""
    when the kubelet no longer has it."""
    with api_errors(f"reading the log of Pod {namespace}/{pod}"):
        try:
            log: str = client.CoreV1Api(api).read_namespaced_pod_log(
                pod, namespace, container=container, previous=previous, tail_lines=lines
            )
        except ApiException as error:
            if error.status in (400, 404):  # "previous terminated container ... not found"
                return ""
            raise
    return log


def patch(kube: Cache, body: Json, patch: Json) -> None:
    """Send `patch` to our object `body` as a JSON merge patch."""
    patched = _call(
        kube.api,
        "PATCH",
        body,
        body=patch,
        header_params={"Content-Type": "application/merge-patch+json"},
    )
    assert patched is not None
    remember(patched, body["kind"])


def patch_status(api: client.ApiClient, body: Json, patch: Json) -> None:
    """Send `patch` to the status subresource of our object `body` as a JSON merge patch
    (RFC 7386: a null removes a field); the cache holds the answer until the watch brings it."""
    patched = _call(
        api,
        "PATCH",
        body,
        subresource="/status",
        body={"status": patch},
        header_params={"Content-Type": "application/merge-patch+json"},
    )
    assert patched is not None
    remember(patched, body["kind"])


def _result(pods: list[Json]) -> AnyResult | None:
    """The result in the termination message of the Job's newest finished pod, if readable."""
    messages = [
        (terminated.get("finishedAt"), terminated["message"])
        for pod in pods
        for status in (pod.get("status") or {}).get("containerStatuses") or []
        if status.get("name") == JOB_CONTAINER
        and (terminated := (status.get("state") or {}).get("terminated") or {}).get("message")
    ]
    for _, message in sorted(messages, key=lambda m: str(m[0]), reverse=True):
        try:
            return parse_result(message)
        except ValueError:
            continue
    return None


def _path(manifest: Json, method: str) -> str:
    """The object's URL path; a POST's is its collection's."""
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    meta = manifest["metadata"]
    collection = f"{prefix}/namespaces/{meta['namespace']}/{PLURALS[kind]}"
    return collection if method == "POST" else f"{collection}/{meta['name']}"


def _call(
    api: client.ApiClient,
    method: str,
    manifest: Json,
    *,
    subresource: str = "",
    missing_ok: bool = False,
    exists_ok: bool = False,
    header_params: dict[str, str] | None = None,
    **options: Any,
) -> Json | None:
    """One request for the object `manifest` names; None on a 404 when `missing_ok`, on a 409
    when `exists_ok`."""
    meta = manifest["metadata"]
    action = f"{_VERBS[method]} {manifest['kind']} {meta['namespace']}/{meta['name']}{subresource}"
    with api_errors(action):
        try:
            answer: Json = api.call_api(
                _path(manifest, method) + subresource,
                method,
                header_params={"Accept": "application/json", **(header_params or {})},
                auth_settings=["BearerToken"],
                response_type="object",
                _return_http_data_only=True,
                **options,
            )
        except ApiException as error:
            if (missing_ok and error.status == 404) or (exists_ok and error.status == 409):
                return None
            raise
    return answer
