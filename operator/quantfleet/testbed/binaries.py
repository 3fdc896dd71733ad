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


NODE_BUILD_COMMAND = "make nodebin"


@dataclass(frozen=True)
class NodeBinaries:
    """What a real node runs (tools/nodebin): containerd and its shim, runc, the CNI plugins,
    CoreDNS, the pause binary, and kubelet and kube-proxy from kubebin."""

    bin_dir: Path

    @property
    def kubebin(self) -> Path:
        return self.bin_dir / "kubebin"

    @property
    def containerd(self) -> Path:
        return self.bin_dir / "containerd"

    @property
    def ctr(self) -> Path:
        return self.bin_dir / "ctr"

    @property
    def runc(self) -> Path:
        return self.bin_dir / "runc"

    @property
    def coredns(self) -> Path:
        return self.bin_dir / "coredns"

    @property
    def pause(self) -> Path:
        return self.bin_dir / "pause"

    @property
    def cni_dir(self) -> Path:
        return self.bin_dir / "cni"

    def required(self) -> list[Path]:
        shim = self.bin_dir / "containerd-shim-runc-v2"
        plugins = [self.cni_dir / name for name in ("bridge", "host-local", "loopback", "portmap")]
        return [
            self.kubebin,
            self.containerd,
            shim,
            self.ctr,
            self.runc,
            self.coredns,
            self.pause,
            *plugins,
        ]


def find_node_binaries(bin_dir: Path | None = None) -> NodeBinaries:
    """The real node's binaries, all in one folder (the first of the usual places that has
    containerd); the error names what is missing and how to build it."""
    for folder in _candidate_dirs(bin_dir):
        if (folder / "containerd").is_file():
            binaries = NodeBinaries(folder)
            break
    else:
        binaries = NodeBinaries(_candidate_dirs(bin_dir)[0])
    missing = [str(path) for path in binaries.required() if not os.access(path, os.X_OK)]
    if missing:
        raise MissingBinaryError(
            f"The real node's binaries are missing ({', '.join(missing)}); build them with "
            f"`{NODE_BUILD_COMMAND}` from the repository root"
        )
    return binaries
