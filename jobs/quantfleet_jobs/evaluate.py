"""Score the baseline and the quantized checkpoint on the same tasks with lm-evaluation-harness
and lmms-eval (contract.STUDY_TASKS says which task runs where) and report recovery as the study
does: per task quantized / baseline x 100, and overall the ratio of the two averages (not the
mean of the per-task ratios).

parse → fetch both models → baseline scores (from the cache where present) → quantized scores →
recovery → write the cache and the result. Both models run on the same engine: a vLLM
OpenAI-compatible server per checkpoint, scored through the harness's chat-completions client at
temperature 0 with the server applying the model's chat template, as the study scored them
(`server`; `auto` on a GPU where vLLM is installed); or transformers in process (`hf`), which
runs lm-eval's tasks only (lmms-eval scores served models).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from quantfleet.api.contract import MAX_TASKS, STUDY_TASKS, harness_task
from quantfleet.api.enums import Harness, Modality, ModelKind
from quantfleet.api.results import CHECKPOINT_LIBRARY, EvaluateResult, TaskScore
from quantfleet_jobs import checkpoints, judge_free
from quantfleet_jobs.common import (
    JobArgumentParser,
    JobError,
    add_common_arguments,
    env_defaults,
    library_versions,
    run_program,
    select_device,
    source_fetcher,
    split_list,
    workdir_for,
)

# Tasks are named as the QuantizedModel's spec names them (contract.STUDY_TASKS' keys) in the
# result, the cache and --baseline-scores; the harness runs them as STUDY_TASKS says. Other names
# are lm-eval tasks of their own name, so local task definitions (--include-path) work too.
_NOT_METRICS = {"alias", "name", "sample_len", "sample_count"}
ENGINES = ("server", "hf")
# The served model's name on its own server (the program's servers serve one model each).
SERVED_NAME = "model"
# The distributions whose versions a result records (the harnesses' key the baseline cache).
VERSIONED = ("lm-eval", "lmms-eval", "transformers", "torch", "vllm", CHECKPOINT_LIBRARY)


# Both harnesses' simple_evaluate, for every model alike: seeded, no per-sample logs, no
# bootstrap of the standard errors (the program reports none).
HARNESS_SETTINGS: dict[str, Any] = {
    "log_samples": False,
    "bootstrap_iters": 0,
    "random_seed": 0,
    "numpy_random_seed": 0,
    "torch_random_seed": 0,
    "fewshot_random_seed": 0,
}


class Score(NamedTuple):
    """One model's score on one task, as the harness reported it."""

    metric: str
    value: float
    version: str | None = None  # the harness task's version
    samples: int | None = None  # samples scored


