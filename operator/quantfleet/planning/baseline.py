"""Where and on how many GPUs a BenchmarkRun's BF16 baseline runs: the source model, unquantized,
on the GPU family its QuantizedModel was planned for, with the GPUs BF16 needs there."""

from dataclasses import dataclass

from quantfleet.api.enums import GpuFamily
from quantfleet.planning.capacity import (
    GPU_MEMORY_UTILIZATION,
    format_bytes,
    required_bytes,
    size_replica,
)
from quantfleet.planning.compat import BF16, Support, compatibility
from quantfleet.planning.inventory import GpuPool, Inventory, Taint


@dataclass(frozen=True)
class BaselinePlan:
    """Where and on how many GPUs the BF16 baseline runs."""

    gpu_family: GpuFamily
    gpus: int  # tensor-parallel size: one replica, one node
    min_gpu_memory_mib: int
    pools: tuple[GpuPool, ...]
    dtype: str  # bfloat16, or half where a GPU has no BF16 (vLLM's own advice)
    rationale: str

    @property
    def gpus_per_replica(self) -> int:
        return self.gpus

    @property
    def tensor_parallel_size(self) -> int:
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
