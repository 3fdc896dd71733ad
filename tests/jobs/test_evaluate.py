"""The evaluate program for real: lm-evaluation-harness over transformers on the CPU, with local
task definitions and data (no hub), baseline vs quantized, recovery as the study computes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quantfleet.api.contract import HARNESS_TASKS, harness_task
from quantfleet.api.enums import EvalTask
from quantfleet.api.results import EvaluateResult, FailureResult, parse_result
from quantfleet_jobs import evaluate, quantize

TASK_TEMPLATE = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small multiple-choice tasks defined and stored locally, as lm-eval reads them."""
    directory = tmp_path_factory.mktemp("tasks")
    for name, choices in {
        "qf_fox": ["lazy dog", "chart number"],
        "qf_image": ["a cat on a mat", "the quick brown fox", "a chart"],
    }.items():
        rows = [
            {"question": f"the quick brown fox {i} jumps over the", "choices": choices,
             "answer": i % len(choices)}
            for i in range(16)
        ]  # fmt: skip
        data = directory / f"{name}.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows))
        (directory / f"{name}.yaml").write_text(TASK_TEMPLATE.format(name=name, data=data))
    return directory


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


@pytest.mark.parametrize(
    ("tensor_parallel_size", "device", "want_tp", "want_device_map"),
    [
        pytest.param(1, "cuda", 1, "cuda", id="one GPU"),
        pytest.param(4, "cuda", 4, "auto", id="four GPUs: vLLM splits, transformers spreads"),
        pytest.param(1, "cpu", 1, "cpu", id="the CPU"),
    ],
)
def test_the_engine_runs_across_the_gpus_it_was_given(
    tensor_parallel_size: int, device: str, want_tp: int, want_device_map: str
) -> None:
    args = evaluate.vllm_model_args(Path("/models/q"), tensor_parallel_size)

    assert args == {
        "pretrained": "/models/q",
        "batch_size": "auto",
        "tensor_parallel_size": want_tp,
    }
    assert evaluate.hf_device_map(device, tensor_parallel_size) == want_device_map


@pytest.fixture(scope="module")
def harness_named_task(local_tasks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local task under the harness name of the CRD's `mgsm` (mgsm_cot_native), so the name
    mapping runs for real without the hub."""
    directory = tmp_path_factory.mktemp("harness-tasks")
    fox = (local_tasks / "qf_fox.yaml").read_text()
    (directory / "mgsm_cot_native.yaml").write_text(
        fox.replace("task: qf_fox", "task: mgsm_cot_native")
    )
    return directory


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


VISION_TASK = """task: qf_colour
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_image:
  - image
doc_to_text: "<image>What colour is the picture?"
doc_to_target: "{{{{label}}}}"
generation_kwargs:
  until: []
  do_sample: false
  max_gen_toks: 4
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def test_vision_language_baseline_vs_quantized_on_a_local_image_task(
    tiny_vlm: Path, tmp_path: Path
) -> None:
    """The CPU path for VLMs: lm-eval's hf-multimodal model over our loader, images from a local
    parquet file. A random tiny model answers nothing right, so the scores are 0 and recovery
    is null (undefined), which is what the result must then say."""
    import datasets
    from PIL import Image

    rows = {
        "image": [Image.new("RGB", (64, 64), c) for c in ("red", "green", "blue", "white")],
        "label": ["red", "green", "blue", "white"],
    }
    data = tmp_path / "colour.parquet"
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(data)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "qf_colour.yaml").write_text(VISION_TASK.format(data=data))
    quantized = tmp_path / "vlm-fp8"
    assert quantize.main(
        [f"--source={tiny_vlm}", f"--output={quantized}", "--scheme=FP8_DYNAMIC",
         "--device=cpu", f"--termination-log={tmp_path / 'qlog'}"]
    ) == 0  # fmt: skip

    code, result = run(
        tmp_path, f"--baseline={tiny_vlm}", f"--quantized={quantized}", "--tasks=qf_colour",
        "--limit=4", f"--include-path={tmp_path / 'tasks'}", "--no-builtin-tasks",
        "--device=cpu", "--batch-size=1",
    )  # fmt: skip

    assert code == 0, result
    assert isinstance(result, EvaluateResult)
    (task,) = result.tasks
    assert task.metric == "exact_match,none"
    assert (task.baseline, task.quantized) == (0.0, 0.0)
    assert task.recovery is None
    assert result.recovery is None
