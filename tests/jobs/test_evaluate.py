"""The evaluate program for real: lm-evaluation-harness over transformers on the CPU, with local
task definitions and data (no hub), baseline vs quantized, recovery as the study computes it."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from factories.tasks import IMAGE_TASK_NAME, MGSM_ROWS, write_study_task_copies
from quantfleet.api.contract import MGSM_LANGUAGES, STUDY_TASKS, harness_task
from quantfleet.api.enums import EvalTask, Harness, Modality, ModelKind, Scheme
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


LM_EVAL = importlib.metadata.version("lm-eval")


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


def test_a_text_model_is_not_scored_on_vision_tasks(
    tiny_llama: Path, study_tasks: Path, tmp_path: Path
) -> None:
    # Admission refuses `kind: text` with a vision task; a kind left to detection is checked
    # against the checkpoint's config before any model loads.
    code, result = run(
        tmp_path, f"--baseline={tiny_llama}", f"--quantized={tiny_llama}", "--tasks=mgsm,chartqa",
        f"--include-path={study_tasks}", "--no-builtin-tasks", "--device=cpu",
    )  # fmt: skip
    assert code == 1
    assert isinstance(result, FailureResult)
    assert result.reason == (
        f"{tiny_llama.name} is a text model (no vision_config in its config.json): it cannot be "
        "scored on vision tasks (chartqa)"
    )


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
    ("task", "want_harness", "want_runs"),
    [
        pytest.param("mmlu", Harness.LM_EVAL, ("mmlu_generative",), id="generative, as served"),
        pytest.param("mmmu", Harness.LM_EVAL, ("mmmu_val",), id="the study's split"),
        pytest.param(
            "mgsm",
            Harness.LM_EVAL,
            tuple(f"mgsm_native_cot_{language}" for language in MGSM_LANGUAGES),
            id="a tag: its native-CoT tasks, not the English-CoT ones it also takes",
        ),
        pytest.param("docvqa", Harness.LMMS_EVAL, ("docvqa_val",), id="ANLS: lmms-eval"),
        pytest.param("qf_fox", Harness.LM_EVAL, ("qf_fox",), id="a local task: its own name"),
    ],
)
def test_study_tasks_run_as_the_registry_says(
    task: str, want_harness: Harness, want_runs: tuple[str, ...]
) -> None:
    assert (harness_task(task).harness, harness_task(task).runs) == (want_harness, want_runs)
    assert set(STUDY_TASKS) == set(EvalTask)


def test_every_lm_eval_task_of_the_registry_is_in_the_installed_lm_eval_with_its_metric() -> None:
    """Held against the installed lm-eval: each task, group or tag exists, a tag's parts are
    its members, and the registry's (metric, filter) is one the task (or a group's aggregate)
    reports."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    def resolved(path: Path) -> dict[str, Any]:
        config: dict[str, Any] = load_yaml(path, resolve_func=False)
        if "include" in config:
            return {**resolved(path.parent / config["include"]), **config}
        return config

    index = TaskManager().task_index
    for task, spec in STUDY_TASKS.items():
        if spec.harness is not Harness.LM_EVAL:
            continue
        assert spec.task in index, task
        want = tuple(spec.metric.split(","))
        for name in spec.runs:
            config = resolved(index[name].yaml_path)
            if "aggregate_metric_list" in config:
                reported = {
                    (m["metric"], m.get("filter_list", "none"))
                    for m in config["aggregate_metric_list"]
                }
            else:
                filters = {f["name"] for f in config.get("filter_list") or []} or {"none"}
                metrics = {str(m["metric"]).rsplit(".", 1)[-1] for m in config["metric_list"]}
                reported = {(m, f) for m in metrics for f in filters}
            assert want in reported, (task, name, reported)
        if spec.parts:
            members = {n for n, e in index.items() if spec.task in (e.tags or ())}
            assert set(spec.parts) <= members, task


