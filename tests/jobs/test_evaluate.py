"""The evaluate program for real: lm-evaluation-harness over transformers on the CPU, with local
task definitions and data (no hub), baseline vs quantized, recovery as the study computes it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from factories.tasks import IMAGE_TASK_NAME, write_harness_named_task
from quantfleet.api.contract import HARNESS_TASKS, harness_task
from quantfleet.api.enums import EvalTask, ModelKind, Scheme
from quantfleet.api.results import EvaluateResult, FailureResult, parse_result
from quantfleet_jobs import evaluate, quantize
from quantfleet_jobs.common import JobError


@pytest.fixture(scope="module")
def quantized_llama(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("quantized")
    output = directory / "w4a16"
    code = quantize.main(
        [f"--source={tiny_llama}", f"--output={output}", "--scheme=W4A16",
         "--dataset=synthetic", "--num-samples=8", "--max-seq-length=64", "--device=cpu",
         f"--termination-log={directory / 'log'}", f"--workdir={directory / 'work'}"]
    )  # fmt: skip
    assert code == 0
    return output


def run(tmp_path: Path, *args: str) -> tuple[int, Any]:
    log = tmp_path / "termination-log"
    argv = [*args, "--termination-log", str(log), "--workdir", str(tmp_path / "work")]
    code = evaluate.main(argv)
    return code, parse_result(log.read_text())


def settings(local_tasks: Path, cache: Path) -> list[str]:
    return [
        "--tasks=qf_fox,qf_image",
        "--limit=12",
        f"--include-path={local_tasks}",
        "--no-builtin-tasks",
        f"--baseline-cache={cache}",
        "--device=cpu",
        "--baseline-revision=r1",
    ]


def test_baseline_vs_quantized_reports_recovery_as_a_ratio_of_averages_and_caches_baseline(
    tiny_llama: Path, quantized_llama: Path, local_tasks: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    code, first = run(
        tmp_path,
        f"--baseline={tiny_llama}",
        f"--quantized={quantized_llama}",
        *settings(local_tasks, cache),
    )

    assert code == 0, first
    assert isinstance(first, EvaluateResult)
    assert first.engine == "hf"
    assert not first.baseline_cached
    assert [t.task for t in first.tasks] == ["qf_fox", "qf_image"]
    for task in first.tasks:
        assert task.metric == "acc,none"
        assert 0 <= task.baseline <= 1
        assert 0 <= task.quantized <= 1
        # 12 samples: every score is a multiple of 1/12.
        assert round(task.baseline * 12, 6).is_integer()
        assert task.recovery == (
            pytest.approx(task.quantized / task.baseline * 100, abs=1e-3) if task.baseline else None
        )
    averages = [
        sum(getattr(t, side) for t in first.tasks) / 2 for side in ("baseline", "quantized")
    ]
    assert first.baseline_average == pytest.approx(averages[0], abs=1e-6)
    assert first.quantized_average == pytest.approx(averages[1], abs=1e-6)
    assert first.recovery == pytest.approx(averages[1] / averages[0] * 100, abs=1e-3)
    assert len(list(cache.glob("*.json"))) == 2

    # Same baseline, revision, tasks and limit: the baseline comes from the cache. Scoring the
    # baseline itself as "quantized" must then recover exactly 100% with the cached scores.
    code, second = run(
        tmp_path, f"--baseline={tiny_llama}", f"--quantized={tiny_llama}",
        *settings(local_tasks, cache),
    )  # fmt: skip
    assert code == 0, second
    assert isinstance(second, EvaluateResult)
    assert second.baseline_cached
    assert [t.baseline for t in second.tasks] == [t.baseline for t in first.tasks]
    assert [t.quantized for t in second.tasks] == [t.baseline for t in first.tasks]
    assert all(t.recovery == 100 for t in second.tasks if t.baseline)


def test_unknown_task_fails_with_a_one_line_reason(
    tiny_llama: Path, local_tasks: Path, tmp_path: Path
) -> None:
    code, result = run(
        tmp_path, f"--baseline={tiny_llama}", f"--quantized={tiny_llama}", "--tasks=qf_nope",
        f"--include-path={local_tasks}", "--no-builtin-tasks", "--device=cpu",
    )  # fmt: skip
    assert code == 1
    assert isinstance(result, FailureResult)
    assert result.reason == "unknown task 'qf_nope': not in lm-eval or --include-path"


def test_unreadable_quantized_checkpoint_fails(
    tiny_llama: Path, local_tasks: Path, tmp_path: Path
) -> None:
    code, result = run(
        tmp_path, f"--baseline={tiny_llama}", f"--quantized={tmp_path / 'missing'}",
        *settings(local_tasks, tmp_path / "cache"),
    )  # fmt: skip
    assert code == 1
    assert isinstance(result, FailureResult)
    assert "is not a readable directory" in result.reason


@pytest.mark.parametrize(
    ("task", "want_harness"),
    [
        pytest.param("mmlu", "mmlu", id="same name in the CRD and the harness"),
        pytest.param("mmmu", "mmmu_val", id="the study's split"),
        pytest.param("mgsm", "mgsm_cot_native", id="the study's prompt variant"),
        pytest.param("qf_fox", "qf_fox", id="a local task is its own harness name"),
    ],
)
def test_study_task_names_map_to_harness_tasks(task: str, want_harness: str) -> None:
    assert harness_task(task) == want_harness
    assert {str(t) for t in HARNESS_TASKS} == {t.value for t in EvalTask}


def test_lm_eval_results_are_read_back_under_the_names_asked_for() -> None:
    results = {
        "results": {
            "mgsm_cot_native": {"alias": "mgsm", "exact_match,flexible": 0.4,
                                "exact_match_stderr,flexible": 0.01},
            "qf_fox": {"alias": "qf_fox", "acc,none": 0.75},
        }
    }  # fmt: skip

    scores = evaluate.read_scores(results, ["mgsm", "qf_fox"])

    assert scores == {"mgsm": ("exact_match,flexible", 0.4), "qf_fox": ("acc,none", 0.75)}


CPU_ENGINE = {"kv_cache_memory_bytes": evaluate.CPU_KV_CACHE_BYTES, "enforce_eager": True}


@pytest.mark.parametrize(
    ("tensor_parallel_size", "device", "want_vllm_extra", "want_device_map"),
    [
        pytest.param(1, "cuda", {}, "cuda", id="one GPU"),
        pytest.param(4, "cuda", {}, "auto", id="four GPUs: vLLM splits, transformers spreads"),
        pytest.param(1, "cpu", CPU_ENGINE, "cpu", id="the CPU: a KV cache size, eager"),
    ],
)
def test_the_engine_runs_across_the_gpus_it_was_given(
    tensor_parallel_size: int, device: str, want_vllm_extra: dict[str, Any], want_device_map: str
) -> None:
    args = evaluate.vllm_model_args(Path("/models/q"), tensor_parallel_size, device)

    assert args == {
        "pretrained": "/models/q",
        "batch_size": "auto",
        "tensor_parallel_size": tensor_parallel_size,
        **want_vllm_extra,
    }
    assert evaluate.hf_device_map(device, tensor_parallel_size) == want_device_map


def test_the_tensor_parallel_size_flag_reaches_vllm() -> None:
    # The operator passes the GPUs the evaluate Job requests as --tensor-parallel-size.
    args = evaluate.build_parser({}).parse_args(
        ["--tensor-parallel-size=4", "--max-model-len=2048"]
    )
    engine = evaluate.vllm_model_args(
        Path("/m"), args.tensor_parallel_size, "cuda", args.max_model_len
    )

    assert (engine["tensor_parallel_size"], engine["max_model_len"]) == (4, 2048)


@pytest.mark.parametrize(
    ("kind", "requested", "want"),
    [
        pytest.param(ModelKind.VISION_LANGUAGE, False, True, id="a VLM always: image tokens"),
        pytest.param(ModelKind.TEXT, False, False, id="a text model: as asked"),
        pytest.param(ModelKind.TEXT, True, True, id="a text model asked for it"),
    ],
)
def test_vision_language_models_are_prompted_through_their_chat_template(
    kind: ModelKind, requested: bool, want: bool
) -> None:
    assert evaluate.uses_chat_template(kind, requested) is want


@pytest.mark.parametrize(
    ("requested", "device", "has_vllm", "want"),
    [
        pytest.param("auto", "cuda", True, "vllm", id="auto on a GPU with vLLM"),
        pytest.param("auto", "cuda", False, "hf", id="auto on a GPU without vLLM"),
        pytest.param("auto", "cpu", True, "hf", id="auto on the CPU: transformers"),
        pytest.param("vllm", "cpu", True, "vllm", id="vllm on the CPU when asked"),
    ],
)
def test_engine_choice(requested: str, device: str, has_vllm: bool, want: str) -> None:
    assert evaluate.engine_for(requested, device, has_vllm=has_vllm) == want


def test_vllm_asked_for_but_absent_is_a_one_line_reason() -> None:
    with pytest.raises(JobError, match="vLLM is not installed"):
        evaluate.engine_for("vllm", "cpu", has_vllm=False)


@pytest.fixture(scope="module")
def harness_named_task(local_tasks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qf_fox under the harness name of the CRD's `mgsm` (mgsm_cot_native)."""
    directory = tmp_path_factory.mktemp("harness-tasks")
    return write_harness_named_task(local_tasks, directory, harness_task("mgsm"))


