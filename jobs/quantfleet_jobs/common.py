"""Helpers the Job programs share: where models come from and go to, the result, the device.

Sources and outputs are a local path, `pvc://claim/path` (a volume mounted under a mount root),
`hf://org/name@revision` (source only; token from an env var, never logged) or `s3://bucket/key`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol

from quantfleet.api.contract import HUB_TOKEN_ENV, MOUNT_ROOT, TERMINATION_LOG, env_name
from quantfleet.api.results import (
    AnyResult,
    FailureResult,
    ProgramName,
    dump_result,
    one_line,
)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class JobError(Exception):
    """A failure with a cause the user can act on; its message becomes the one-line reason."""


class JobArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors become a failure result instead of exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise JobError(f"bad arguments: {message}")


class EnvDefault(Protocol):
    """Reads a flag's env override: `env("MAX_SEQ_LENGTH", "2048")`."""

    def __call__(self, name: str, default: str | None = None) -> str | None: ...


def env_defaults(environ: Mapping[str, str] | None = None) -> EnvDefault:
    """`env(NAME, default)`: the value of `QF_<NAME>` in `environ` (the process's environment
    unless given, e.g. a pod's env for the test worker) if set, else `default`. Every CLI flag
    has such an env override."""
    source = os.environ if environ is None else environ

    def env(name: str, default: str | None = None) -> str | None:
        return source.get(env_name(name), default)

    return env


def add_common_arguments(parser: argparse.ArgumentParser, env: EnvDefault) -> None:
    """Flags every program takes: where to write the result, the mount root, the token's env."""
    parser.add_argument(
        "--termination-log",
        default=env("TERMINATION_LOG", TERMINATION_LOG),
        help="Where to write the JSON result (the pod's termination-message path).",
    )
    parser.add_argument(
        "--mount-root",
        default=env("MOUNT_ROOT", MOUNT_ROOT),
        help="Directory under which pvc://CLAIM/PATH volumes are mounted.",
    )
    parser.add_argument(
        "--hf-token-env",
        default=env("HF_TOKEN_ENV", HUB_TOKEN_ENV),
        help="Name of the env var holding the Hugging Face token (the token is never logged).",
    )
    parser.add_argument(
        "--workdir",
        default=env("WORKDIR"),
        help="Scratch directory for downloads and temporary outputs (default: system temp).",
    )
    parser.add_argument(
        "--model-cache",
        default=env("MODEL_CACHE"),
        help="Shared directory (a volume) where hub and S3 sources are downloaded once per "
        "source and revision and found by later Jobs; unset, each run downloads to --workdir.",
    )


@dataclass(frozen=True)
class Location:
    """A parsed source or output URI."""

    scheme: str  # "file", "pvc", "hf" or "s3"
    uri: str
    path: str  # local path (file, pvc), repo id (hf), bucket/key (s3)
    revision: str | None = None


def parse_location(uri: str, mount_root: str) -> Location:
    """Parse a source/output reference into a Location; pvc:// maps under the mount root."""
    if uri.startswith("pvc://"):
        rest = uri.removeprefix("pvc://").strip("/")
        if not rest or ".." in Path(rest).parts:
            raise JobError(f"bad pvc reference {uri!r}: want pvc://CLAIM/PATH")
        return Location("pvc", uri, str(Path(mount_root) / rest))
    if uri.startswith("hf://"):
        repo, _, revision = uri.removeprefix("hf://").partition("@")
        if repo.count("/") != 1:
            raise JobError(f"bad hub reference {uri!r}: want hf://ORG/NAME[@REVISION]")
        return Location("hf", uri, repo, revision or None)
    if uri.startswith("s3://"):
        if not uri.removeprefix("s3://").strip("/"):
            raise JobError(f"bad s3 reference {uri!r}: want s3://BUCKET/KEY")
        return Location("s3", uri, uri.removeprefix("s3://").strip("/"))
    if "://" in uri:
        raise JobError(f"unsupported location {uri!r}: use a path, pvc://, hf:// or s3://")
    return Location("file", uri, uri)


