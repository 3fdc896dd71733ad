"""Closed vocabularies of the quantfleet.io API: schemes, objectives, model kinds, GPU families,
CPU levels."""

from enum import StrEnum


class Scheme(StrEnum):
    """A compressed-tensors preset scheme, or `auto` to let the planner choose."""

    FP8_DYNAMIC = "FP8_DYNAMIC"  # FP W8A8: fp8 channel weights, dynamic per-token fp8 activations
    W8A8 = "W8A8"  # INT W8A8: int8 channel weights, dynamic per-token int8 activations
    W4A16 = "W4A16"  # int4 group-128 weights, 16-bit activations
    NVFP4 = "NVFP4"  # fp4 weights and activations (Blackwell)
    AUTO = "auto"


class Objective(StrEnum):
    """What `scheme: auto` optimises for."""

    LATENCY = "latency"
    THROUGHPUT = "throughput"
    BALANCED = "balanced"


class PlacementPolicy(StrEnum):
    """Which of the GPU kinds that run the scheme natively and fit a replica gets it."""

    BEST_FIT = "BestFit"  # the smallest such GPU, so big GPUs stay free for big models
    CHEAPEST = "Cheapest"  # the lowest cost per replica, from the cluster's GPU costs
    MOST_CAPABLE = "MostCapable"  # the newest generation for the objective
    FIRST_AVAILABLE = "FirstAvailable"  # the first in the cluster's node order, unranked


class ModelKind(StrEnum):
    """Whether the source model takes images; decides default ignore patterns and calibration."""

    VISION_LANGUAGE = "vision-language"
    TEXT = "text"


class GpuFamily(StrEnum):
    """GPU Feature Discovery's `nvidia.com/gpu.family` values, oldest first."""

    VOLTA = "volta"
    TURING = "turing"
    AMPERE = "ampere"
    ADA_LOVELACE = "ada-lovelace"
    HOPPER = "hopper"
    BLACKWELL = "blackwell"


class CpuLevel(StrEnum):
    """x86 instruction-set levels vLLM's CPU backend distinguishes, oldest first; each implies
    those before it on real CPUs (read from Node Feature Discovery labels, planning.cpu)."""

    AVX2 = "avx2"
    AVX512 = "avx512"  # AVX512F: the level vLLM's CPU docs recommend
    AVX512_VNNI = "avx512-vnni"  # int8 dot products (Cascade Lake, Ice Lake)
    AVX512_BF16 = "avx512-bf16"  # BF16 dot products (Cooper Lake, Zen 4)
    AMX = "amx"  # AMX-INT8 and AMX-BF16 tile matrix units (Sapphire Rapids and newer)

    @property
    def rank(self) -> int:
        """Position from oldest: levels compare by this, never as strings."""
        return list(CpuLevel).index(self)


class Hardware(StrEnum):
    """What a model may be served on."""

    GPU = "gpu"
    CPU = "cpu"
    ANY = "any"


class PromotionPolicy(StrEnum):
    """Whether a checkpoint that passes the recovery gate is served at once or on approval."""

    AUTOMATIC = "Automatic"
    MANUAL = "Manual"


class EvalTask(StrEnum):
    """The study's evaluation tasks: five vision, two text (quantization.md §1, §6)."""

    MMMU = "mmmu"
    CHARTQA = "chartqa"
    DOCVQA = "docvqa"
    VQAV2 = "vqav2"
    MATHVISTA = "mathvista"
    MMLU = "mmlu"
    MGSM = "mgsm"


class Harness(StrEnum):
    """The evaluation harness a task runs in (its PyPI name)."""

    LM_EVAL = "lm-eval"
    LMMS_EVAL = "lmms-eval"


class Modality(StrEnum):
    """What a task asks of the model; recovery is also reported per modality, since the study
    finds most of the 4-bit loss in text tasks."""

    VISION = "vision"
    TEXT = "text"


class WorkloadPreset(StrEnum):
    """The study's vision workloads (quantization.md §1)."""

    DOCVQA = "docvqa"
    VISUAL_REASONING = "visual-reasoning"
    CAPTIONING = "captioning"


class ScenarioKind(StrEnum):
    """How load is offered: one request at a time, as fast as possible, a sweep, or fixed rates."""

    LATENCY = "latency"
    THROUGHPUT = "throughput"
    SWEEP = "sweep"
    RATE = "rate"