def test_study_tasks_are_reported_and_cached_by_the_crd_names(
    tiny_llama: Path, harness_named_task: Path, tmp_path: Path
) -> None:
    # lm-eval runs mgsm_cot_native; the result, the cache and --baseline-scores say mgsm, the
    # name the QuantizedModel's spec and status use.
    cache = tmp_path / "cache"
    common = ["--tasks=mgsm", "--limit=4", f"--include-path={harness_named_task}",
              "--no-builtin-tasks", "--device=cpu"]  # fmt: skip
    code, first = run(
        tmp_path, f"--baseline={tiny_llama}", f"--quantized={tiny_llama}",
        f"--baseline-cache={cache}", *common,
    )  # fmt: skip
    assert code == 0, first
    assert isinstance(first, EvaluateResult)
    assert [t.task for t in first.tasks] == ["mgsm"]
    (entry,) = [json.loads(p.read_text()) for p in cache.glob("*.json")]
    assert entry["task"] == "mgsm"

    # The operator hands back what it cached from that result, keyed the same way.
    known = {"mgsm": {"metric": first.tasks[0].metric, "score": 0.5}}
    code, second = run(
        tmp_path, f"--baseline={tmp_path / 'absent-baseline'}", f"--quantized={tiny_llama}",
        f"--baseline-scores={json.dumps(known)}", *common,
    )  # fmt: skip
    assert code == 0, second
    assert isinstance(second, EvaluateResult)
    assert [(t.task, t.baseline) for t in second.tasks] == [("mgsm", 0.5)]


