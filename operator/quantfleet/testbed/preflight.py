"""What this machine must have for `make demo` and `make test`, checked before any build starts
(`python3 operator/quantfleet/testbed/preflight.py`, the Makefile's `preflight`): root and the
kernel features of a real node, the toolchains, and disk for the builds. Standard library only:
it runs before the locked environment exists."""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PYTHON_MIN = (3, 11)
GO_MIN = (1, 26)
# What each cache holds once filled, GiB, measured after a cold `.ci/run` (2026-12-08), by the
# variable that moves it and its default folder: uv's (the environments are links into it), Go's
# modules and builds, buildah's store and the image archives (tools/images); each counted only
# while empty. The real node's image store and checkpoints take REAL_NODE_GIB more while the
# tests run (its peak in that run).
CACHES_GIB = {
    "UV_CACHE_DIR": ("~/.cache/uv", 11),
    "GOMODCACHE": ("~/go/pkg/mod", 2.5),
    "GOCACHE": ("~/.cache/go-build", 5),
    "QUANTFLEET_BUILDAH_STORE": ("~/.cache/quantfleet/buildah", 15),
    "QUANTFLEET_IMAGE_CACHE": ("~/.cache/quantfleet/images", 7),
}
REAL_NODE_GIB = 17
CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer")


def kernel_lacks(filesystems: str, cgroups: Path, euid: int) -> str | None:
    """What the kernel or the user lacks for a real node, in one line; None when nothing."""
    if euid != 0:
        return "a real node needs root (it makes namespaces, mounts, veths and cgroups)"
    if "overlay" not in filesystems.split():
        return "the kernel has no overlay filesystem (containerd's snapshotter needs it)"
    if missing := [name for name in CGROUP_CONTROLLERS if not (cgroups / name).is_dir()]:
        return (
            f"cgroup v1 controllers not mounted under {cgroups}: {', '.join(missing)} "
            "(the node's kubelet runs with cgroupfs on cgroup v1)"
        )
    return None


@dataclass(frozen=True)
class Machine:
    """The facts the builds and the real node depend on."""

    filesystems: str
    cgroups: Path
    euid: int
    python: tuple[int, int]
    go_version: str | None  # `go version`'s output; None when there is no go
    free_gib: float
    folder: Path
    uncached_gib: float = 0.0  # what the empty caches will take


def observe(folder: Path) -> Machine:
    go = shutil.which("go")
    version = subprocess.run([go, "version"], capture_output=True, text=True) if go else None
    return Machine(
        filesystems=Path("/proc/filesystems").read_text(),
        cgroups=Path("/sys/fs/cgroup"),
        euid=os.geteuid(),
        python=(sys.version_info.major, sys.version_info.minor),
        go_version=version.stdout if version and version.returncode == 0 else None,
        free_gib=shutil.disk_usage(folder).free / 2**30,
        folder=folder,
        uncached_gib=sum(gib for path, gib in _caches() if not any(path.iterdir())),
    )


def _caches() -> list[tuple[Path, float]]:
    """Each cache's folder (its variable, else its default; a missing one made empty) and size."""
    found = []
    for variable, (default, gib) in CACHES_GIB.items():
        path = Path(os.environ.get(variable) or default).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        found.append((path, gib))
    return found


def lacking(machine: Machine) -> str | None:
    """What `machine` lacks for the demo and the tests, in one line; None when nothing."""
    if lacks := kernel_lacks(machine.filesystems, machine.cgroups, machine.euid):
        return lacks
    if machine.python < PYTHON_MIN:
        return (
            f"Python {_dotted(PYTHON_MIN)} or newer is needed (this is {_dotted(machine.python)}; "
            "choose another with `make PYTHON=...`)"
        )
    found = re.search(r"go(\d+)\.(\d+)", machine.go_version or "")
    if found is None or (int(found[1]), int(found[2])) < GO_MIN:
        have = found[0] if found else "none on PATH"
        return f"Go {_dotted(GO_MIN)} or newer is needed to build Kubernetes (found {have})"
    if machine.free_gib < (needed := REAL_NODE_GIB + machine.uncached_gib):
        return (
            f"{machine.free_gib:.0f} GiB free under {machine.folder}; the builds and the real "
            f"node need about {needed:.0f} GiB ({machine.uncached_gib:.0f} of it for empty caches)"
        )
    return None


def _dotted(version: tuple[int, int]) -> str:
    return ".".join(map(str, version))


def main() -> int:
    if lacks := lacking(observe(Path.cwd())):
        print(f"error: this machine cannot run the demo or the tests: {lacks}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
