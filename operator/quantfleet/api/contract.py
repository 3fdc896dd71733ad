"""The contract between the operator, the Job programs and the test worker: where a Job's pod
mounts models and leaves its result, how children are labelled, how much one result may hold,
the study's workload presets, the evaluation tasks' harness names and the labels of benchmark
runs. Each fact is defined here once; the result schema itself is `quantfleet.api.results`.

Imports only the standard library and the enums, so the Job programs can import it too.
"""

from enum import StrEnum
from typing import NamedTuple

from quantfleet.api.enums import EvalTask, Harness, Modality, ScenarioKind, WorkloadPreset

# --- Paths and environment inside a Job's pod ---------------------------------------------
# The Job programs resolve pvc://CLAIM/PATH under this root; the operator mounts claims there.
MOUNT_ROOT = "/mnt/quantfleet"
# The uid and gid every pod of ours runs as: what the Dockerfile's images are built for (USER
# 65532:65532), so a checkpoint one step writes is readable by the next, whichever image.
RUN_AS = 65532
# Where a program writes its result; the operator reads it back as the termination message.
TERMINATION_LOG = "/dev/termination-log"
# The container that runs a Job program (the one whose termination message is read).
JOB_CONTAINER = "main"
# The env var a program reads the hub token from; the operator fills it from a Secret reference.
HUB_TOKEN_ENV = "HF_TOKEN"
# Every program flag --some-flag also reads QF_SOME_FLAG from the environment.
ENV_PREFIX = "QF_"


def env_name(flag: str) -> str:
    """The environment variable behind a program flag: `--max-seq-length` -> QF_MAX_SEQ_LENGTH."""
    return ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()


# --- Labels on every child and its pods ----------------------------------------------------
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_APP_COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "quantfleet"
LABEL_MODEL = "quantfleet.io/model"
LABEL_BENCHMARK_RUN = "quantfleet.io/benchmark-run"
LABEL_COMPONENT = "quantfleet.io/component"
LABEL_INPUTS = "quantfleet.io/inputs"
# Kueue reads the LocalQueue of a Job from this label (Jobs are then created suspended).
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
LABEL_TARGET = "quantfleet.io/benchmark-target"
ANNOTATION_SPEC_HASH = "quantfleet.io/spec-hash"


class Component(StrEnum):
    """What a child does: the value of LABEL_COMPONENT (and of the app.kubernetes.io one)."""

    QUANTIZE = "quantize"
    EVALUATE = "evaluate"
    BENCHMARK = "benchmark"
    SERVE = "serve"
    BASELINE = "baseline"
    REPORT = "report"
    BASELINE_CACHE = "baseline-cache"


# A BenchmarkRun's baseline goes by this name in results, Jobs and the target label, so no
# target may take it (BenchmarkRun's Target rejects it at admission).
BASELINE_TARGET = Component.BASELINE.value

# Components whose pods run a Job program to completion (serve and baseline pods keep running).
PROGRAM_COMPONENTS = (Component.QUANTIZE, Component.EVALUATE, Component.BENCHMARK)

# --- Limits ---------------------------------------------------------------------------------
# Kubernetes truncates a container's termination message at 4096 bytes.
MAX_RESULT_BYTES = 4096
MAX_REASON_CHARS = 512
# What one benchmark result can hold within the termination message, and one evaluate result.
MAX_BENCHMARKS = 12
MAX_TASKS = 16
# GuideLLM's sweep (its sweep_size): one synchronous, one throughput and constant rates between
# them, all counted. A Scenario's `steps` overrides it.
DEFAULT_SWEEP_STEPS = 10


def benchmarks_per_scenario(scenario: str, rates: int, sweep_steps: int) -> int:
    """How many benchmarks one workload x scenario makes: one per rate, a sweep's steps, or 1."""
    return {ScenarioKind.RATE: rates, ScenarioKind.SWEEP: sweep_steps}.get(
        ScenarioKind(scenario), 1
    )


# --- Workload presets -----------------------------------------------------------------------
class WorkloadShape(NamedTuple):
    """Image size and token counts of one request (0 × 0: text only)."""

    image_width: int
    image_height: int
    prompt_tokens: int
    output_tokens: int


