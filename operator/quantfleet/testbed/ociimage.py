"""A single-layer OCI image archive, written without a container engine: enough for the pause
image a real node's containerd needs, since there is no registry to pull one from."""

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any


def write_image_archive(
    path: Path, name: str, files: dict[str, Path], entrypoint: list[str]
) -> None:
    """A single-layer OCI image archive that `ctr images import` names `name` (the pause image:
    there is no registry to pull one from)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for target, source in files.items():
            info = tar.gettarinfo(str(source), arcname=target)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with source.open("rb") as content:
                tar.addfile(info, content)
    blobs: dict[str, bytes] = {}

    def blob(media_type: str, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layer_descriptor = blob("application/vnd.oci.image.layer.v1.tar", layer.getvalue())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [layer_descriptor["digest"]]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob("application/vnd.oci.image.config.v1+json", _json_bytes(config)),
        "layers": [layer_descriptor],
    }
    manifest_descriptor = blob("application/vnd.oci.image.manifest.v1+json", _json_bytes(manifest))
    manifest_descriptor["annotations"] = {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.rpartition(":")[2],
    }
    index = {"schemaVersion": 2, "manifests": [manifest_descriptor]}
    with tarfile.open(path, mode="w") as tar:
        entries = {
            "oci-layout": _json_bytes({"imageLayoutVersion": "1.0.0"}),
            "index.json": _json_bytes(index),
            **{f"blobs/sha256/{d.removeprefix('sha256:')}": data for d, data in blobs.items()},
        }
        for member, data in entries.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
