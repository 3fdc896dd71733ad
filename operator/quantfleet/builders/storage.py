"""Volumes for model locations: a pvc://claim/path is mounted where the Job programs look."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from quantfleet.api.contract import MOUNT_ROOT
from quantfleet.api.quantizedmodel import QuantizedModelSpec, inside
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.children import Json


@dataclass(frozen=True)
class Reference:
    """An object a Job needs: a ConfigMap (and a key of it) or a PersistentVolumeClaim, with the
    field that names it."""

    kind: str  # ConfigMap or PersistentVolumeClaim
    name: str
    field: str  # where it is named: spec.quantization.recipe.configMapRef, ...
    key: str | None = None  # a ConfigMap key that must be there


def quantize_references(spec: QuantizedModelSpec, settings: OperatorSettings) -> list[Reference]:
    """What the quantize Job mounts: the recipe ConfigMap and key, and the claims of the source,
    the output, a pvc:// calibration set and the operator's model cache."""
    references = []
    if spec.quantization.recipe and (ref := spec.quantization.recipe.config_map_ref):
        field = "spec.quantization.recipe.configMapRef"
        references.append(Reference("ConfigMap", ref.name, field, ref.key))
    locations = {
        "spec.source.uri": spec.source.uri,
        "spec.output.uri": spec.output.uri,
        "spec.quantization.calibration.dataset": spec.quantization.calibration.dataset or "",
    }
    if settings.model_cache_claim:
        locations["the operator's model_cache_claim"] = f"pvc://{settings.model_cache_claim}/"
    for field, uri in locations.items():
        if claim := claim_of(uri):
            references.append(Reference("PersistentVolumeClaim", claim, field))
    return references


@dataclass(frozen=True)
class OutputUse:
    """A QuantizedModel's output location, as the operator's index of them keeps it."""

    namespace: str
    name: str
    uri: str
    created: str  # creationTimestamp: RFC 3339 in UTC, so it sorts as time does

    @classmethod
    def of(cls, body: Json) -> "OutputUse | None":
        """Where the QuantizedModel `body` writes; None for a body without an output."""
        uri = ((body.get("spec") or {}).get("output") or {}).get("uri")
        if not isinstance(uri, str):
            return None
        meta = body["metadata"]
        created = str(meta.get("creationTimestamp") or "")
        return cls(meta.get("namespace") or "", meta["name"], uri, created)

    @property
    def storage(self) -> str:
        """What the location lives in: a claim of its namespace, or a bucket anyone may use."""
        if claim := claim_of(self.uri):
            return f"{self.namespace}/pvc://{claim}"
        return self.uri.split("/", 3)[2] if "://" in self.uri else self.uri

    @property
    def folder(self) -> str:
        """The first folder of the location inside its storage ("" for the whole of it): two
        outputs overlap only where it is the same, or one of them is the whole storage."""
        parts = self.uri.split("://", 1)[-1].strip("/").split("/")
        return parts[1] if len(parts) > 1 else ""

    @property
    def keys(self) -> list[tuple[str, ...]]:
        """Where the index of outputs keeps it: by its storage, and by storage and folder."""
        return [(self.storage,), (self.storage, self.folder)]

    @property
    def rivals(self) -> list[tuple[str, ...]]:
        """The index keys of the outputs that may overlap it: those in its folder and the
        storage's whole; for the storage's whole, everything in it."""
        if self.folder:
            return [(self.storage, self.folder), (self.storage, "")]
        return [(self.storage,)]

    def overlaps(self, other: "OutputUse") -> bool:
        """Whether one of the two writes inside the other's location."""
        return self.storage == other.storage and (
            inside(self.uri, other.uri) or inside(other.uri, self.uri)
        )


def output_holder(mine: OutputUse, uses: Iterable[OutputUse]) -> OutputUse | None:
    """The model, created before `mine` (then by namespace and name), whose output overlaps
    `mine`'s: it keeps the location and `mine` waits. None when `mine` is first."""
    order = (mine.created, mine.namespace, mine.name)
    earlier = [
        use for use in uses if use.overlaps(mine) and (use.created, use.namespace, use.name) < order
    ]
    return min(earlier, key=lambda use: (use.created, use.namespace, use.name), default=None)


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
