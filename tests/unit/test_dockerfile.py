"""The Dockerfile read as text: each image target runs as a non-root user, starts the right
program, installs from the lock with the right extras, and keeps its dependencies and the project
in separate layers. `make images` builds it for real (tools/images/build.sh, docs/images.md)."""

import json
import re
import tomllib
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
    """The instruction's last value in the stage or, failing that, in the stage it is FROM."""
    found = stages()
    values = [rest for name, rest in found[stage] if name == instruction]
    if values:
        return values[-1]
    parent = found[stage][0][1].split(" AS ")[0].strip()
    assert parent in found, f"stage {stage} has no {instruction}"
    return last(parent, instruction)


def runs(stage: str) -> list[str]:
    return [rest for name, rest in stages()[stage] if name == "RUN"]


@pytest.mark.parametrize(
    ("target", "want_entrypoint"),
    [
        pytest.param("operator", ["quantfleet", "operator"], id="operator image runs the operator"),
        pytest.param("jobs", ["python", "-m"], id="jobs image runs a program module"),
        pytest.param("vllm-cpu", ["vllm", "serve"], id="vllm-cpu image serves"),
        pytest.param("evaluate", ["python", "-m"], id="evaluate image runs a program module"),
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
    ("deps_stage", "want_jobs_extra"),
    [
        pytest.param("operator-deps", False, id="operator without the Job libraries"),
        pytest.param("jobs-deps", True, id="jobs with torch, llmcompressor, lm-eval, guidellm"),
    ],
)
def test_install_is_frozen_to_the_lock_with_the_right_extras(
    deps_stage: str, want_jobs_extra: bool
) -> None:
    syncs = [run for run in runs(deps_stage) if "uv sync" in run]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert "--no-install-project" in sync
        assert ("--extra jobs" in sync) is want_jobs_extra
        assert "--all-extras" not in sync


@pytest.mark.parametrize(
    ("target", "want_base"),
    [
        pytest.param("operator", "${PYTHON_IMAGE} AS runtime", id="operator"),
        pytest.param("jobs", "${PYTHON_IMAGE} AS runtime", id="jobs"),
        pytest.param(
            "vllm-cpu",
            "${VLLM_CPU_PYTHON_IMAGE} AS vllm-cpu-runtime",
            id="vllm-cpu from a Python with a C++ toolchain (vLLM compiles at start)",
        ),
    ],
)
def test_an_image_is_the_base_then_the_dependencies_then_the_project(
    target: str, want_base: str
) -> None:
    found = stages()
    assert found[target][0] == ("FROM", f"{target}-deps AS {target}")
    deps_parent = found[f"{target}-deps"][0][1].split(" AS ")[0]
    assert found[deps_parent][0] == ("FROM", want_base)
    copied = [rest for name, rest in found[target] if name == "COPY"]
    assert copied == ["--from=project /app/project/ /app/.venv/"]
    assert not runs(target)


@pytest.mark.parametrize("stage", ["operator-deps", "jobs-deps", "vllm-cpu-deps"])
def test_a_dependency_layer_reads_only_the_project_metadata_and_locks(stage: str) -> None:
    copied = [rest for name, rest in stages()[stage] if name == "COPY"]
    assert copied
    assert all("operator/" not in c and "jobs/" not in c for c in copied)


@pytest.mark.parametrize("stage", ["operator-deps", "jobs-deps", "vllm-cpu-deps", "project"])
def test_uv_and_its_cache_are_mounted_not_kept(stage: str) -> None:
    text = DOCKERFILE.read_text()
    assert "\nENV UV_" not in text
    for run in runs(stage):
        assert "--mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv" in run
        assert "--mount=type=cache,target=/root/.cache/uv" in run


def test_the_project_layer_holds_the_project_without_its_dependencies() -> None:
    (install,) = [run for run in runs("project") if "uv pip install" in run]
    assert "--no-deps" in install
    assert "--prefix /app/project" in install


def test_the_vllm_cpu_image_installs_the_locked_serving_environment() -> None:
    syncs = [run for run in runs("vllm-cpu-deps") if "uv sync" in run]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync
        assert "--project serving" in sync  # serving/uv.lock: what tests/serving serves with


def test_the_build_context_holds_what_the_stages_copy() -> None:
    ignore = (DOCKERFILE.parent / ".dockerignore").read_text().splitlines()
    for kept in ("pyproject.toml", "uv.lock", "README.md", "operator/", "jobs/", "serving/"):
        assert f"!{kept}" in ignore


def test_the_gpu_evaluate_image_adds_the_harnesses_at_the_serving_environments_pins() -> None:
    """vLLM's image has no lock of ours: what the evaluate image adds to it is pinned as
    serving/pyproject.toml pins it, the environment the evaluate tests run in."""
    assert stages()["evaluate"][0] == ("FROM", "${VLLM_IMAGE} AS evaluate")
    serving = tomllib.loads((DOCKERFILE.parent / "serving" / "pyproject.toml").read_text())
    (install,) = [run for run in runs("evaluate") if "uv pip install" in run]
    added = re.findall(r'"([^"$]+)"', install.split("&&")[0])
    assert {re.split(r"[\[=<]", a)[0] for a in added} >= {"lm-eval", "lmms-eval"}
    assert set(added) <= set(serving["project"]["dependencies"])
    assert install.split("&&")[0].rstrip().endswith(" .")  # and the project itself
