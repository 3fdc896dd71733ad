"""The Dockerfile (not buildable here: no container engine) read as text: each image target runs
as a non-root user, starts the right program, and installs from the lock with the right extras."""

import json
import re
from pathlib import Path

import pytest

from quantfleet.api.contract import RUN_AS

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"
# The images run as the uid the operator's pods ask for: one fact, in the contract.
NON_ROOT_UID = str(RUN_AS)


def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, `\\` continuations joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest else rest.strip()
            current = found.setdefault(name, [])
        current.append((instruction, rest.strip()))
    return found


def last(stage: str, instruction: str) -> str:
    values = [rest for name, rest in stages()[stage] if name == instruction]
    assert values, f"stage {stage} has no {instruction}"
    return values[-1]


def runs(stage: str) -> list[str]:
    return [rest for name, rest in stages()[stage] if name == "RUN"]


@pytest.mark.parametrize(
    ("target", "want_entrypoint"),
    [
        pytest.param("operator", ["quantfleet", "operator"], id="operator image runs the operator"),
        pytest.param("jobs", ["python", "-m"], id="jobs image runs a program module"),
        pytest.param("vllm-cpu", ["vllm", "serve"], id="vllm-cpu image serves"),
    ],
)
def test_target_runs_as_non_root_with_its_entrypoint(
    target: str, want_entrypoint: list[str]
) -> None:
    user = last(target, "USER")
    assert user.split(":")[0] == NON_ROOT_UID
    assert user.split(":")[0] not in ("0", "root")
    assert json.loads(last(target, "ENTRYPOINT")) == want_entrypoint


@pytest.mark.parametrize(
    ("build_stage", "want_jobs_extra"),
    [
        pytest.param("operator-build", False, id="operator without the Job libraries"),
        pytest.param("jobs-build", True, id="jobs with torch, llmcompressor, lm-eval, guidellm"),
    ],
)
def test_install_is_frozen_to_the_lock_with_the_right_extras(
    build_stage: str, want_jobs_extra: bool
) -> None:
    syncs = [run for run in runs(build_stage) if run.startswith("uv sync")]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert ("--extra jobs" in sync) is want_jobs_extra
        assert "--all-extras" not in sync


@pytest.mark.parametrize("target", ["operator", "jobs"])
def test_runtime_image_is_python_311_slim_with_the_built_environment(target: str) -> None:
    assert stages()[target][0] == ("FROM", f"${{PYTHON_IMAGE}} AS {target}")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()
    copied = [rest for name, rest in stages()[target] if name == "COPY"]
    assert copied == [f"--from={target}-build /app/.venv /app/.venv"]


def test_the_vllm_cpu_image_installs_the_locked_serving_environment() -> None:
    syncs = [run for run in runs("vllm-cpu-build") if run.startswith("uv sync")]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync
        assert "--project serving" in sync  # serving/uv.lock: what tests/serving serves with
    assert stages()["vllm-cpu"][0] == ("FROM", "${PYTHON_IMAGE} AS vllm-cpu")