def hub_token(token_env: str) -> str | None:
    """The hub token from the named env var, or None."""
    return os.environ.get(token_env) or None


def fetch_source(
    uri: str, *, mount_root: str, workdir: Path, token_env: str, cache: Path | None = None
) -> Path:
    """Make a model (or dataset) directory available locally and return its path. A hub or S3
    source is downloaded into the scratch `workdir`, or with a `cache` (the shared model cache
    volume) once per source and revision into it, where the next Job finds it."""
    location = parse_location(uri, mount_root)
    if location.scheme in ("file", "pvc"):
        path = Path(location.path)
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            raise JobError(f"source {uri} is not a readable directory")
        return path
    if cache is None:
        target = workdir / "source" / uuid.uuid4().hex
        _download(location, target, token_env)
        return target
    return _cached(
        cache, _cache_key(location, token_env), lambda t: _download(location, t, token_env)
    )


def source_fetcher(args: argparse.Namespace, workdir: Path) -> Callable[[str], Path]:
    """`fetch_source` with the program's mount root, token variable and model cache."""
    cache = Path(args.model_cache) if args.model_cache else None

    def fetch(uri: str) -> Path:
        return fetch_source(
            uri, mount_root=args.mount_root, workdir=workdir, token_env=args.hf_token_env,
            cache=cache,
        )  # fmt: skip

    return fetch


# Written last into a cache entry: an entry without it is never used.
CACHE_COMPLETE = ".quantfleet-complete"


def _cache_key(location: Location, token_env: str) -> str:
    """`hf/ORG/NAME@COMMIT` (an unpinned hub source resolved to the commit it is at now, so a
    moved branch is fetched anew) or `s3/BUCKET/KEY`."""
    if location.scheme == "s3":
        return f"s3/{location.path.rstrip('/')}"
    revision = location.revision
    if revision is None:
        from huggingface_hub import HfApi

        try:
            revision = HfApi().model_info(location.path, token=hub_token(token_env)).sha
        except Exception as error:  # the hub client raises many types; the reason is enough
            raise JobError(f"could not resolve {location.uri}: {type(error).__name__}") from error
    return f"hf/{location.path}@{revision}"


def _cached(cache: Path, key: str, download: Callable[[Path], None]) -> Path:
    """The complete cache entry `key`, downloaded first if missing. Downloads land in a private
    directory renamed into place whole, so Jobs sharing the cache never see half an entry; when
    two download the same source at once, the first rename wins and the other's copy goes."""
    entry = cache / key
    if (entry / CACHE_COMPLETE).exists():
        return entry
    partial = cache / ".partial" / uuid.uuid4().hex
    partial.mkdir(parents=True)
    try:
        download(partial)
        (partial / CACHE_COMPLETE).touch()
        entry.parent.mkdir(parents=True, exist_ok=True)
        try:
            partial.rename(entry)
        except OSError:
            if not (entry / CACHE_COMPLETE).exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return entry


def _download(location: Location, target: Path, token_env: str) -> None:
    uri = location.uri
    if location.scheme == "hf":
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(
                repo_id=location.path,
                revision=location.revision,
                local_dir=target,
                token=hub_token(token_env),
            )
        except Exception as error:  # the hub client raises many types; the reason is enough
            raise JobError(f"could not download {uri}: {type(error).__name__}") from error
        return
    import s3fs

    filesystem = s3fs.S3FileSystem()
    try:
        filesystem.get(location.path.rstrip("/") + "/", str(target) + "/", recursive=True)
    except Exception as error:
        raise JobError(f"could not download {uri}: {type(error).__name__}: {error}") from error
    if not target.is_dir() or not any(target.iterdir()):
        raise JobError(f"source {uri} is empty")