Scores = dict[str, Score]
# vLLM's CPU build keeps the KV cache in host RAM and reads gpu_memory_utilization as a share of
# *host* RAM (its 0.9 default is refused on a shared host): size the cache instead. vLLM's own
# VLLM_CPU_KVCACHE_SPACE (GiB) overrides it. 1 GiB holds Qwen2.5-7B's 4k context four times.
CPU_KV_CACHE_BYTES = 2**30


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The program's flags; defaults from QF_* in `environ` (the process's env unless given)."""
    env_default = env_defaults(environ)
    parser = JobArgumentParser(prog="quantfleet-evaluate", description=__doc__)
    parser.add_argument("--baseline", default=env_default("BASELINE"), help="Unquantized model")
    parser.add_argument("--baseline-revision", default=env_default("BASELINE_REVISION"))
    parser.add_argument("--quantized", default=env_default("QUANTIZED"), help="Checkpoint to score")
    parser.add_argument(
        "--tasks",
        default=env_default("TASKS"),
        help=f"Comma list: {', '.join(map(str, STUDY_TASKS))} (run as --list-tasks shows) "
        "or any lm-eval task name",
    )
    parser.add_argument(
        "--list-tasks",
        action="store_true",
        help="Print each study task's harness, harness task, metric and modality, then exit",
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
        help='Known baseline scores as JSON {"task": {"metric": M, "score": S, "harnessVersion": '
        "V}} (the operator's cache for this model, revision and limit); tasks found here with the "
        "installed harness version and its metric are not scored again",
    )
    parser.add_argument(
        "--engine",
        default=env_default("ENGINE", "auto"),
        help="auto, server (a vLLM server per checkpoint, scored over its OpenAI API) or hf "
        "(transformers in process)",
    )
    parser.add_argument(
        "--server-start-timeout",
        type=float,
        default=float(env_default("SERVER_START_TIMEOUT", "900") or 900),
        help="Seconds a vLLM server may take to answer /health (--engine server)",
    )
    parser.add_argument("--device", default=env_default("DEVICE", "auto"), help="auto, cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=int(env_default("BATCH_SIZE", "8") or 8))
    parser.add_argument(
        "--tensor-parallel-size",
        type=int,
        default=int(env_default("TENSOR_PARALLEL_SIZE", "1") or 1),
        help="GPUs one model runs across: vLLM's tensor_parallel_size; transformers (hf) spreads "
        "the layers over them (device_map=auto)",
    )
    parser.add_argument(
        "--max-model-len",
        type=int,
        default=_int(env_default("MAX_MODEL_LEN")),
        help="vLLM's context length (its KV cache is sized for it); default the model's own",
    )
    parser.add_argument(
        "--apply-chat-template",
        action="store_true",
        default=env_default("CHAT_TEMPLATE") == "1",
        help="Prompt through the model's chat template (always for vision-language models)",
    )
    add_common_arguments(parser, env_default)
    return parser


def evaluate(args: argparse.Namespace) -> EvaluateResult:
    started = time.monotonic()
    tasks = requested_tasks(args)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    device = select_device(args.device)
    engine = engine_for(args.engine, device, has_vllm=_installed("vllm"))
    workdir = workdir_for(args)

    fetch = source_fetcher(args, workdir)

    if engine != "server" and (
        served := [t for t in tasks if harness_task(t).harness is Harness.LMMS_EVAL]
    ):
        spec = harness_task(served[0])
        raise JobError(
            f"task {served[0]!r} runs in lmms-eval ({spec.task}), which scores served models "
            f"only: --engine server, not {engine}"
        )
    task_managers = {
        harness: _task_manager(harness, args)
        for harness in dict.fromkeys(harness_task(t).harness for t in tasks)
    }
    for task in tasks:
        spec = harness_task(task)
        manager = task_managers[spec.harness]
        if unknown := [n for n in spec.runs if not manager.match_tasks([n])]:
            runs_as = f" ({spec.harness}'s {unknown[0]!r})" if unknown[0] != task else ""
            raise JobError(
                f"unknown task {task!r}{runs_as}: not in {spec.harness} or --include-path"
            )

    # Baseline: cached scores where this (model, revision, harness and its version, task, limit)
    # was scored before; --baseline-scores only where they came from the same harness version.
    versions = library_versions(*VERSIONED)
    cache = Path(args.baseline_cache) if args.baseline_cache else None
    baseline: Scores = {}
    for task in tasks:
        cached = _cache_file(cache, args, task, versions)
        if cached is not None and cached.is_file():
            baseline[task] = Score(*json.loads(cached.read_text())["score"])
    for task, known in known_scores(args.baseline_scores, versions).items():
        if task in tasks and task not in baseline:
            baseline[task] = known
    missing = [t for t in tasks if t not in baseline]
    if missing:
        baseline.update(score(fetch(args.baseline), missing, args, engine, device, task_managers))
        for task in missing:
            cached = _cache_file(cache, args, task, versions)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(
                    json.dumps({"score": baseline[task], **_key(args, task, versions)})
                )

    quantized = score(fetch(args.quantized), tasks, args, engine, device, task_managers)

    return summarise(
        args,
        tasks,
        baseline,
        quantized,
        engine=engine,
        baseline_cached=not missing,
        duration_seconds=round(time.monotonic() - started, 3),
        versions=versions,
    )


def requested_tasks(args: argparse.Namespace) -> list[str]:
    """The tasks asked for, once the required flags are there and the tasks fit in a result."""
    if not args.baseline or not args.quantized or not args.tasks:
        raise JobError("--baseline, --quantized and --tasks are required")
    tasks = list(dict.fromkeys(split_list(args.tasks)))
    if len(tasks) > MAX_TASKS:
        raise JobError(f"{len(tasks)} tasks requested; at most {MAX_TASKS} fit in a result")
    if args.tensor_parallel_size < 1:
        raise JobError(f"--tensor-parallel-size {args.tensor_parallel_size}: want at least 1")
    return tasks


def engine_for(requested: str, device: str, *, has_vllm: bool) -> str:
    """auto: a vLLM server per checkpoint on a GPU where the image has vLLM (as the study scored),
    transformers else (on the CPU too: vLLM's CPU build serves with `--engine server`, when
    asked for)."""
    engine = (
        requested if requested != "auto" else ("server" if device == "cuda" and has_vllm else "hf")
    )
    if engine not in ENGINES:
        raise JobError(f"unknown engine {engine!r}: want auto, {', '.join(ENGINES)}")
    if engine == "server" and not has_vllm:
        raise JobError(f"engine {engine} was requested but vLLM is not installed in this image")
    return engine


def uses_chat_template(kind: ModelKind, requested: bool) -> bool:
    """Vision-language models are always prompted through their chat template: it places the
    processor's image tokens where the task's `<image>` stands (without it the literal `<image>`
    reaches the processor, which Qwen2-VL's rejects). Text models: as asked."""
    return requested or kind is ModelKind.VISION_LANGUAGE


def summarise(
    args: argparse.Namespace,
    tasks: Sequence[str],
    baseline: Mapping[str, Score],
    quantized: Mapping[str, Score],
    *,
    engine: str,
    baseline_cached: bool,
    duration_seconds: float,
    versions: dict[str, str],
) -> EvaluateResult:
    """The result from both models' scores per task: recovery per task, and overall and per
    modality as the ratio of the averages (not the mean of per-task ratios)."""
    scores = [
        TaskScore(
            task=task,
            metric=quantized[task].metric,
            baseline=baseline[task].value,
            quantized=quantized[task].value,
            recovery=_recovery(quantized[task].value, baseline[task].value),
            version=quantized[task].version,
            samples=quantized[task].samples,
        )
        for task in tasks
    ]
    baseline_average, quantized_average = _averages(scores)
    by_modality = {}
    for modality in Modality:
        of_modality = [s for s in scores if harness_task(s.task).modality is modality]
        if of_modality:
            modality_baseline, modality_quantized = _averages(of_modality)
            by_modality[modality] = _recovery(modality_quantized, modality_baseline)
    return EvaluateResult(
        engine=engine,
        baseline=args.baseline,
        baseline_revision=args.baseline_revision,
        quantized=args.quantized,
        limit=args.limit,
        baseline_cached=baseline_cached,
        tasks=scores,
        baseline_average=round(baseline_average, 6),
        quantized_average=round(quantized_average, 6),
        recovery=_recovery(quantized_average, baseline_average),
        recovery_by_modality=by_modality,
        duration_seconds=duration_seconds,
        library_versions=versions,
    )


def _averages(scores: Sequence[TaskScore]) -> tuple[float, float]:
    """(baseline, quantized) averages."""
    return (
        sum(s.baseline for s in scores) / len(scores),
        sum(s.quantized for s in scores) / len(scores),
    )


def read_scores(
    results: Mapping[str, Any], tasks: Sequence[str], own_definitions: bool = False
) -> Scores:
    """Each task's score from the harness's results, which name the harness tasks: the study's
    metric (STUDY_TASKS), averaged over a tag's tasks; a local task's first metric. With
    `own_definitions` (--no-builtin-tasks: the cluster's own copies of the tasks), a copy that
    does not report the study's metric is scored by its first; the result names the metric."""
    scores = {}
    for task in tasks:
        spec = harness_task(task)
        rows = []
        for name in spec.runs:
            row = results["results"].get(name)
            if not row:
                raise JobError(f"{spec.harness} reported nothing for task {name}")
            rows.append(row)
        metric = spec.metric
        if not metric or (own_definitions and metric not in rows[0]):
            metric = next(key for key, value in rows[0].items() if _is_metric(key, value))
        for name, row in zip(spec.runs, rows, strict=True):
            if metric not in row:
                raise JobError(f"{spec.harness} reported no {metric} for task {name}")
        reported = results.get("versions", {})
        # Both harnesses report "Yaml" for a task that declares no version.
        versions = {
            str(reported[name]) for name in spec.runs if reported.get(name, "Yaml") != "Yaml"
        }
        scores[task] = Score(
            metric,
            sum(float(row[metric]) for row in rows) / len(rows),
            version=versions.pop() if len(versions) == 1 else None,
            samples=sum(_samples(results, name) for name in spec.runs) or None,
        )
    return scores


def _is_metric(key: str, value: object) -> bool:
    return key not in _NOT_METRICS and "_stderr" not in key and isinstance(value, int | float)


def _samples(results: Mapping[str, Any], name: str) -> int:
    """Samples the harness scored for a task, or a group's tasks."""
    if counts := results.get("n-samples", {}).get(name):
        return int(counts.get("effective", 0))
    return sum(_samples(results, part) for part in results.get("group_subtasks", {}).get(name, []))


def _task_manager(harness: Harness, args: argparse.Namespace) -> Any:
    """The harness's task index: its own tasks (unless --no-builtin-tasks) and --include-path."""
    if harness is Harness.LMMS_EVAL:
        from lmms_eval.tasks import TaskManager
    else:
        from lm_eval.tasks import TaskManager
    return TaskManager(include_path=args.include_path, include_defaults=not args.no_builtin_tasks)


def score(
    directory: Path,
    tasks: list[str],
    args: argparse.Namespace,
    engine: str,
    device: str,
    task_managers: Mapping[Harness, Any],
) -> Scores:
    """(metric, score) per task for one model, every model with the same settings."""
    kind = checkpoints.model_kind_of(checkpoints.read_config(directory))
    if kind is ModelKind.TEXT and (
        vision := [t for t in tasks if harness_task(t).modality is Modality.VISION]
    ):
        # Admission refuses this when the spec says `kind: text`; a kind detected from the
        # config is known only here.
        raise JobError(
            f"{directory.name} is a text model (no vision_config in its config.json): it cannot "
            f"be scored on vision tasks ({', '.join(vision)})"
        )
    if engine == "server":
        with vllm_server(directory, device, args) as url:
            return _score_served(url, tasks, args, task_managers)
    model = _language_model(directory, kind, device, args)
    task_manager = task_managers[Harness.LM_EVAL]
    scores = _score(
        model, tasks, args, task_manager, uses_chat_template(kind, args.apply_chat_template)
    )
    # Drop this model before the next one loads: it holds its share of the GPU (or RAM) until
    # it is collected.
    del model
    gc.collect()
    return scores


def _score(
    model: Any, tasks: list[str], args: argparse.Namespace, task_manager: Any, chat_template: bool
) -> Scores:
    from lm_eval import simple_evaluate

    results = simple_evaluate(
        model=model,
        tasks=list(dict.fromkeys(name for task in tasks for name in harness_task(task).runs)),
        limit=args.limit,
        task_manager=task_manager,
        apply_chat_template=chat_template,
        **HARNESS_SETTINGS,
    )
    if results is None:
        raise JobError("lm-eval returned no results")
    return read_scores(results, tasks, own_definitions=args.no_builtin_tasks)


def _score_served(
    url: str, tasks: list[str], args: argparse.Namespace, task_managers: Mapping[Harness, Any]
) -> Scores:
    """Each harness's tasks against the server at `url`, lm-eval's then lmms-eval's. Both
    clients score a request that failed as a wrong answer: the server must have answered every
    sample, or the scores are not the model's."""
    answered_before = _requests_answered(url)
    scores: Scores = {}
    for harness, manager in task_managers.items():
        of_harness = [t for t in tasks if harness_task(t).harness is harness]
        if not of_harness:
            continue
        if harness is Harness.LMMS_EVAL:
            scores |= _score_lmms(url, of_harness, args, manager)
            continue
        # lm-eval's API client tells from a call's first request whether the call carries
        # images, and fails on a call that mixes text and image tasks ("not enough values to
        # unpack"): one call per modality.
        for modality in dict.fromkeys(harness_task(t).modality for t in of_harness):
            part = [t for t in of_harness if harness_task(t).modality is modality]
            scores |= _score(_served_model(url), part, args, manager, chat_template=True)
    answered = _requests_answered(url) - answered_before
    asked = sum(s.samples or 0 for s in scores.values())
    if answered < asked:
        raise JobError(f"the vLLM server answered {answered} of {asked} requests")
    return scores


def _requests_answered(url: str) -> int:
    """Requests the vLLM server has finished (its vllm:request_success_total, every reason)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "vllm:request_success"
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )


def _score_lmms(url: str, tasks: list[str], args: argparse.Namespace, task_manager: Any) -> Scores:
    """lmms-eval's tasks through its OpenAI-compatible client (images as data URLs, the server
    applying the chat template, temperature from the task, else 0), one request at a time;
    judge_free's configs laid over its own."""
    # Nothing here calls a judge (judge_free); the dummy provider keeps lmms-eval's MathVista
    # module from wanting an OpenAI key when it is imported.
    os.environ["API_TYPE"] = "dummy"
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.models import get_model

    model = get_model("openai", force_simple=True)(
        model=SERVED_NAME,
        base_url=f"{url}/v1",
        api_key="unused",
        num_concurrent=1,
        max_retries=3,
        timeout=600,
    )
    names = dict.fromkeys(name for task in tasks for name in harness_task(task).runs)
    results = simple_evaluate(
        model=model,
        tasks=[
            {"task": name, **judge_free.OVERRIDES[name]} if name in judge_free.OVERRIDES else name
            for name in names
        ],
        limit=args.limit,
        task_manager=task_manager,
        **HARNESS_SETTINGS,
    )
    if results is None:
        raise JobError("lmms-eval returned no results")
    return read_scores(results, tasks, own_definitions=args.no_builtin_tasks)


