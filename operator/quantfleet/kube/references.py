"""Whether what a Job will mount exists, looked up before the Job is made: a missing ConfigMap,
key or claim then becomes a condition instead of a pod waiting forever (CreateContainerConfigError,
an unbound claim). Secrets are never read (the operator's RBAC has none): a missing token Secret
shows as its pod's CreateContainerConfigError, which reaches the conditions the same way."""

from collections.abc import Sequence

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from quantfleet.builders.storage import Reference
from quantfleet.kube.errors import api_errors


def missing(api: client.ApiClient, namespace: str, references: Sequence[Reference]) -> str | None:
    """The first reference that does not resolve, in one line naming it and its field."""
    core = client.CoreV1Api(api)
    for ref in references:
        with api_errors(f"reading {ref.kind} {namespace}/{ref.name}"):
            try:
                if ref.kind == "ConfigMap":
                    found = core.read_namespaced_config_map(ref.name, namespace)
                    if ref.key is not None and ref.key not in (found.data or {}):
                        return (
                            f"ConfigMap {namespace}/{ref.name} has no key {ref.key} ({ref.field})"
                        )
                else:
                    core.read_namespaced_persistent_volume_claim(ref.name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
                return f"{ref.kind} {namespace}/{ref.name} not found ({ref.field})"
    return None