def test_known_baseline_scores_from_the_operator_skip_scoring_the_baseline(
    tiny_llama: Path, local_tasks: Path, tmp_path: Path
) -> None:
    # The baseline path does not exist: had it been scored, the run would have failed.
    known = {
        "qf_fox": {"metric": "acc,none", "score": 0.5},
        "qf_image": {"metric": "acc,none", "score": 0.25},
        "mgsm_cot_native": {"metric": "exact_match", "score": 0.9},  # not asked for: ignored
    }
    code, result = run(
        tmp_path, f"--baseline={tmp_path / 'absent-baseline'}", f"--quantized={tiny_llama}",
        "--tasks=qf_fox,qf_image", "--limit=12", f"--include-path={local_tasks}",
        "--no-builtin-tasks", "--device=cpu", f"--baseline-scores={json.dumps(known)}",
    )  # fmt: skip
    assert code == 0, result
    assert isinstance(result, EvaluateResult)
    assert result.baseline_cached
    assert [(t.task, t.baseline) for t in result.tasks] == [("qf_fox", 0.5), ("qf_image", 0.25)]


def test_malformed_baseline_scores_fail_with_a_one_line_reason(
    tiny_llama: Path, local_tasks: Path, tmp_path: Path
) -> None:
    code, result = run(
        tmp_path, f"--baseline={tiny_llama}", f"--quantized={tiny_llama}", "--tasks=qf_fox",
        f"--include-path={local_tasks}", "--no-builtin-tasks", "--device=cpu",
        '--baseline-scores={"qf_fox": 0.5}',
    )  # fmt: skip
    assert code == 1
    assert isinstance(result, FailureResult)
    assert result.reason.startswith("bad --baseline-scores")


def test_vision_language_baseline_vs_quantized_on_a_local_image_task(
    tiny_vlm: Path,
    checkpoint: Callable[[Path, Scheme], Path],
    image_task: Path,
    tmp_path: Path,
) -> None:
    """The CPU path for VLMs: lm-eval's hf-multimodal model over our loader, images from a local
    parquet file. A random tiny model answers nothing right, so the scores are 0 and recovery
    is null (undefined), which is what the result must then say."""
    quantized = checkpoint(tiny_vlm, Scheme.FP8_DYNAMIC)

    code, result = run(
        tmp_path, f"--baseline={tiny_vlm}", f"--quantized={quantized}",
        f"--tasks={IMAGE_TASK_NAME}", "--limit=4", f"--include-path={image_task}",
        "--no-builtin-tasks", "--device=cpu", "--batch-size=1",
    )  # fmt: skip

    assert code == 0, result
    assert isinstance(result, EvaluateResult)
    (task,) = result.tasks
    assert task.metric == "exact_match,none"
    assert (task.baseline, task.quantized) == (0.0, 0.0)
    assert task.recovery is None
    assert result.recovery is None
