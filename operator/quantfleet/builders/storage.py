"""Volumes for model locations: a pvc://claim/path is mounted where the Job programs look."""

from collections.abc import Sequence

from quantfleet.api.contract import MOUNT_ROOT
from quantfleet.builders.children import Json


def claim_of(uri: str) -> str | None:
    """The PersistentVolumeClaim a pvc:// URI names, or None for other schemes."""
    if not uri.startswith("pvc://"):
        return None
    return uri.removeprefix("pvc://").split("/", 1)[0]


def local_path(uri: str) -> str:
    """Where a pvc:// URI is seen inside the pod; other URIs are passed through."""
    claim = claim_of(uri)
    if claim is None:
        return uri
    rest = uri.removeprefix(f"pvc://{claim}").strip("/")
    return f"{MOUNT_ROOT}/{claim}/{rest}".rstrip("/")


def claim_volumes(
    writable: Sequence[str], read_only: Sequence[str] = ()
) -> tuple[list[Json], list[Json]]:
    """(volumes, volumeMounts) for the claims behind the URIs; a claim both read and written
    is mounted writable once."""
    modes: dict[str, bool] = {}
    for uri in read_only:
        if claim := claim_of(uri):
            modes.setdefault(claim, True)
    for uri in writable:
        if claim := claim_of(uri):
            modes[claim] = False
    volumes = [
        {"name": f"pvc-{claim}"[:63], "persistentVolumeClaim": {"claimName": claim}}
        for claim in modes
    ]
    mounts = [
        {"name": f"pvc-{claim}"[:63], "mountPath": f"{MOUNT_ROOT}/{claim}", "readOnly": ro}
        for claim, ro in modes.items()
    ]
    return volumes, mounts
