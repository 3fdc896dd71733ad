"""The images' content key and cache: a key moves with the lock, the Dockerfile, the base recipe
and tracked sources, never with untracked files; the reader finds archives and parses build.sh."""

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from quantfleet.testbed import images
from quantfleet.testbed.images import Image, ImageBuildError

REPOSITORY = Path(__file__).resolve().parents[3]


def make_checkout(root: Path, **overrides: str) -> Path:
    """A git checkout holding every kind of key input, committed; `overrides` replace files."""
    files = {
        "Dockerfile": "FROM ${PYTHON_IMAGE} AS build\n",
        ".dockerignore": "*\n",
        "pyproject.toml": "[project]\nname = 'quantfleet'\n",
        "uv.lock": "version = 1\n",
        "README.md": "# quantfleet\n",
        "operator/quantfleet/__init__.py": '"""quantfleet."""\n',
        "jobs/quantfleet_jobs/quantize.py": "print('quantize')\n",
        "serving/pyproject.toml": "[project]\nname = 'quantfleet-serving'\n",
        "serving/uv.lock": "version = 1\n",
        "tools/images/base-packages.txt": "python3.11\n",
        "tools/images/build.sh": "#!/bin/sh\n",
        **overrides,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return root


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def edit(name: str, text: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)

    return change


def make_executable(name: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / name
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    return change


def touch(name: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        os.utime(root / name, (1, 1))

    return change


def add_and_stage(name: str, text: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        edit(name, text)(root)
        git(root, "add", name)

    return change


@pytest.mark.parametrize(
    ("change", "target", "want_changed"),
    [
        pytest.param(edit("uv.lock", "version = 2\n"), "jobs", True, id="a lock bump"),
        pytest.param(edit("Dockerfile", "FROM x\n"), "operator", True, id="a Dockerfile edit"),
        pytest.param(
            edit("operator/quantfleet/__init__.py", '"""changed."""\n'),
            "operator",
            True,
            id="an uncommitted edit of an operator source file",
        ),
        pytest.param(
            edit("jobs/quantfleet_jobs/quantize.py", "print(1)\n"),
            "vllm-cpu",
            True,
            id="a Job program edit, in every image",
        ),
        pytest.param(
            edit("tools/images/base-packages.txt", "python3.11\nlibnuma1\n"),
            "jobs",
            True,
            id="a base userland package added",
        ),
        pytest.param(
            edit("serving/uv.lock", "version = 2\n"), "vllm-cpu", True, id="the serving lock"
        ),
        pytest.param(
            add_and_stage("operator/quantfleet/new.py", "x = 1\n"),
            "operator",
            True,
            id="a new source file once git tracks it",
        ),
        pytest.param(
            make_executable("jobs/quantfleet_jobs/quantize.py"),
            "jobs",
            True,
            id="a mode change",
        ),
        pytest.param(
            edit("serving/uv.lock", "version = 2\n"),
            "operator",
            False,
            id="the serving lock does not touch the operator image",
        ),
        pytest.param(
            edit("operator/quantfleet/scratch.py", "junk = 1\n"),
            "operator",
            False,
            id="an untracked file in a source tree",
        ),
        pytest.param(
            edit("operator/quantfleet/__pycache__/x.cpython-311.pyc", "junk"),
            "jobs",
            False,
            id="untracked bytecode",
        ),
        pytest.param(edit("tests/test_x.py", "x = 1\n"), "jobs", False, id="a file outside"),
        pytest.param(touch("uv.lock"), "jobs", False, id="a touch that keeps the content"),
    ],
)
def test_the_key_moves_with_what_goes_into_the_image_only(
    tmp_path: Path, change: Callable[[Path], None], target: str, want_changed: bool
) -> None:
    root = make_checkout(tmp_path)
    before = images.image_key(root, target)
    change(root)
    assert (images.image_key(root, target) != before) is want_changed


def test_each_target_has_its_own_key(tmp_path: Path) -> None:
    root = make_checkout(tmp_path)
    keys = {images.image_key(root, target) for target in images.TARGETS}
    assert len(keys) == len(images.TARGETS)


def test_an_unknown_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown image target 'gpu'"):
        images.image_key(make_checkout(tmp_path), "gpu")


def test_the_key_names_the_ref_and_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_checkout(tmp_path / "src")
    monkeypatch.setenv(images.CACHE_VARIABLE, str(tmp_path / "cache"))
    key = images.image_key(root, "vllm-cpu")
    image = images.planned_image("vllm-cpu", root)
    assert image == Image(
        target="vllm-cpu",
        ref=f"localhost/quantfleet-vllm-cpu:{key[:12]}",
        archive=tmp_path / "cache" / f"vllm-cpu-{key[:12]}.tar",
    )


def test_a_cached_image_is_found_only_for_the_current_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_checkout(tmp_path / "src")
    monkeypatch.setenv(images.CACHE_VARIABLE, str(tmp_path / "cache"))
    assert images.cached_image("jobs", root) is None
    planned = images.planned_image("jobs", root)
    planned.archive.parent.mkdir(parents=True)
    planned.archive.write_bytes(b"oci archive")
    assert images.cached_image("jobs", root) == planned
    edit("uv.lock", "version = 3\n")(root)
    assert images.cached_image("jobs", root) is None


def test_the_cache_lives_under_xdg_cache_home_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(images.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert images.cache_dir() == tmp_path / "quantfleet" / "images"


def test_the_build_context_holds_only_tracked_files_with_one_mtime(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "src")
    edit("operator/quantfleet/scratch.py", "junk = 1\n")(root)
    images.write_context(root, tmp_path / "context")
    copied = sorted(
        str(path.relative_to(tmp_path / "context"))
        for path in (tmp_path / "context").rglob("*")
        if path.is_file()
    )
    assert copied == [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "jobs/quantfleet_jobs/quantize.py",
        "operator/quantfleet/__init__.py",
        "pyproject.toml",
        "serving/pyproject.toml",
        "serving/uv.lock",
        "uv.lock",
    ]
    mtimes = {path.stat().st_mtime for path in (tmp_path / "context").rglob("*")}
    assert mtimes == {images.CONTEXT_MTIME}


def fake_build_script(root: Path, body: str) -> None:
    script = root / images.BUILD_COMMAND
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_build_images_reads_the_scripts_result_lines(tmp_path: Path) -> None:
    fake_build_script(
        tmp_path,
        'echo "progress" >&2\n'
        'echo "operator localhost/quantfleet-operator:abc /c/operator-abc.tar"\n'
        'echo "jobs localhost/quantfleet-jobs:def /c/jobs-def.tar"',
    )
    assert images.build_images(["operator", "jobs"], root=tmp_path) == [
        Image("operator", "localhost/quantfleet-operator:abc", Path("/c/operator-abc.tar")),
        Image("jobs", "localhost/quantfleet-jobs:def", Path("/c/jobs-def.tar")),
    ]


@pytest.mark.parametrize(
    ("body", "want_message"),
    [
        pytest.param("exit 3", "exited 3", id="a failed build"),
        pytest.param("echo 'Built it'", "unexpected line", id="progress on stdout"),
        pytest.param(
            "echo 'jobs localhost/quantfleet-jobs:def /c/jobs-def.tar'",
            "asked for",
            id="a target missing",
        ),
    ],
)
def test_build_images_fails_on_anything_but_its_result_lines(
    tmp_path: Path, body: str, want_message: str
) -> None:
    fake_build_script(tmp_path, body)
    with pytest.raises(ImageBuildError, match=want_message):
        images.build_images(["operator"], root=tmp_path)


def test_the_project_itself_has_a_key_for_every_target() -> None:
    keys = [images.image_key(REPOSITORY, target) for target in images.TARGETS]
    assert all(len(key) == 64 for key in keys)


def test_the_uv_version_is_the_makefiles_and_the_dockerfiles() -> None:
    makefile = (REPOSITORY / "Makefile").read_text()
    dockerfile = (REPOSITORY / "Dockerfile").read_text()
    version = next(
        line.split(":=")[1].strip()
        for line in makefile.splitlines()
        if line.startswith("UV_VERSION")
    )
    assert f"ARG UV_IMAGE=ghcr.io/astral-sh/uv:{version}\n" in dockerfile