def vllm_server_args(
    directory: Path, port: int, tensor_parallel_size: int, device: str, max_model_len: int | None
) -> list[str]:
    """`vllm serve`'s arguments for one checkpoint on loopback, across the Job's GPUs. On the
    CPU the KV cache gets a size (CPU_KV_CACHE_BYTES) and the engine runs eagerly (torch.compile's
    warm-up costs more there than a short evaluation gains)."""
    flags = [
        "--host=127.0.0.1",
        f"--port={port}",
        f"--served-model-name={SERVED_NAME}",
        f"--tensor-parallel-size={tensor_parallel_size}",
    ]
    if max_model_len is not None:
        flags.append(f"--max-model-len={max_model_len}")
    if device == "cpu":
        flags += [f"--kv-cache-memory-bytes={CPU_KV_CACHE_BYTES}", "--enforce-eager"]
    server = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    return [*server, f"--model={directory}", *flags]


@contextmanager
def vllm_server(directory: Path, device: str, args: argparse.Namespace) -> Iterator[str]:
    """A vLLM OpenAI-compatible server of `directory` on a free loopback port, its output in
    the program's; yields its base URL once /health answers, and stops it after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = vllm_server_args(
        directory, port, args.tensor_parallel_size, device, args.max_model_len
    )
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + args.server_start_timeout
        while not _healthy(url):
            if server.poll() is not None:
                raise JobError(f"the vLLM server of {directory.name} exited ({server.returncode})")
            if time.monotonic() > deadline:
                raise JobError(f"the vLLM server of {directory.name} did not start in time")
            time.sleep(1.0)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _served_model(url: str) -> Any:
    """lm-eval's chat-completions client for the server at `url`: images go as data URLs in the
    messages, the server applies the model's chat template; temperature comes from the task
    (0 for the study's), one request at a time."""
    from lm_eval.models.openai_completions import LocalChatCompletion

    return LocalChatCompletion(
        base_url=f"{url}/v1/chat/completions",
        model=SERVED_NAME,
        num_concurrent=1,
        max_retries=3,
        timeout=600,
    )


def hf_device_map(device: str, tensor_parallel_size: int) -> str:
    """Where transformers puts the model: it has no tensor parallelism here, so with several
    GPUs it spreads the layers over them (`auto`); else the one device."""
    return "auto" if device == "cuda" and tensor_parallel_size > 1 else device


def _language_model(directory: Path, kind: ModelKind, device: str, args: argparse.Namespace) -> Any:
    """The lm-eval model in process: transformers with our loader (which keeps a quantized
    VLM's vision tower unquantized on load, see checkpoints.load_model)."""
    model = checkpoints.load_model(
        directory, device=hf_device_map(device, args.tensor_parallel_size)
    )
    processor = checkpoints.load_processor(directory, kind)
    batch = args.batch_size
    if kind is ModelKind.VISION_LANGUAGE:
        from lm_eval.models.hf_vlms import HFMultimodalLM

        return HFMultimodalLM(pretrained=model, processor=processor, batch_size=batch)
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=processor, batch_size=batch, device=device)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _recovery(quantized: float, baseline: float) -> float | None:
    return round(quantized / baseline * 100, 4) if baseline else None


