"""What every child object shares: deterministic names, labels, owner references, and the
Pod Security "restricted" contexts."""

import hashlib
import json
from typing import Any

from quantfleet.api.common import SecretKeyRef
from quantfleet.api.contract import (
    ANNOTATION_SPEC_HASH,
    HUB_TOKEN_ENV,
    LABEL_APP_COMPONENT,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    MANAGED_BY,
    RUN_AS,
)

Json = dict[str, Any]

MAX_NAME = 63  # DNS-1035 label: Services, Job pod labels


def digest(*parts: object) -> str:
    """A short, stable hash of JSON-serialisable inputs (8 hex characters)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def child_name(owner: str, component: str, inputs: str | None = None) -> str:
    """`<owner>-<component>[-<inputs>]`, at most 63 characters. A long owner name is cut and
    suffixed with its own hash, so two long names never collide."""
    suffix = f"-{component}" + (f"-{inputs}" if inputs else "")
    if len(owner) + len(suffix) <= MAX_NAME:
        return owner + suffix
    keep = MAX_NAME - len(suffix) - 9
    return f"{owner[:keep].rstrip('-')}-{digest(owner)}{suffix}"


def labels(owner_label: str, owner: str, component: str) -> dict[str, str]:
    """Labels on every child and its pods: who manages it, whose it is, what it does."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: MANAGED_BY,
        LABEL_APP_COMPONENT: component,
        owner_label: owner,
        LABEL_COMPONENT: component,
    }


def owner_reference(owner: Json) -> Json:
    """A controller owner reference to `owner`, so deleting it garbage-collects the child."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(
    owner: Json, api_version: str, kind: str, name: str, labels: dict[str, str], **content: Json
) -> Json:
    """A child object of `owner` in its namespace, `content` being its spec (or data), with the
    hash of that content in an annotation so an unchanged object is never written again."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "annotations": {ANNOTATION_SPEC_HASH: digest(content)},
            "ownerReferences": [owner_reference(owner)],
        },
        **content,
    }


def edited_by_others(live: Json, manifest: Json, manager: str) -> bool:
    """Whether another field manager (kubectl edit, scale or set image; anyone but `manager`
    and the controllers writing status) owns a field of `manifest` on the `live` object, i.e.
    changed it by hand. Read from managedFields: after our forced apply takes those fields back
    the other manager no longer owns them, so an edit is restored once, not on every pass."""
    for entry in live["metadata"].get("managedFields") or []:
        if entry.get("manager") == manager or entry.get("subresource") == "status":
            continue
        if _owns_any(entry.get("fieldsV1") or {}, manifest):
            return True
    return False


def _owns_any(fields: Json, wanted: object) -> bool:
    """Whether the fieldsV1 tree `fields` names a field that `wanted` (a manifest part) sets:
    `f:name` walks a map key, `k:{...}` the list item whose keys match."""
    for key, subtree in fields.items():
        if key == ".":
            continue
        if key.startswith("f:") and isinstance(wanted, dict) and key[2:] in wanted:
            if not subtree or _owns_any(subtree, wanted[key[2:]]):
                return True
        elif key.startswith("k:") and isinstance(wanted, list):
            match = json.loads(key[2:])
            items = [i for i in wanted if isinstance(i, dict) and match.items() <= i.items()]
            if items and (not subtree or _owns_any(subtree, items[0])):
                return True
    return False


def restricted_pod_security() -> Json:
    """Pod-level securityContext that Pod Security "restricted" admits."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> Json:
    """Container-level securityContext that Pod Security "restricted" admits."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scratch_volumes(*, shm: bool = False) -> tuple[list[Json], list[Json]]:
    """Writable emptyDirs for a read-only root: /tmp (caches, HOME) and, for multi-GPU NCCL,
    a memory-backed /dev/shm. Returns (volumes, volumeMounts)."""
    volumes: list[Json] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[Json] = [{"name": "tmp", "mountPath": "/tmp"}]
    if shm:
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    return volumes, mounts


# Every cache a pod's programs write, under the /tmp emptyDir, since the root is read-only. The
# defaults would mostly land there through HOME and XDG_CACHE_HOME; vLLM's, Triton's and
# TorchInductor's are set too so an image's own ENV cannot move them (vllm/envs.py: an s3://
# model's config and tokenizer are pulled into VLLM_CACHE_ROOT/assets; the compile caches sit
# under VLLM_CACHE_ROOT/torch_compile_cache; docs/serving.md).
CACHE_ENV: list[Json] = [
    {"name": "HOME", "value": "/tmp/home"},
    {"name": "XDG_CACHE_HOME", "value": "/tmp/cache"},
    {"name": "HF_HOME", "value": "/tmp/cache/huggingface"},
    {"name": "VLLM_CACHE_ROOT", "value": "/tmp/cache/vllm"},
    {"name": "TRITON_CACHE_DIR", "value": "/tmp/cache/triton"},
    {"name": "TORCHINDUCTOR_CACHE_DIR", "value": "/tmp/cache/torchinductor"},
]


def token_env(ref: SecretKeyRef | None) -> list[Json]:
    """The hub token's env var, by secret reference only: the operator never reads the Secret."""
    if ref is None:
        return []
    secret = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
    return [{"name": HUB_TOKEN_ENV, "valueFrom": secret}]