@contextlib.contextmanager
def staging_dir(output: str, *, mount_root: str, workdir: Path) -> Iterator[Path]:
    """A fresh temporary directory next to where `output` will land (same filesystem, so the
    final move is a rename); removed on the way out whether or not it was published."""
    location = parse_location(output, mount_root)
    if location.scheme in ("file", "pvc"):
        final = Path(location.path)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    elif location.scheme == "s3":
        staging = Path(tempfile.mkdtemp(prefix="output-", dir=workdir))
    else:
        raise JobError(f"cannot write to {output}: outputs are a path, pvc:// or s3://")
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, output: str, *, mount_root: str, marker: str = "config.json") -> str:
    """Move a complete `staging` directory into place at `output` and return where it went.

    Nothing is ever written over: an `output` already complete (a retry of the same inputs, whose
    folder is named by their hash) is kept as it is, since it may be served or approved already.
    Local/pvc: an atomic rename. s3: upload everything else first and `marker` last, so a prefix
    without it never looks like a finished checkpoint."""
    location = parse_location(output, mount_root)
    if location.scheme in ("file", "pvc"):
        final = Path(location.path)
        try:
            staging.rename(final)  # refused when `final` exists and is not empty
        except OSError as error:
            if not (final / marker).exists():
                raise JobError(f"{final} holds something else: not writing over it") from error
            print(f"Kept {final}: it holds a complete result already", file=sys.stderr)
        return str(final)
    import s3fs

    filesystem = s3fs.S3FileSystem()
    prefix = location.path.rstrip("/")
    if filesystem.exists(f"{prefix}/{marker}"):
        print(f"Kept {output}: it holds a complete result already", file=sys.stderr)
        return output
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == marker)  # the marker goes last
    for file in files:
        filesystem.put_file(str(file), f"{prefix}/{file.relative_to(staging)}")
    return output


def weights_size(directory: Path) -> int:
    """Bytes of weight files under `directory`."""
    return sum(
        p.stat().st_size
        for p in directory.rglob("*")
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES
    )


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions (missing ones are left out)."""
    versions = {}
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def select_device(requested: str) -> str:
    """`auto` picks CUDA when a GPU is visible, else the CPU; `cuda` without a GPU is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise JobError("device cuda was requested but no CUDA device is visible")
    if requested not in ("cpu", "cuda"):
        raise JobError(f"unknown device {requested!r}: want auto, cpu or cuda")
    return requested


def redact(text: str, token_env: str) -> str:
    """Remove the hub token (and anything that looks like one) from a message."""
    token = hub_token(token_env)
    if token:
        text = text.replace(token, "***")
    return text


def write_result(result: AnyResult, termination_log: str) -> None:
    """Write the result to the termination-message path and print it as the last line."""
    text = dump_result(result)
    with contextlib.suppress(OSError):
        Path(termination_log).write_text(text)
    print(text, flush=True)


def fail(program: ProgramName, error: BaseException, args: argparse.Namespace) -> int:
    """Report a failure as a one-line reason (never a traceback or the token); return 1."""
    reason = str(error) if isinstance(error, JobError) else f"{type(error).__name__}: {error}"
    reason = one_line(redact(reason, args.hf_token_env)) or type(error).__name__
    print(f"{program} failed: {reason}", file=sys.stderr, flush=True)
    write_result(FailureResult(program=program, reason=reason), args.termination_log)
    return 1


def workdir_for(args: argparse.Namespace) -> Path:
    """The scratch directory for this run."""
    base = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="quantfleet-", dir=base))
    # Downloads can be whole models: do not leave them behind when the program ends.
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    return workdir


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """Split a comma-separated flag value into items."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def run_program(
    program: ProgramName,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], AnyResult],
    argv: Sequence[str] | None,
) -> int:
    """Parse, run `body`, write its result; on any failure write a one-line reason instead.
    Returns the process exit status."""
    try:
        args = parser.parse_args(argv)
    except JobError as error:
        # Bad arguments: the known flags (or else the defaults and env overrides) still say
        # where the result goes.
        try:
            args, _ = parser.parse_known_args(argv)
        except JobError:
            args, _ = parser.parse_known_args([])
        return fail(program, error, args)
    try:
        result = body(args)
        dump_result(result)  # a result over the 4 KB cap is a failure, reported as one
    except Exception as error:
        return fail(program, error, args)
    write_result(result, args.termination_log)
    return 0
