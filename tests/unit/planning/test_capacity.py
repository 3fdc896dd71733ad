"""GPUs per replica from bytes per parameter, headroom and GPU memory, checked against the study."""

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factories import gpu_spec
from quantfleet.api.enums import Scheme
from quantfleet.planning.capacity import (
    BYTES_PER_PARAMETER,
    min_gpu_memory_mib,
    parse_parameter_count,
    required_bytes,
    size_replica,
    source_parameters,
    tensor_parallel_sizes,
    usable_bytes,
    weight_bytes,
)
from quantfleet.planning.compat import BF16, Precision

A100_80GB, H100_80GB, A6000, L4, T4 = (
    gpu_spec(kind).memory_mib for kind in ("a100", "h100", "a6000", "l4", "t4")
)
B = 10**9


@dataclass(frozen=True)
class Case:
    id: str
    parameters: int
    precision: Precision
    gpu_memory_mib: int
    want_gpus: int | None
    max_gpus: int = 8
    attention_heads: int | None = None


CASES = [
    # §1: "72B runs BF16 on 4 GPUs, 8-bit on 2, W4A16 on 1" on A100 and H100 80 GB.
    Case("study 72b bf16 needs four a100s", 72 * B, BF16, A100_80GB, 4, attention_heads=64),
    Case("study 72b int8 needs two a100s", 72 * B, Scheme.W8A8, A100_80GB, 2, attention_heads=64),
    Case("study 72b w4a16 fits one a100", 72 * B, Scheme.W4A16, A100_80GB, 1, attention_heads=64),
    Case("study 72b bf16 needs four h100s", 72 * B, BF16, H100_80GB, 4, attention_heads=64),
    Case("study 72b fp8 needs two h100s", 72 * B, Scheme.FP8_DYNAMIC, H100_80GB, 2),
    Case("study 72b w4a16 fits one h100", 72 * B, Scheme.W4A16, H100_80GB, 1),
    # §1: the 7B model ran on one A6000, A100 and H100 in every scheme.
    Case("study 7b bf16 fits one a6000", 7 * B, BF16, A6000, 1, attention_heads=28),
    Case("study 7b int8 fits one a100", 7 * B, Scheme.W8A8, A100_80GB, 1),
    Case("study 7b fp8 fits one h100", 7 * B, Scheme.FP8_DYNAMIC, H100_80GB, 1),
    Case("study 7b w4a16 fits one a6000", 7 * B, Scheme.W4A16, A6000, 1),
    # Tensor parallelism must divide the attention heads.
    Case(
        "three l4s would do but 3 does not divide 64 heads", 32 * B, BF16, L4, 4, attention_heads=64
    ),
    Case("28 heads allow seven gpus", 72 * B, Scheme.W8A8, T4, 7, attention_heads=28),
    Case("no divisor of 28 heads fits on eight t4s", 72 * B, BF16, T4, None, attention_heads=28),
    Case(
        "node with one gpu cannot hold 8-bit 72b", 72 * B, Scheme.W8A8, A100_80GB, None, max_gpus=1
    ),
    Case("nvfp4 is a little larger than w4a16", 72 * B, Scheme.NVFP4, L4, 4),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_size_replica(case: Case) -> None:
    sizing = size_replica(
        case.parameters, case.precision, case.gpu_memory_mib, case.max_gpus, case.attention_heads
    )

    if case.want_gpus is None:
        assert sizing is None
        return
    assert sizing is not None
    assert sizing.gpus_per_replica == case.want_gpus
    assert sizing.tensor_parallel_size == case.want_gpus
    if case.attention_heads:
        assert case.attention_heads % sizing.tensor_parallel_size == 0


@pytest.mark.parametrize(
    ("gpus", "max_gpus", "heads", "want_gpus"),
    [
        pytest.param(4, 8, None, 4, id="a fixed count above the minimum is honoured"),
        pytest.param(1, 8, None, None, id="a fixed count too small to hold the weights fails"),
        pytest.param(4, 2, None, None, id="a fixed count larger than the node fails"),
        pytest.param(3, 8, 64, None, id="a fixed count that does not divide the heads fails"),
    ],
)
def test_fixed_gpus_per_replica(
    gpus: int, max_gpus: int, heads: int | None, want_gpus: int | None
) -> None:
    sizing = size_replica(72 * B, Scheme.W8A8, A100_80GB, max_gpus, heads, gpus=gpus)

    assert (sizing and sizing.gpus_per_replica) == want_gpus


@pytest.mark.parametrize(
    ("max_gpus", "heads", "want"),
    [
        pytest.param(8, None, (1, 2, 4, 8), id="powers of two when heads are unknown"),
        pytest.param(6, None, (1, 2, 4), id="never more than the node has"),
        pytest.param(8, 64, (1, 2, 4, 8), id="divisors of 64 heads"),
        pytest.param(8, 28, (1, 2, 4, 7), id="divisors of 28 heads"),
        pytest.param(8, 40, (1, 2, 4, 5, 8), id="divisors of 40 heads"),
    ],
)
def test_tensor_parallel_sizes(max_gpus: int, heads: int | None, want: tuple[int, ...]) -> None:
    assert tensor_parallel_sizes(max_gpus, heads) == want


@pytest.mark.parametrize(
    ("billions", "source_bytes", "want"),
    [
        pytest.param(8.3, None, 8_300_000_000, id="the spec's size"),
        pytest.param(7.1, None, 7_100_000_000, id="rounded, not truncated to 7099999999"),
        pytest.param(8.3, 16 * B, 8_300_000_000, id="the spec wins over the checkpoint"),
        pytest.param(None, 16 * B, 8 * B, id="two bytes per parameter of the bf16 source"),
        pytest.param(None, 0, 1, id="an empty checkpoint still counts one"),
        pytest.param(None, None, None, id="unknown until quantization reports it"),
    ],
)
def test_source_parameters(
    billions: float | None, source_bytes: int | None, want: int | None
) -> None:
    assert source_parameters(billions, source_bytes) == want


@pytest.mark.parametrize(
    ("utilization", "want_gpus"),
    [
        pytest.param(0.90, 2, id="vllm's default share"),
        pytest.param(0.50, 4, id="half of each gpu"),
        pytest.param(1.00, 2, id="the whole gpu"),
    ],
)
def test_size_replica_uses_the_given_gpu_memory_utilization(
    utilization: float, want_gpus: int
) -> None:
    sizing = size_replica(72 * B, Scheme.W8A8, A100_80GB, 8, utilization=utilization)

    assert sizing is not None
    assert sizing.gpus_per_replica == want_gpus
    per_gpu = sizing.required_bytes / want_gpus
    assert per_gpu <= usable_bytes(sizing.min_gpu_memory_mib, utilization)


def test_scheme_bytes_rank_as_their_bit_widths() -> None:
    sizes = {p: weight_bytes(72 * B, p) for p in BYTES_PER_PARAMETER}

    assert sizes[BF16] > sizes[Scheme.W8A8] == sizes[Scheme.FP8_DYNAMIC]
    assert sizes[Scheme.W8A8] > sizes[Scheme.NVFP4] > sizes[Scheme.W4A16]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("72B", 72 * B, id="billions"),
        pytest.param("7.5b", 7_500_000_000, id="fractional billions in lower case"),
        pytest.param("500M", 500_000_000, id="millions"),
        pytest.param("1.2T", 1_200_000_000_000, id="trillions"),
        pytest.param("123456", 123456, id="a plain count"),
    ],
)
def test_parse_parameter_count(text: str, want: int) -> None:
    assert parse_parameter_count(text) == want


