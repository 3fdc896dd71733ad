"""The project's images (operator, jobs, vllm-cpu), built from its Dockerfile by
tools/images/build.sh without a container engine or registry, and cached as OCI archives named by
the hash of what goes into them: the key, the build context and the reader for the harness."""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TARGETS = ("operator", "jobs", "vllm-cpu")
BUILD_COMMAND = "tools/images/build.sh"
CACHE_VARIABLE = "QUANTFLEET_IMAGE_CACHE"
KEY_LENGTH = 12
# What `docker build` / `buildah build` gets as its context (.dockerignore narrows it further).
CONTEXT_PATHS = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "operator",
    "jobs",
    "serving",
)
# The key: the context a target's stages read, and the recipe of the base userland and the build
# itself (tools/images: Debian package list, base.sh, build.sh). The operator and jobs stages never
# read serving/, so a serving lock bump does not rebuild them.
_COMMON_INPUTS = (*(path for path in CONTEXT_PATHS if path != "serving"), "tools/images")
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "operator": _COMMON_INPUTS,
    "jobs": _COMMON_INPUTS,
    "vllm-cpu": (*_COMMON_INPUTS, "serving"),
}
# Context files get this mtime (hatchling's reproducible default, 2020-02-02), so a checkout or a
# `touch` that leaves the content alone changes nothing the builder's layer cache sees.
CONTEXT_MTIME = 1580601600


class ImageBuildError(RuntimeError):
    """tools/images/build.sh failed or printed something other than its result lines."""


@dataclass(frozen=True)
class Image:
    """One built image: the reference containerd registers on import, and its OCI archive."""

    target: str
    ref: str
    archive: Path


def repository_root() -> Path:
    """The source checkout this module lives in: operator/quantfleet/testbed/ -> root."""
    return Path(__file__).resolve().parents[3]


def cache_dir() -> Path:
    """$QUANTFLEET_IMAGE_CACHE, else $XDG_CACHE_HOME/quantfleet/images (~/.cache by default)."""
    if explicit := os.environ.get(CACHE_VARIABLE):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "quantfleet" / "images"


def tracked_files(root: Path, paths: Sequence[str]) -> list[str]:
    """Files git tracks under `paths` that exist in the working tree, sorted: untracked files
    (build junk, a stray notebook) neither count in the key nor enter the build context."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--", *paths],
        check=True,
        capture_output=True,
    ).stdout.decode()
    names = (name for name in listed.split("\0") if name)
    return sorted(name for name in names if (root / name).is_symlink() or (root / name).is_file())


def image_key(root: Path, target: str) -> str:
    """sha256 over the target's name and each tracked input file's path, mode and content, as
    they are in the working tree (uncommitted edits count)."""
    if target not in KEY_INPUTS:
        raise ValueError(f"unknown image target {target!r}; one of {', '.join(TARGETS)}")
    digest = hashlib.sha256(f"quantfleet-image\0{target}\0".encode())
    for name in tracked_files(root, KEY_INPUTS[target]):
        path = root / name
        if path.is_symlink():
            kind, content = "link", os.readlink(path).encode()
        else:
            kind, content = ("exec" if os.access(path, os.X_OK) else "file"), path.read_bytes()
        digest.update(f"{name}\0{kind}\0".encode())
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def image_ref(target: str, key: str) -> str:
    """The name the OCI archive carries and `ctr images import` registers."""
    return f"localhost/quantfleet-{target}:{key[:KEY_LENGTH]}"


def archive_path(target: str, key: str) -> Path:
    return cache_dir() / f"{target}-{key[:KEY_LENGTH]}.tar"


def planned_image(target: str, root: Path | None = None) -> Image:
    """The image the current sources make, whether or not it has been built."""
    key = image_key(root or repository_root(), target)
    return Image(target=target, ref=image_ref(target, key), archive=archive_path(target, key))


def cached_image(target: str, root: Path | None = None) -> Image | None:
    """The target's archive for the current sources, or None when it has not been built."""
    image = planned_image(target, root)
    return image if image.archive.is_file() else None


def build_images(targets: Sequence[str] = TARGETS, root: Path | None = None) -> list[Image]:
    """Run tools/images/build.sh (a cache hit returns at once) and read its result lines."""
    root = root or repository_root()
    done = subprocess.run(
        [str(root / BUILD_COMMAND), *targets], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise ImageBuildError(f"{BUILD_COMMAND} exited {done.returncode} (its log is on stderr)")
    images = [parse_result_line(line) for line in done.stdout.splitlines() if line.strip()]
    if sorted(image.target for image in images) != sorted(targets):
        raise ImageBuildError(f"{BUILD_COMMAND} reported {images}, asked for {list(targets)}")
    return images


def parse_result_line(line: str) -> Image:
    """`<target> <image-ref> <archive-path>`, as build.sh prints one per target."""
    fields = line.split()
    if len(fields) != 3 or fields[0] not in TARGETS:
        raise ImageBuildError(f"unexpected line from {BUILD_COMMAND}: {line!r}")
    return Image(target=fields[0], ref=fields[1], archive=Path(fields[2]))


def write_context(root: Path, destination: Path) -> None:
    """Copy the tracked context files into `destination` with one fixed mtime."""
    for name in tracked_files(root, CONTEXT_PATHS):
        source, copy = root / name, destination / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)
        os.utime(copy, (CONTEXT_MTIME, CONTEXT_MTIME), follow_symlinks=False)
    for folder in sorted(destination.rglob("*"), reverse=True):
        if folder.is_dir() and not folder.is_symlink():
            os.utime(folder, (CONTEXT_MTIME, CONTEXT_MTIME))


def main(argv: Sequence[str] | None = None) -> int:
    """build.sh's helper: `plan TARGET...` prints `<target> <ref> <archive>` lines; `context DIR`
    writes the build context. Standard library only: it runs on the machine's python3."""
    parser = argparse.ArgumentParser(prog="python -m quantfleet.testbed.images")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan")
    plan.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(TARGETS))
    context = commands.add_parser("context")
    context.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    root = repository_root()
    if args.command == "plan":
        if unknown := sorted(set(args.targets) - set(TARGETS)):
            parser.error(f"unknown target {', '.join(unknown)}; one of {', '.join(TARGETS)}")
        for target in args.targets or TARGETS:
            image = planned_image(target, root)
            print(image.target, image.ref, image.archive)
    else:
        write_context(root, args.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