# The study's workloads: image width × height, prompt tokens, generated tokens
# (docs/benchmarkrun.md).
WORKLOAD_PRESETS: dict[WorkloadPreset, WorkloadShape] = {
    WorkloadPreset.DOCVQA: WorkloadShape(1680, 2240, 64, 128),
    WorkloadPreset.VISUAL_REASONING: WorkloadShape(640, 480, 128, 128),
    WorkloadPreset.CAPTIONING: WorkloadShape(480, 360, 0, 128),
}


# --- Evaluation tasks -----------------------------------------------------------------------
class HarnessTask(NamedTuple):
    """How the evaluate program runs one task: in which harness, as which of its tasks, and
    which of the metrics it reports is the task's score."""

    harness: Harness
    task: str  # the harness's task, group or tag
    metric: str  # the key of the score in the harness's results: "<metric>,<filter>"
    metric_name: str  # the study's name for it
    modality: Modality | None
    # A tag has no aggregate row: its tasks, run and averaged unweighted.
    parts: tuple[str, ...] = ()

    @property
    def runs(self) -> tuple[str, ...]:
        """The harness tasks to ask for."""
        return self.parts or (self.task,)


MGSM_LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
# The study's tasks (quantization.md §1, §6) as the harnesses run them, each scored by the
# study's metric. Results and status are keyed by the CRD's names; docs/jobs.md has the table
# and `quantfleet-evaluate --list-tasks` prints it.
STUDY_TASKS: dict[EvalTask, HarnessTask] = {
    EvalTask.MMMU: HarnessTask(
        Harness.LM_EVAL, "mmmu_val", "acc,none", "accuracy", Modality.VISION
    ),
    EvalTask.CHARTQA: HarnessTask(
        Harness.LM_EVAL, "chartqa", "relaxed_accuracy,none", "relaxed accuracy", Modality.VISION
    ),
    EvalTask.DOCVQA: HarnessTask(
        Harness.LMMS_EVAL, "docvqa_val", "anls,none", "ANLS", Modality.VISION
    ),
    # lmms-eval's vqav2 reports the VQA accuracy, min(1, matching answers / 3), as exact_match.
    EvalTask.VQAV2: HarnessTask(
        Harness.LMMS_EVAL, "vqav2_val", "exact_match,none", "VQA accuracy", Modality.VISION
    ),
    # The format-prompt variant (the answer asked for in a set format), scored without a judge
    # model: quantfleet_jobs.judge_free replaces lmms-eval's GPT-judged extraction.
    EvalTask.MATHVISTA: HarnessTask(
        Harness.LMMS_EVAL,
        "mathvista_testmini_format",
        "judge_free_accuracy,none",
        "accuracy, judge-free answer extraction",
        Modality.VISION,
    ),
    # Generative, as a chat server answers it (the letter of the choice): no log-likelihoods.
    EvalTask.MMLU: HarnessTask(
        Harness.LM_EVAL,
        "mmlu_generative",
        "exact_match,get_response",
        "accuracy, answer letter",
        Modality.TEXT,
    ),
    # lm-eval's tag mgsm_cot_native also takes the English-CoT variants: its native-CoT tasks only.
    EvalTask.MGSM: HarnessTask(
        Harness.LM_EVAL,
        "mgsm_cot_native",
        "exact_match,flexible-extract",
        "exact match",
        Modality.TEXT,
        parts=tuple(f"mgsm_native_cot_{language}" for language in MGSM_LANGUAGES),
    ),
}


_BY_NAME = {str(crd): spec for crd, spec in STUDY_TASKS.items()}


def harness_task(task: str) -> HarnessTask:
    """How `task` runs: a study task by STUDY_TASKS; any other name (a local --include-path
    task) is an lm-eval task of its own name, scored by the first metric it reports."""
    return _BY_NAME.get(task) or HarnessTask(Harness.LM_EVAL, task, "", "", None)


# --- Benchmark run labels -------------------------------------------------------------------
def run_label(scenario: str, strategy: str, rate: float | None) -> str:
    """The label of one GuideLLM benchmark in results: the scenario; a fixed rate adds
    `@<rate>`; a sweep's synchronous and throughput ends are `sweep:<strategy>`."""
    if scenario in (ScenarioKind.RATE, ScenarioKind.SWEEP) and rate is not None:
        return f"{scenario}@{rate:.3g}"
    if scenario == ScenarioKind.SWEEP:
        return f"{ScenarioKind.SWEEP}:{strategy}"
    return scenario


# The sweep benchmark that measures throughput (compared by requests/s, like `throughput`).
SWEEP_THROUGHPUT = run_label(ScenarioKind.SWEEP, "throughput", None)
