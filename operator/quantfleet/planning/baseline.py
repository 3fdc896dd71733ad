"""Where and on how many GPUs a BenchmarkRun's BF16 baseline runs: the source model, unquantized,
on the GPU family its QuantizedModel was planned for, with the GPUs BF16 needs there; or, for a
model served on CPUs, on serving CPU nodes of its CPU levels with the memory BF16 needs."""

from dataclasses import dataclass

from quantfleet.api.enums import CpuLevel, GpuFamily
from quantfleet.planning.capacity import (
    GPU_MEMORY_UTILIZATION,
    CpuSizing,
    format_bytes,
    required_bytes,
    size_cpu_replica,
    size_replica,
)
from quantfleet.planning.compat import BF16, Support, compatibility
from quantfleet.planning.inventory import CpuPool, GpuPool, Inventory, Taint


@dataclass(frozen=True)
class BaselinePlan:
    """Where and on how many GPUs (or which CPU nodes) the BF16 baseline runs."""

    gpu_family: GpuFamily | None  # None on CPUs
    gpus: int  # tensor-parallel size: one replica, one node (0 on CPUs)
    min_gpu_memory_mib: int
    pools: tuple[GpuPool, ...]
    dtype: str  # bfloat16, or half where a GPU has no BF16 (vLLM's own advice)
    rationale: str
    cpu: CpuSizing | None = None  # on serving CPU nodes: cores and memory
    cpu_pools: tuple[CpuPool, ...] = ()

    @property
    def tensor_parallel_size(self) -> int:
        return max(self.gpus, 1)

    @property
    def gpus_per_replica(self) -> int:
        return self.gpus

    @property
    def gpu_taints(self) -> tuple[Taint, ...]:
        """GPU taints on the admitted nodes, which the baseline pod must tolerate."""
        return tuple(sorted({t for pool in self.pools for t in pool.gpu_taints}, key=str))


def plan_baseline(
    parameters: int,
    family: GpuFamily,
    inventory: Inventory,
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
) -> BaselinePlan | str:
    """The BF16 baseline on `family`: the fewest GPUs any of its pools fits it on (least memory
    first on a tie); every pool of the family that fits that count is admitted. `parameters` is
    the count the model was planned with (its status.plan). A string says why it cannot be
    placed."""
    pools = [pool for pool in inventory.pools if pool.family == family]
    if not pools:
        return f"no schedulable {family} GPU nodes for the BF16 baseline ({inventory.describe()})"
    sized = [
        (sizing.gpus_per_replica, pool.memory_mib, pool, sizing)
        for pool in pools
        if (
            sizing := size_replica(
                parameters,
                BF16,
                pool.memory_mib,
                pool.max_gpus_per_node,
                utilization=gpu_memory_utilization,
            )
        )
    ]
    if not sized:
        biggest = max(pools, key=lambda p: p.max_gpus_per_node * p.memory_mib)
        return (
            f"the BF16 baseline needs {format_bytes(required_bytes(parameters, BF16))} with KV "
            f"headroom; the largest {family} node has {biggest.max_gpus_per_node} x "
            f"{biggest.memory_mib / 1024:.0f} GiB"
        )
    gpus, _, best, sizing = min(sized, key=lambda item: (item[0], item[1]))
    admitted = tuple(
        pool
        for pool in pools
        if pool.memory_mib >= sizing.min_gpu_memory_mib and pool.max_gpus_per_node >= gpus
    )
    native = compatibility(BF16, best.compute_capability).support is Support.NATIVE
    return BaselinePlan(
        gpu_family=family,
        gpus=gpus,
        min_gpu_memory_mib=sizing.min_gpu_memory_mib,
        pools=admitted,
        dtype="bfloat16" if native else "half",
        rationale=(
            f"BF16 {parameters / 1e9:g}B needs {format_bytes(sizing.required_bytes)} -> {gpus} x "
            f"{family} {best.memory_mib / 1024:.0f} GiB (TP {gpus})"
        ),
    )


def plan_cpu_baseline(
    parameters: int, levels: tuple[CpuLevel, ...], inventory: Inventory, cores: int, kv_gib: int
) -> BaselinePlan | str:
    """The BF16 baseline of a model served on CPUs: on the serving CPU pools of its `levels`
    that hold a BF16 replica (the same hardware as the quantized side); a string says why not."""
    sizing = size_cpu_replica(parameters, BF16, cores, kv_gib)
    pools = [pool for pool in inventory.cpu_pools if pool.level in levels]
    fitting = tuple(pool for pool in pools if pool.fits(sizing.cores, sizing.memory_bytes))
    gib = sizing.memory_bytes // 2**30
    if not fitting:
        largest = max((pool.max_memory_bytes for pool in pools), default=0) // 2**30
        where = ", ".join(levels) or "no level"
        return (
            f"the BF16 baseline needs {gib} GiB and {cores} cores per CPU replica; the largest "
            f"serving CPU node at {where} has {largest} GiB"
        )
    return BaselinePlan(
        gpu_family=None,
        gpus=0,
        min_gpu_memory_mib=0,
        pools=(),
        dtype="bfloat16",
        rationale=(
            f"BF16 {parameters / 1e9:g}B needs {format_bytes(sizing.memory_bytes)} -> cpu "
            f"{fitting[0].level}, {cores} cores, {gib} GiB"
        ),
        cpu=sizing,
        cpu_pools=fitting,
    )