def test_list_tasks_prints_each_study_task_with_its_harness_task_and_metric(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert evaluate.main(["--list-tasks"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(STUDY_TASKS)
    docvqa = next(line.split() for line in lines if line.startswith("docvqa "))
    assert docvqa == ["docvqa", "lmms-eval", "docvqa_val", "ANLS", "(anls,none)", "vision"]


def test_harness_results_are_read_back_under_the_names_asked_for() -> None:
    mgsm_rows = {
        f"mgsm_native_cot_{language}": {
            "alias": language, "exact_match,flexible-extract": 0.5 if language == "en" else 0.4,
            "exact_match,strict-match": 0.0, "exact_match_stderr,flexible-extract": 0.01,
        }
        for language in MGSM_LANGUAGES
    }  # fmt: skip
    results = {
        "results": {**mgsm_rows, "qf_fox": {"alias": "qf_fox", "acc,none": 0.75}},
        "versions": {**dict.fromkeys(mgsm_rows, 4.0), "qf_fox": "Yaml"},
        "n-samples": {name: {"original": 250, "effective": 2} for name in [*mgsm_rows, "qf_fox"]},
    }

    scores = evaluate.read_scores(results, ["mgsm", "qf_fox"])

    # mgsm: the study's metric (not the first reported), unweighted over its 11 languages.
    assert scores["mgsm"].metric == "exact_match,flexible-extract"
    assert scores["mgsm"].value == pytest.approx((0.5 + 10 * 0.4) / 11)
    assert (scores["mgsm"].version, scores["mgsm"].samples) == ("4.0", 22)
    assert scores["qf_fox"] == evaluate.Score("acc,none", 0.75, None, 2)  # no version: "Yaml"


def test_a_study_task_without_its_metric_in_the_results_is_a_one_line_reason() -> None:
    results = {"results": {"chartqa": {"alias": "chartqa", "exact_match,none": 0.5}}}

    with pytest.raises(
        JobError, match="lm-eval reported no relaxed_accuracy,none for task chartqa"
    ):
        evaluate.read_scores(results, ["chartqa"])
    # A cluster's own copy of the task (--no-builtin-tasks) may score another way: it says so.
    own = evaluate.read_scores(results, ["chartqa"], own_definitions=True)
    assert own["chartqa"][:2] == ("exact_match,none", 0.5)


def test_recovery_is_also_reported_per_modality() -> None:
    args = evaluate.build_parser({}).parse_args(["--baseline=b", "--quantized=q"])
    baseline = {"chartqa": evaluate.Score("m", 0.8), "mmmu": evaluate.Score("m", 0.4),
                "mmlu": evaluate.Score("m", 0.6)}  # fmt: skip
    quantized = {"chartqa": evaluate.Score("m", 0.8), "mmmu": evaluate.Score("m", 0.4),
                 "mmlu": evaluate.Score("m", 0.3)}  # fmt: skip

    result = evaluate.summarise(
        args, list(baseline), baseline, quantized,
        engine="hf", baseline_cached=False, duration_seconds=0.0, versions={},
    )  # fmt: skip

    assert result.recovery_by_modality == {Modality.VISION: 100.0, Modality.TEXT: 50.0}
    assert result.recovery == pytest.approx(1.5 / 1.8 * 100, abs=1e-3)


@pytest.mark.parametrize(
    ("tensor_parallel_size", "device", "want_device_map"),
    [
        pytest.param(1, "cuda", "cuda", id="one GPU"),
        pytest.param(4, "cuda", "auto", id="four GPUs: transformers spreads the layers"),
        pytest.param(1, "cpu", "cpu", id="the CPU"),
    ],
)
def test_transformers_runs_across_the_gpus_it_was_given(
    tensor_parallel_size: int, device: str, want_device_map: str
) -> None:
    assert evaluate.hf_device_map(device, tensor_parallel_size) == want_device_map


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
        pytest.param("auto", "cuda", True, "server", id="auto on a GPU with vLLM: served"),
        pytest.param("auto", "cuda", False, "hf", id="auto on a GPU without vLLM"),
        pytest.param("auto", "cpu", True, "hf", id="auto on the CPU: transformers"),
        pytest.param("server", "cpu", True, "server", id="served on the CPU when asked"),
    ],
)
def test_engine_choice(requested: str, device: str, has_vllm: bool, want: str) -> None:
    assert evaluate.engine_for(requested, device, has_vllm=has_vllm) == want


def test_vllm_asked_for_but_absent_is_a_one_line_reason() -> None:
    with pytest.raises(JobError, match="vLLM is not installed"):
        evaluate.engine_for("server", "cpu", has_vllm=False)


def test_the_in_process_vllm_engine_is_gone_with_a_clear_reason() -> None:
    with pytest.raises(JobError, match="unknown engine 'vllm': want auto, server, hf"):
        evaluate.engine_for("vllm", "cuda", has_vllm=True)


def test_a_served_checkpoint_gets_its_engine_arguments_as_flags_on_loopback() -> None:
    gpu = evaluate.vllm_server_args(Path("/m/q"), 8001, 4, "cuda", 2048)
    cpu = evaluate.vllm_server_args(Path("/m/q"), 8001, 1, "cpu", None)

    assert gpu[1:] == [
        "-m", "vllm.entrypoints.openai.api_server", "--model=/m/q", "--host=127.0.0.1",
        "--port=8001", "--served-model-name=model", "--tensor-parallel-size=4",
        "--max-model-len=2048",
    ]  # fmt: skip
    assert cpu[-2:] == [f"--kv-cache-memory-bytes={evaluate.CPU_KV_CACHE_BYTES}", "--enforce-eager"]


@pytest.fixture(scope="module")
def study_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local copies of the study's lm-eval tasks (factories.tasks): mgsm and chartqa."""
    return write_study_task_copies(tmp_path_factory.mktemp("study-tasks"))


def test_mgsm_runs_as_lm_eval_runs_it_and_is_reported_and_cached_by_the_crd_name(
    tiny_llama: Path, study_tasks: Path, tmp_path: Path
) -> None:
    # lm-eval runs its 11 native-CoT mgsm tasks (their prompts, filters and metric, over local
    # rows); the result, the cache and --baseline-scores say mgsm, the spec's and status' name.
    cache = tmp_path / "cache"
    common = ["--tasks=mgsm", "--limit=4", f"--include-path={study_tasks}",
              "--no-builtin-tasks", "--device=cpu"]  # fmt: skip
    code, first = run(
        tmp_path, f"--baseline={tiny_llama}", f"--quantized={tiny_llama}",
        f"--baseline-cache={cache}", *common,
    )  # fmt: skip
    assert code == 0, first
    assert isinstance(first, EvaluateResult)
    (mgsm,) = first.tasks
    assert (mgsm.task, mgsm.metric) == ("mgsm", "exact_match,flexible-extract")
    assert (mgsm.version, mgsm.samples) == ("4.0", len(MGSM_LANGUAGES) * len(MGSM_ROWS))
    assert first.recovery_by_modality.keys() <= {Modality.TEXT}
    assert first.library_versions["lm-eval"] == LM_EVAL
    (entry,) = [json.loads(p.read_text()) for p in cache.glob("*.json")]
    assert (entry["task"], entry["harness"], entry["harnessVersion"]) == (
        "mgsm",
        "lm-eval",
        LM_EVAL,
    )

    # The operator hands back what it cached from that result, keyed the same way; a score
    # from another lm-eval version is not reused (the baseline would then be scored: it is
    # absent, so the run would fail).
    known = {"mgsm": {"metric": mgsm.metric, "score": 0.5, "harnessVersion": LM_EVAL}}
    code, second = run(
        tmp_path, f"--baseline={tmp_path / 'absent-baseline'}", f"--quantized={tiny_llama}",
        f"--baseline-scores={json.dumps(known)}", *common,
    )  # fmt: skip
    assert code == 0, second
    assert isinstance(second, EvaluateResult)
    assert [(t.task, t.baseline) for t in second.tasks] == [("mgsm", 0.5)]
    stale = {"mgsm": {**known["mgsm"], "harnessVersion": "0.4.0"}}
    code, third = run(
        tmp_path, f"--baseline={tmp_path / 'absent-baseline'}", f"--quantized={tiny_llama}",
        f"--baseline-scores={json.dumps(stale)}", *common,
    )  # fmt: skip
    assert code == 1
    assert isinstance(third, FailureResult)


def test_an_lmms_eval_task_on_an_in_process_engine_is_a_one_line_reason(
    tiny_llama: Path, tmp_path: Path
) -> None:
    code, result = run(
        tmp_path, f"--baseline={tiny_llama}", f"--quantized={tiny_llama}", "--tasks=docvqa",
        "--no-builtin-tasks", "--device=cpu", "--engine=hf",
    )  # fmt: skip
    assert code == 1
    assert isinstance(result, FailureResult)
    assert result.reason == (
        "task 'docvqa' runs in lmms-eval (docvqa_val), which scores served models only: "
        "--engine server, not hf"
    )


def test_known_baseline_scores_from_the_operator_skip_scoring_the_baseline(
    tiny_llama: Path, local_tasks: Path, tmp_path: Path
) -> None:
    # The baseline path does not exist: had it been scored, the run would have failed.
    known = {
        "qf_fox": {"metric": "acc,none", "score": 0.5, "harnessVersion": LM_EVAL},
        "qf_image": {"metric": "acc,none", "score": 0.25, "harnessVersion": LM_EVAL},
        "mgsm": {"metric": "exact_match", "score": 0.9, "harnessVersion": LM_EVAL},  # not asked
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