@pytest.mark.parametrize(
    ("text", "want_error"),
    [
        pytest.param("-3B", "positive", id="negative size"),
        pytest.param("0", "positive", id="zero"),
        pytest.param("seventy", "not a parameter count", id="words"),
        pytest.param("", "not a parameter count", id="empty"),
        pytest.param("nanB", "positive", id="not a number"),
        pytest.param("infB", "positive", id="infinite"),
    ],
)
def test_parse_parameter_count_rejects_nonsense(text: str, want_error: str) -> None:
    with pytest.raises(ValueError, match=want_error):
        parse_parameter_count(text)


def test_weight_bytes_rejects_nonpositive_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        weight_bytes(-1, Scheme.W8A8)


precisions = st.sampled_from(list(BYTES_PER_PARAMETER))


@given(
    parameters=st.integers(min_value=10**6, max_value=2 * 10**12),
    precision=precisions,
    memory_mib=st.integers(min_value=4096, max_value=300_000),
    max_gpus=st.integers(min_value=1, max_value=16),
    heads=st.none() | st.integers(min_value=1, max_value=128),
)
def test_a_sizing_fits_and_is_the_smallest_that_does(
    parameters: int, precision: Precision, memory_mib: int, max_gpus: int, heads: int | None
) -> None:
    sizing = size_replica(parameters, precision, memory_mib, max_gpus, heads)
    need = required_bytes(parameters, precision)
    candidates = tensor_parallel_sizes(max_gpus, heads)

    if sizing is None:
        assert all(need > tp * usable_bytes(memory_mib) for tp in candidates)
        return
    tp = sizing.tensor_parallel_size
    assert tp in candidates
    assert need <= tp * usable_bytes(memory_mib)
    assert all(need > smaller * usable_bytes(memory_mib) for smaller in candidates if smaller < tp)
    assert sizing.min_gpu_memory_mib <= memory_mib
    assert need <= tp * usable_bytes(min_gpu_memory_mib(parameters, precision, tp))
