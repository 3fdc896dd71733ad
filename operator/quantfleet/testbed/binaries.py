"""Finding the control-plane binaries that tools/kubebin/build.sh builds into bin/."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

BUILD_COMMAND = "tools/kubebin/build.sh"
BIN_DIR_VARIABLE = "QUANTFLEET_BIN_DIR"


class MissingBinaryError(FileNotFoundError):
    """A binary the cluster needs was not found; the message says how to build it."""


@dataclass(frozen=True)
class Binaries:
    """kubebin (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and kwok."""

    kubebin: Path
    kwok: Path


def _candidate_dirs(explicit: Path | None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    dirs = []
    if from_env := os.environ.get(BIN_DIR_VARIABLE):
        dirs.append(Path(from_env))
    # A source checkout: operator/quantfleet/testbed/ -> repository root -> bin/.
    dirs.append(Path(__file__).resolve().parents[3] / "bin")
    dirs.append(Path.cwd() / "bin")
    return list(dict.fromkeys(folder.resolve() for folder in dirs))


def find_binaries(bin_dir: Path | None = None) -> Binaries:
    """Locate the binaries in `bin_dir`, $QUANTFLEET_BIN_DIR, the checkout's bin/ or PATH."""
    dirs = _candidate_dirs(bin_dir)
    found: dict[str, Path] = {}
    for name in ("kubebin", "kwok"):
        for folder in dirs:
            path = folder / name
            if path.is_file() and os.access(path, os.X_OK):
                found[name] = path
                break
        else:
            on_path = shutil.which(name) if bin_dir is None else None
            if on_path is None:
                searched = ", ".join(str(folder) for folder in dirs)
                raise MissingBinaryError(
                    f"{name} not found (searched {searched}{'' if bin_dir else ' and PATH'}); "
                    f"build the control plane with `{BUILD_COMMAND}` from the repository root, "
                    f"or point ${BIN_DIR_VARIABLE} at a folder holding kubebin and kwok"
                )
            found[name] = Path(on_path)
    return Binaries(kubebin=found["kubebin"], kwok=found["kwok"])