def _key(args: argparse.Namespace, task: str, versions: Mapping[str, str]) -> dict[str, Any]:
    harness = harness_task(task).harness
    return {
        "model": args.baseline,
        "revision": args.baseline_revision,
        "harness": harness,
        "harnessVersion": versions.get(harness),
        "task": task,
        "limit": args.limit,
    }


def known_scores(text: str | None, versions: Mapping[str, str]) -> Scores:
    """The scores of --baseline-scores that this program would score the same way: from the
    installed version of the task's harness, in the metric it reports now. A malformed value is
    a bad argument, not a crash."""
    if not text:
        return {}
    try:
        entries = json.loads(text)
        if not isinstance(entries, dict) or not all(
            isinstance(e, dict) and {"metric", "score"} <= e.keys() for e in entries.values()
        ):
            raise ValueError("want {task: {metric, score, harnessVersion}}")
    except ValueError as error:
        raise JobError(f"bad --baseline-scores: {error}") from error
    scores = {}
    for task, entry in entries.items():
        spec = harness_task(task)
        if entry.get("harnessVersion") != versions.get(spec.harness):
            continue
        if spec.metric and entry["metric"] != spec.metric:
            continue
        scores[task] = Score(
            entry["metric"], float(entry["score"]), entry.get("version"), entry.get("samples")
        )
    return scores


def _cache_file(
    cache: Path | None, args: argparse.Namespace, task: str, versions: Mapping[str, str]
) -> Path | None:
    if cache is None:
        return None
    key = json.dumps(_key(args, task, versions), sort_keys=True)
    return cache / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def list_tasks() -> str:
    """The study's tasks as this program runs them: a table for --list-tasks."""
    rows = [("task", "harness", "harness task", "metric", "modality")]
    for task, spec in STUDY_TASKS.items():
        runs = f"{spec.task} ({len(spec.parts)} tasks, averaged)" if spec.parts else spec.task
        metric = f"{spec.metric_name} ({spec.metric})"
        rows.append((str(task), str(spec.harness), runs, metric, str(spec.modality)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if parser.parse_known_args(argv)[0].list_tasks:
        print(list_tasks())
        return 0
    return run_program("evaluate", parser, evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
