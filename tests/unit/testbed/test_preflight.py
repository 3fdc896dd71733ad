"""The machine check that runs before any build of `make demo` and `make test`: one line saying
what is missing (testbed.preflight), and the Makefile stopping on it before anything is built."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from quantfleet.cli.localrun import REPO
from quantfleet.testbed.preflight import CGROUP_CONTROLLERS, REAL_NODE_GIB, Machine, lacking


def make_machine(tmp_path: Path, **overrides: object) -> Machine:
    for name in CGROUP_CONTROLLERS:
        (tmp_path / name).mkdir(exist_ok=True)
    machine = Machine(
        filesystems="nodev\tcgroup\nnodev\toverlay\n",
        cgroups=tmp_path,
        euid=0,
        python=(3, 11),
        go_version="go version go1.26.8 linux/amd64\n",
        free_gib=REAL_NODE_GIB + 1,
        folder=tmp_path,
    )
    return replace(machine, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        pytest.param({}, None, id="everything-there"),
        pytest.param({"euid": 1000}, "needs root", id="not-root"),
        pytest.param({"filesystems": "nodev\ttmpfs\n"}, "no overlay", id="no-overlayfs"),
        pytest.param({"python": (3, 10)}, "Python 3.11 or newer", id="old-python"),
        pytest.param({"go_version": None}, "(found none on PATH)", id="no-go"),
        pytest.param(
            {"go_version": "go version go1.22.4 linux/amd64"}, "(found go1.22)", id="old-go"
        ),
        pytest.param({"free_gib": 3.2}, "3 GiB free under", id="small-disk"),
        pytest.param(
            {"free_gib": REAL_NODE_GIB + 10, "uncached_gib": 40.0},
            f"need about {REAL_NODE_GIB + 40} GiB (40 of it for empty caches)",
            id="room-for-the-run-but-not-the-cold-builds",
        ),
    ],
)
def test_the_machine_check_names_what_is_missing_in_one_line(
    tmp_path: Path, overrides: dict[str, object], want: str | None
) -> None:
    found = lacking(make_machine(tmp_path, **overrides))

    if want is None:
        assert found is None
    else:
        assert found is not None
        assert want in found, found
        assert "\n" not in found


def test_make_demo_stops_on_the_machine_check_before_any_build(tmp_path: Path) -> None:
    # A machine whose Go is too old for Kubernetes: a `go` earlier on PATH says so.
    fake = tmp_path / "go"
    fake.write_text("#!/bin/sh\necho 'go version go1.22.4 linux/amd64'\n")
    fake.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    env["PATH"] = f"{tmp_path}:{env['PATH']}"

    done = subprocess.run(
        ["make", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if not line.startswith("make")]
    assert said == [
        "error: this machine cannot run the demo or the tests: Go 1.26 or newer is needed to "
        "build Kubernetes (found go1.22)"
    ], done.stderr
    assert done.stdout == ""  # no build started (make echoes each recipe line it runs)
