"""The evaluate program on real vLLM (the CPU build in serving/.venv), run as its Job runs it:
`python -m quantfleet_jobs.evaluate --engine server` in the serving environment, a vLLM server
for the BF16 baseline and then one for its W8A8 checkpoint, scored over their OpenAI API on
local copies of the study's tasks; the module runs under `flock /tmp/qf-vllm.lock` like every
test that starts vLLM."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from factories.tasks import (
    CHARTQA_ROWS,
    write_lmms_task_copies,
    write_study_task_copies,
)
from factories.vllm import SERVING_PYTHON, serving_env_ready
from quantfleet.api.enums import Modality, Scheme
from quantfleet.api.results import EvaluateResult, parse_result
from quantfleet.builders.serving_status import SELECTED_KERNEL
from quantfleet_jobs.evaluate import CPU_KV_CACHE_BYTES

# VLLM_CPU_KVCACHE_SPACE stays unset: the program sizes the CPU KV cache itself, as in a Job.
NOT_PASSED = ("VLLM_CPU_KVCACHE_SPACE",)
# Two engines of a tiny model: ~1.5 min here when the host is idle.
RUN_TIMEOUT = 900.0
# vLLM's own log lines: one per engine it starts, and the KV cache it was given on the CPU.
ENGINE_STARTED = re.compile(r"Initializing a V1 LLM engine \(v[^)]+\) with config: model='([^']+)'")
EAGER = re.compile(r"Initializing a V1 LLM engine .*enforce_eager=True")
KV_CACHE_GIB = re.compile(r"Explicitly set \(([\d.]+)/[\d.]+\) GiB for KV cache")
# A request the harness made of a server, in vLLM's access log.
CHAT_REQUEST = re.compile(r'"POST /v1/chat/completions HTTP/1.1" 200')


@dataclass
class Evaluation:
    """One run of the program: its result, its whole output (vLLM's log among it), wall time."""

    baseline: Path
    quantized: Path
    result: EvaluateResult
    output: str
    seconds: float


def evaluate_on_vllm(work: Path, baseline: Path, quantized: Path, *args: str) -> Evaluation:
    """Run the evaluate program with serving/.venv's Python and `--engine server` on the CPU."""
    if not serving_env_ready():
        pytest.fail("serving/.venv has no vLLM: run `make setup`", pytrace=False)
    termination_log, output_log = work / "termination-log", work / "evaluate.log"
    command = [
        str(SERVING_PYTHON), "-m", "quantfleet_jobs.evaluate",
        f"--baseline={baseline}", f"--quantized={quantized}", "--engine=server", "--device=cpu",
        "--no-builtin-tasks", f"--termination-log={termination_log}", f"--workdir={work / 'w'}",
        *args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
    began = time.monotonic()
    with output_log.open("wb") as output:
        code = subprocess.run(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, timeout=RUN_TIMEOUT
        ).returncode
    seconds = time.monotonic() - began
    text = output_log.read_text(errors="replace")
    result = parse_result(termination_log.read_text()) if termination_log.is_file() else None
    tail = "\n".join(text.splitlines()[-20:])
    assert code == 0, f"exit {code}: {result}\n{tail}"
    assert isinstance(result, EvaluateResult), result
    return Evaluation(baseline, quantized, result, text, seconds)


@pytest.fixture(scope="module")
def served_vision_language_model(
    tiny_vlm: Path,
    checkpoint: Callable[[Path, Scheme], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Evaluation:
    """The study's way: a vLLM server per checkpoint (one after the other), lm-eval's own
    chartqa, mmmu and mmlu and lmms-eval's own docvqa, vqav2 and mathvista (over local rows, two
    each) scored through each harness's OpenAI-compatible client. (mgsm, the seventh, runs for
    real in tests/jobs: its 11 languages' chain-of-thought replies would double this test.)"""
    tasks = write_study_task_copies(tmp_path_factory.mktemp("study-tasks"))
    write_lmms_task_copies(tasks, SERVING_PYTHON)
    return evaluate_on_vllm(
        tmp_path_factory.mktemp("evaluate-served-vlm"),
        tiny_vlm,
        checkpoint(tiny_vlm, Scheme.W8A8),
        f"--tasks={','.join(SERVED_TASKS)}",
        f"--limit={len(CHARTQA_ROWS['colour'])}",
        f"--include-path={tasks}",
    )


# Each study task the program scores over the API, with its harness's metric for it.
SERVED_TASKS = {
    "chartqa": "relaxed_accuracy,none",
    "mmmu": "acc,none",
    "mmlu": "exact_match,get_response",
    "docvqa": "anls,none",
    "vqav2": "exact_match,none",
    "mathvista": "judge_free_accuracy,none",
}


def test_served_checkpoints_are_scored_over_the_openai_api_with_the_study_metric(
    served_vision_language_model: Evaluation,
) -> None:
    run = served_vision_language_model
    result = run.result

    assert result.engine == "server"
    rows = len(CHARTQA_ROWS["colour"])
    assert {t.task: t.metric for t in result.tasks} == SERVED_TASKS
    assert all(t.samples == rows for t in result.tasks)
    scores = {t.task: t for t in result.tasks}
    # lm-eval's tasks and groups have versions; lmms-eval's tasks declare none.
    assert [t.version for t in result.tasks] == ["0.0", "0.0", "3", None, None, None]
    # A random tiny VLM names no colour: 0 on chartqa, docvqa and vqav2 for both models.
    for name in ("chartqa", "docvqa", "vqav2"):
        assert (scores[name].baseline, scores[name].quantized) == (0.0, 0.0), name
    # MMMU's rows offer one option, which its answer parsing picks whatever the reply.
    assert (scores["mmmu"].baseline, scores["mmmu"].quantized) == (1.0, 1.0)
    # MathVista's one-choice row is right whatever the reply (judge-free extraction, then
    # lmms-eval's nearest-choice normalisation), so both score at least 1/2 and recovery is a
    # number, for the task and for the vision modality.
    mathvista = scores["mathvista"]
    assert mathvista.baseline >= 0.5
    assert mathvista.quantized >= 0.5
    assert mathvista.recovery == pytest.approx(mathvista.quantized / mathvista.baseline * 100)
    assert result.recovery_by_modality[Modality.VISION] is not None
    assert result.recovery is not None
    # MMLU is the text task here: its own figure, beside vision's.
    assert result.recovery_by_modality.keys() == {Modality.VISION, Modality.TEXT}
    # Two servers, the baseline's then the checkpoint's (W8A8 on vLLM's INT8 CPU kernel), each
    # answering one chat request per row and task, with its image.
    assert ENGINE_STARTED.findall(run.output) == [str(run.baseline), str(run.quantized)]
    assert "CompressedTensorsW8A8Int8" in {s for _, s in SELECTED_KERNEL.findall(run.output)}
    assert len(CHAT_REQUEST.findall(run.output)) == 2 * rows * len(SERVED_TASKS)
    # The CPU engine arguments the program chose: eager, and a KV cache of its own size.
    assert len(EAGER.findall(run.output)) == 2
    kv_cache = [float(gib) for gib in KV_CACHE_GIB.findall(run.output)]
    assert kv_cache == [CPU_KV_CACHE_BYTES / 2**30] * 2
