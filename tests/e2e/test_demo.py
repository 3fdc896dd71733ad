"""The README's main job, `quantfleet demo`, on a cluster of its own: the samples converge."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_brings_the_samples_to_their_end_state(tmp_path: Path) -> None:
    env = {**os.environ, "QUANTFLEET_STATE_DIR": str(tmp_path / "state")}
    quantfleet = [sys.executable, "-m", "quantfleet.cli.main"]
    try:
        done = subprocess.run(
            [*quantfleet, "demo", "--timeout=180"], env=env,
            capture_output=True, text=True, timeout=400, check=False,
        )  # fmt: skip
        # `make demo` over the cluster this one left (no real node) says what to do, at once.
        real = subprocess.run(
            [*quantfleet, "demo", "--real-node"], env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        subprocess.run([*quantfleet, "dev", "down"], env=env, timeout=60, check=False)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("qwen")}
    # BestFit, the default policy: the smallest GPU that runs the scheme natively and fits.
    assert rows["qwen25-vl-7b-fp8"][1:3] == ["FP8_DYNAMIC", "ada-lovelace"]
    assert rows["qwen25-vl-7b-int8"][1:3] == ["W8A8", "turing"]
    assert rows["qwen25-vl-72b-auto"][1:3] == ["FP8_DYNAMIC", "hopper"]
    # On the simulated CPU nodes where AMX runs INT8 (NFD labels), not the AVX-512-only one.
    assert rows["qwen25-vl-3b-cpu"][1:4] == ["W8A8", "cpu/amx", "-"]
    assert rows["qwen25-vl-3b-cpu"][6] == "True"
    assert "sim-xeon-amx-" in rows["qwen25-vl-3b-cpu"][7]
    assert rows["qwen25-vl-7b-w4a16"][5:7] == ["AwaitingApproval", "False"]
    assert rows["qwen25-vl-72b-auto"][6] == "True"
    assert "SIMULATED" in out
    assert "qwen25-vl-7b-fp8-docvqa: Succeeded" in out
    assert real.returncode == 1
    assert real.stderr.strip().splitlines() == [
        f"quantfleet demo: error: the running cluster ({tmp_path / 'state'}) has no real node; "
        "stop it with `quantfleet dev down`, then run the demo again"
    ], real.stderr
