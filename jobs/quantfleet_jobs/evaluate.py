"""Score the baseline and the quantized checkpoint on the same tasks with lm-evaluation-harness
and report recovery as the study does: per task quantized / baseline x 100, and overall the
ratio of the two averages (not the mean of the per-task ratios).

parse → fetch both models → baseline scores (from the cache where present) → quantized scores →
recovery → write the cache and the result. Engines: vLLM on GPUs, transformers on the CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

from quantfleet.api.contract import HARNESS_TASKS as CONTRACT_TASKS
from quantfleet.api.enums import ModelKind
from quantfleet.api.results import EvaluateResult, TaskScore
from quantfleet_jobs import checkpoints
from quantfleet_jobs.common import (
    JobArgumentParser,
    JobError,
    add_common_arguments,
    env_default,
    fetch_source,
    library_versions,
    run_program,
    select_device,
    split_list,
    workdir_for,
)

# The study's tasks by their lm-evaluation-harness names; names not listed there are passed
# through, so local task definitions (--include-path) work too.
HARNESS_TASKS = {str(task): harness for task, harness in CONTRACT_TASKS.items()}
_NOT_METRICS = {"alias", "name", "sample_len", "sample_count"}


def build_parser() -> argparse.ArgumentParser:
    parser = JobArgumentParser(prog="quantfleet-evaluate", description=__doc__)
    parser.add_argument("--baseline", default=env_default("BASELINE"), help="Unquantized model")
    parser.add_argument("--baseline-revision", default=env_default("BASELINE_REVISION"))
    parser.add_argument("--quantized", default=env_default("QUANTIZED"), help="Checkpoint to score")
    parser.add_argument(
        "--tasks",
        default=env_default("TASKS"),
        help=f"Comma list: {', '.join(HARNESS_TASKS)} or any lm-eval task name",
    )
    parser.add_argument("--limit", type=int, default=_int(env_default("LIMIT")))
    parser.add_argument(
        "--include-path", default=env_default("INCLUDE_PATH"), help="Local task definitions"
    )
    parser.add_argument(
        "--no-builtin-tasks",
        action="store_true",
        default=env_default("NO_BUILTIN_TASKS") == "1",
        help="Index only --include-path tasks (indexing lm-eval's own takes a while)",
    )
    parser.add_argument(
        "--baseline-cache",
        default=env_default("BASELINE_CACHE"),
        help="Directory of cached baseline scores per (model, revision, task, limit)",
    )
    parser.add_argument(
        "--baseline-scores",
        default=env_default("BASELINE_SCORES"),
        help='Known baseline scores as JSON {"task": {"metric": M, "score": S}} (the operator\'s '
        "cache for this model, revision and limit); tasks found here are not scored again",
    )
    parser.add_argument("--engine", default=env_default("ENGINE", "auto"), help="auto, hf or vllm")
    parser.add_argument("--device", default=env_default("DEVICE", "auto"), help="auto, cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=int(env_default("BATCH_SIZE", "8") or 8))
    parser.add_argument(
        "--apply-chat-template", action="store_true", default=env_default("CHAT_TEMPLATE") == "1"
    )
    add_common_arguments(parser)
    return parser


def evaluate(args: argparse.Namespace) -> EvaluateResult:
    started = time.monotonic()
    if not args.baseline or not args.quantized or not args.tasks:
        raise JobError("--baseline, --quantized and --tasks are required")
    tasks = [HARNESS_TASKS.get(name, name) for name in split_list(args.tasks)]
    if len(tasks) > 16:
        raise JobError(f"{len(tasks)} tasks requested; at most 16 fit in a result")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    device = select_device(args.device)
    # auto: vLLM on a GPU where the image has it (the serving image does), transformers else.
    has_vllm = importlib.util.find_spec("vllm") is not None
    engine = (
        args.engine
        if args.engine != "auto"
        else ("vllm" if device == "cuda" and has_vllm else "hf")
    )
    if engine not in ("hf", "vllm"):
        raise JobError(f"unknown engine {engine!r}: want auto, hf or vllm")
    workdir = workdir_for(args)

    def fetch(uri: str) -> Path:
        return fetch_source(
            uri, mount_root=args.mount_root, workdir=workdir, token_env=args.hf_token_env
        )

    from lm_eval.tasks import TaskManager

    task_manager = TaskManager(
        include_path=args.include_path, include_defaults=not args.no_builtin_tasks
    )
    if unknown := [t for t in tasks if not task_manager.match_tasks([t])]:
        raise JobError(f"unknown task {unknown[0]!r}: not in lm-eval or --include-path")

    # Baseline: cached scores where this (model, revision, task, limit) was scored before.
    cache = Path(args.baseline_cache) if args.baseline_cache else None
    baseline: dict[str, tuple[str, float]] = {}
    for task in tasks:
        cached = _cache_file(cache, args, task)
        if cached is not None and cached.is_file():
            entry = json.loads(cached.read_text())
            baseline[task] = (entry["metric"], float(entry["score"]))
    for task, entry in _known_scores(args.baseline_scores).items():
        if task in tasks and task not in baseline:
            baseline[task] = (entry["metric"], float(entry["score"]))
    missing = [t for t in tasks if t not in baseline]
    if missing:
        baseline.update(score(fetch(args.baseline), missing, args, engine, device, task_manager))
        for task in missing:
            cached = _cache_file(cache, args, task)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                metric, value = baseline[task]
                cached.write_text(
                    json.dumps({"metric": metric, "score": value, **_key(args, task)})
                )

    quantized = score(fetch(args.quantized), tasks, args, engine, device, task_manager)

    scores = [
        TaskScore(
            task=task,
            metric=baseline[task][0],
            baseline=baseline[task][1],
            quantized=quantized[task][1],
            recovery=_recovery(quantized[task][1], baseline[task][1]),
        )
        for task in tasks
    ]
    baseline_average = sum(s.baseline for s in scores) / len(scores)
    quantized_average = sum(s.quantized for s in scores) / len(scores)
    return EvaluateResult(
        engine=engine,
        baseline=args.baseline,
        baseline_revision=args.baseline_revision,
        quantized=args.quantized,
        limit=args.limit,
        baseline_cached=not missing,
        tasks=scores,
        baseline_average=round(baseline_average, 6),
        quantized_average=round(quantized_average, 6),
        recovery=_recovery(quantized_average, baseline_average),
        duration_seconds=round(time.monotonic() - started, 3),
        library_versions=library_versions("lm-eval", "transformers", "torch", "vllm"),
    )


def score(
    directory: Path,
    tasks: list[str],
    args: argparse.Namespace,
    engine: str,
    device: str,
    task_manager: Any,
) -> dict[str, tuple[str, float]]:
    """(metric, score) per task for one model, every model with the same settings."""
    from lm_eval import simple_evaluate

    kind = checkpoints.model_kind_of(checkpoints.read_config(directory))
    model = _language_model(directory, kind, engine, device, args.batch_size)
    results = simple_evaluate(
        model=model,
        tasks=tasks,
        limit=args.limit,
        task_manager=task_manager,
        apply_chat_template=args.apply_chat_template,
        log_samples=False,
        bootstrap_iters=0,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    if results is None:
        raise JobError("lm-eval returned no results")
    scores = {}
    for task in tasks:
        row = results["results"].get(task)
        if not row:
            raise JobError(f"lm-eval reported nothing for task {task}")
        metric, value = next(
            (key, float(val))
            for key, val in row.items()
            if key not in _NOT_METRICS and "_stderr" not in key and isinstance(val, int | float)
        )
        scores[task] = (metric, value)
    return scores


def _language_model(directory: Path, kind: ModelKind, engine: str, device: str, batch: int) -> Any:
    """The lm-eval model: vLLM on GPUs; on the CPU transformers with our loader (which keeps a
    quantized VLM's vision tower unquantized on load, see checkpoints.load_model)."""
    if engine == "vllm":
        from lm_eval.api.registry import get_model

        name = "vllm-vlm" if kind is ModelKind.VISION_LANGUAGE else "vllm"
        return get_model(name).create_from_arg_obj(
            {"pretrained": str(directory), "batch_size": "auto"}
        )
    model = checkpoints.load_model(directory, device=device)
    processor = checkpoints.load_processor(directory, kind)
    if kind is ModelKind.VISION_LANGUAGE:
        from lm_eval.models.hf_vlms import HFMultimodalLM

        return HFMultimodalLM(pretrained=model, processor=processor, batch_size=batch)
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=processor, batch_size=batch, device=device)


def _recovery(quantized: float, baseline: float) -> float | None:
    return round(quantized / baseline * 100, 4) if baseline else None


def _key(args: argparse.Namespace, task: str) -> dict[str, Any]:
    return {
        "model": args.baseline,
        "revision": args.baseline_revision,
        "task": task,
        "limit": args.limit,
    }


def _known_scores(text: str | None) -> dict[str, dict[str, Any]]:
    """Parse --baseline-scores; a malformed value is a bad argument, not a crash."""
    if not text:
        return {}
    try:
        scores = json.loads(text)
        if not isinstance(scores, dict) or not all(
            isinstance(e, dict) and {"metric", "score"} <= e.keys() for e in scores.values()
        ):
            raise ValueError("want {task: {metric, score}}")
    except ValueError as error:
        raise JobError(f"bad --baseline-scores: {error}") from error
    return scores


def _cache_file(cache: Path | None, args: argparse.Namespace, task: str) -> Path | None:
    if cache is None:
        return None
    digest = hashlib.sha256(json.dumps(_key(args, task), sort_keys=True).encode()).hexdigest()
    return cache / f"{digest[:32]}.json"


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def main(argv: list[str] | None = None) -> int:
    return run_program("evaluate", build_parser(), evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
