"""Resolve a requested scheme (or `auto`) against the GPU inventory: a plan that says which
scheme, which GPUs and how many per replica, or an unplaceable verdict a user can act on."""

from dataclasses import dataclass, field

from quantfleet.api.conditions import Reason
from quantfleet.api.enums import GpuFamily, Objective, PlacementPolicy, Scheme
from quantfleet.planning.capacity import (
    GPU_MEMORY_UTILIZATION,
    Sizing,
    format_bytes,
    required_bytes,
    size_replica,
    tensor_parallel_sizes,
    usable_bytes,
)
from quantfleet.planning.compat import Support, compatibility, family_label, native_families
from quantfleet.planning.inventory import GpuInventory, GpuPool, Taint
from quantfleet.planning.rules import (
    MEMORY_BOUND_WHY,
    GpuCosts,
    Preference,
    auto_rule,
    meant_for,
    pool_preference,
)

# Schemes a user can name; what messages suggest instead, smallest weights first.
CONCRETE_SCHEMES = (Scheme.W4A16, Scheme.NVFP4, Scheme.W8A8, Scheme.FP8_DYNAMIC)
# Largest tensor-parallel size a message may suggest ("needs 16 such GPUs on one node").
_MAX_SUGGESTED_GPUS = 64


@dataclass(frozen=True)
class PlanRequest:
    """What the spec asks for. `allow_fallback` admits GPUs that load the scheme without its
    speed; `auto` never picks those."""

    parameters: int
    objective: Objective = Objective.BALANCED
    scheme: Scheme = Scheme.AUTO
    allow_fallback: bool = False
    attention_heads: int | None = None
    gpus_per_replica: int | None = None  # fixed by the spec; derived when None
    # vLLM's --gpu-memory-utilization: the operator passes its setting, so plans and pods agree.
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION
    # Which qualifying GPU kind wins; Cheapest ranks by `gpu_costs` (per GPU).
    policy: PlacementPolicy = PlacementPolicy.BEST_FIT
    gpu_costs: GpuCosts = field(default_factory=dict)
    # Every replica must fit the free GPUs of one pool (one node each) for the pool to be chosen.
    replicas: int = 1

    def __post_init__(self) -> None:
        if self.parameters <= 0:
            raise ValueError(f"parameter count must be positive, got {self.parameters}")
        if self.attention_heads is not None and self.attention_heads <= 0:
            raise ValueError(f"attention head count must be positive, got {self.attention_heads}")
        if self.gpus_per_replica is not None and self.gpus_per_replica <= 0:
            raise ValueError(f"GPUs per replica must be positive, got {self.gpus_per_replica}")
        if self.replicas < 0:
            raise ValueError(f"replicas must not be negative, got {self.replicas}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                f"GPU memory utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )


@dataclass(frozen=True)
class Target:
    """A kind of GPU the plan may land on; `weight` (1-100) ranks it for the objective."""

    pool: GpuPool
    support: Support
    weight: int


@dataclass(frozen=True)
class Plan:
    scheme: Scheme
    objective: Objective
    policy: PlacementPolicy
    parameters: int  # the source's parameter count it was sized for (capacity.source_parameters)
    gpus_per_replica: int
    tensor_parallel_size: int
    min_gpu_memory_mib: int  # a GPU with less memory than this cannot hold its share
    required_bytes: float
    targets: tuple[Target, ...]  # best first
    rationale: str

    @property
    def target_families(self) -> tuple[GpuFamily, ...]:
        """Families the plan may land on, best first."""
        return tuple(dict.fromkeys(target.pool.family for target in self.targets))

    @property
    def support(self) -> Support:
        """Native unless the plan only found GPUs that run the scheme as a fallback."""
        return self.targets[0].support

    @property
    def gpu_taints(self) -> tuple[Taint, ...]:
        """GPU taints on the target nodes, which the pods must tolerate."""
        taints = {taint for target in self.targets for taint in target.pool.gpu_taints}
        return tuple(sorted(taints, key=str))


@dataclass(frozen=True)
class Unplaceable:
    scheme: Scheme
    objective: Objective
    reason: Reason  # NoGpuNodes, NoCompatibleGpu, InsufficientGpuMemory, InsufficientFreeGpus
    message: str


@dataclass(frozen=True)
class _Candidate:
    pool: GpuPool
    scheme: Scheme
    support: Support
    sizing: Sizing
    step: int  # 0 for the rule's first scheme, higher for memory-bound step-downs
    why: str


def plan_placement(request: PlanRequest, inventory: GpuInventory) -> Plan | Unplaceable:
    """The plan for `request` on `inventory`, or why there is none."""
    pools = inventory.pools
    if not pools:
        return _unplaceable(request, Reason.NO_GPU_NODES, inventory.describe())
    if request.scheme is Scheme.AUTO:
        candidates = _auto_candidates(request, pools)
    else:
        candidates = _requested_candidates(request, pools)
    if isinstance(candidates, Unplaceable):
        return candidates
    free = [
        c for c in candidates if c.pool.free_replicas(c.sizing.gpus_per_replica) >= request.replicas
    ]
    if not free:
        return _unplaceable(
            request, Reason.INSUFFICIENT_FREE_GPUS, _no_free_gpus(request, candidates)
        )
    prefer = _preference(request, pools)
    best, *others = sorted(
        free,
        key=lambda c: (
            c.step,
            c.support is not Support.NATIVE,
            not meant_for(c.scheme, c.pool.family),
            prefer(c.pool, c.sizing.gpus_per_replica),
        ),
    )
    runner_up = next((c for c in others if c.pool.family != best.pool.family), None)
    return _plan_around(best, runner_up, request, pools)


def _preference(request: PlanRequest, pools: tuple[GpuPool, ...]) -> Preference:
    return pool_preference(request.policy, request.objective, request.gpu_costs, pools)


def _auto_candidates(
    request: PlanRequest, pools: tuple[GpuPool, ...]
) -> list[_Candidate] | Unplaceable:
    candidates: list[_Candidate] = []
    tried: list[Scheme] = []
    for pool in pools:
        rule = auto_rule(request.objective, pool.family)
        if rule is None:
            continue
        for step, scheme in enumerate(rule.schemes):
            tried.append(scheme)
            verdict = compatibility(scheme, pool.compute_capability)
            sizing = _size(request, scheme, pool)
            if verdict.support is Support.NATIVE and sizing is not None:
                why = rule.why if step == 0 else MEMORY_BOUND_WHY.format(first=rule.schemes[0])
                why = why.format(family=pool.family)
                candidates.append(_Candidate(pool, scheme, verdict.support, sizing, step, why))
                break
    if candidates:
        return candidates
    if not tried:
        present = ", ".join(sorted({family_label(p.compute_capability) for p in pools}))
        needs = "; ".join(
            f"{scheme} needs {'/'.join(native_families(scheme)[:1])} or newer"
            for scheme in CONCRETE_SCHEMES
        )
        message = f"auto found no scheme that runs natively on {present} ({needs})"
        return _unplaceable(request, Reason.NO_COMPATIBLE_GPU, message)
    smallest = min(tried, key=lambda s: required_bytes(request.parameters, s))
    return _unplaceable(
        request, Reason.INSUFFICIENT_GPU_MEMORY, _too_small(request, smallest, pools)
    )


def _requested_candidates(
    request: PlanRequest, pools: tuple[GpuPool, ...]
) -> list[_Candidate] | Unplaceable:
    admitted = [
        (pool, verdict)
        for pool in pools
        if (verdict := compatibility(request.scheme, pool.compute_capability)).admitted(
            request.allow_fallback
        )
    ]
    if not admitted:
        message = _incompatible(request, pools)
        return _unplaceable(request, Reason.NO_COMPATIBLE_GPU, message)
    candidates = [
        _Candidate(pool, request.scheme, verdict.support, sizing, 0, verdict.reason)
        for pool, verdict in admitted
        if (sizing := _size(request, request.scheme, pool)) is not None
    ]
    if candidates:
        return candidates
    message = _too_small(request, request.scheme, tuple(pool for pool, _ in admitted))
    return _unplaceable(request, Reason.INSUFFICIENT_GPU_MEMORY, message)


def _plan_around(
    best: _Candidate, runner_up: _Candidate | None, request: PlanRequest, pools: tuple[GpuPool, ...]
) -> Plan:
    """Widen the best candidate to every GPU kind that runs the same scheme at the same GPU
    count, so the scheduler has every good node to choose from."""
    gpus = best.sizing.gpus_per_replica
    allow_fallback = request.allow_fallback and request.scheme is not Scheme.AUTO
    fitting = [
        (pool, verdict.support)
        for pool in pools
        if (verdict := compatibility(best.scheme, pool.compute_capability)).admitted(allow_fallback)
        and pool.memory_mib >= best.sizing.min_gpu_memory_mib
        and pool.max_gpus_per_node >= gpus
    ]
    # Fallback GPUs only when no native GPU can take the replica: they load without the speed.
    native = [(pool, support) for pool, support in fitting if support is Support.NATIVE]
    chosen = native or fitting
    prefer = _preference(request, pools)
    # Kinds with room for every replica now first: a full kind stays admitted for later.
    ranked = sorted(
        chosen,
        key=lambda item: (
            item[0].free_replicas(gpus) < request.replicas,
            not meant_for(best.scheme, item[0].family),
            prefer(item[0], gpus),
        ),
    )
    step = max(1, 100 // len(ranked))
    targets = tuple(
        Target(pool, support, max(1, 100 - rank * step))
        for rank, (pool, support) in enumerate(ranked)
    )
    return Plan(
        scheme=best.scheme,
        objective=request.objective,
        policy=request.policy,
        parameters=request.parameters,
        gpus_per_replica=gpus,
        tensor_parallel_size=best.sizing.tensor_parallel_size,
        min_gpu_memory_mib=best.sizing.min_gpu_memory_mib,
        required_bytes=best.sizing.required_bytes,
        targets=targets,
        rationale=_rationale(best, runner_up, request),
    )


def _rationale(best: _Candidate, runner_up: _Candidate | None, request: PlanRequest) -> str:
    chose = (
        f"auto chose {best.scheme} for {request.objective}"
        if request.scheme is Scheme.AUTO
        else f"{best.scheme} as requested"
    )
    if best.support is Support.FALLBACK:
        chose += " (fallback allowed by the spec)"
    rationale = (
        f"{chose}: {best.why}; {_params(request.parameters)} needs "
        f"{format_bytes(best.sizing.required_bytes)} -> {_gpus(best)} by {request.policy}"
    )
    if runner_up is not None:
        rationale += f"; runner-up: {runner_up.scheme} on {_gpus(runner_up)}"
    return rationale


def _gpus(candidate: _Candidate) -> str:
    """`2 x hopper 80 GiB (TP 2)`."""
    pool, gpus = candidate.pool, candidate.sizing.gpus_per_replica
    return f"{gpus} x {pool.family} {pool.memory_mib / 1024:.0f} GiB (TP {gpus})"


def _incompatible(request: PlanRequest, pools: tuple[GpuPool, ...]) -> str:
    scheme = request.scheme
    natives = ", ".join(native_families(scheme)) or "no GPU family"
    present = ", ".join(dict.fromkeys(family_label(p.compute_capability) for p in pools))
    message = f"{scheme} runs natively on {natives}; the cluster has {present}"
    fallback = [
        family_label(p.compute_capability)
        for p in pools
        if compatibility(scheme, p.compute_capability).support is Support.FALLBACK
    ]
    if fallback:
        message += (
            f"; {', '.join(dict.fromkeys(fallback))} would load it only as a fallback without "
            "its speed (allow fallback in the spec to accept that)"
        )
    alternatives = [
        other
        for other in CONCRETE_SCHEMES
        if other != scheme
        and any(compatibility(other, p.compute_capability).support is Support.NATIVE for p in pools)
    ]
    if alternatives:
        message += f"; {', '.join(alternatives)} run natively there"
    else:
        message += f"; add {natives} GPU nodes"
    return message


def _no_free_gpus(request: PlanRequest, candidates: list[_Candidate]) -> str:
    """What each kind that would hold the model has free now."""
    kinds = "; ".join(
        f"{c.scheme} on {c.sizing.gpus_per_replica} x {c.pool.family} "
        f"{c.pool.memory_mib / 1024:.0f} GiB: {c.pool.free_gpus} of {c.pool.gpus} GPUs free"
        for c in candidates[:3]
    )
    more = f"; and {len(candidates) - 3} more" if len(candidates) > 3 else ""
    return (
        f"{request.replicas} replica(s) fit the fleet but not its free GPUs now ({kinds}{more}); "
        "planned again as GPUs free up"
    )


def _too_small(request: PlanRequest, scheme: Scheme, pools: tuple[GpuPool, ...]) -> str:
    """Name the biggest compatible node, and what it would take to fit."""
    need = required_bytes(request.parameters, scheme)

    def usable(pool: GpuPool) -> float:
        return usable_bytes(pool.memory_mib, request.gpu_memory_utilization)

    biggest = max(pools, key=lambda p: p.max_gpus_per_node * usable(p))
    offered = biggest.max_gpus_per_node * usable(biggest)
    message = (
        f"{_params(request.parameters)} at {scheme} needs {format_bytes(need)} with KV headroom; "
        f"the largest compatible node has {biggest.max_gpus_per_node} x {biggest.family} "
        f"{biggest.memory_mib / 1024:.0f} GiB ({format_bytes(offered)} usable)"
    )
    if request.gpus_per_replica is not None:
        message += f"; the spec fixes {request.gpus_per_replica} GPUs per replica"
    sizes = tensor_parallel_sizes(_MAX_SUGGESTED_GPUS, request.attention_heads)
    enough = [tp for tp in sizes if need <= tp * usable(biggest)]
    if enough:
        message += f"; it needs nodes with {enough[0]} such GPUs"
    smaller = [
        f"{other} ({format_bytes(required_bytes(request.parameters, other))})"
        for other in CONCRETE_SCHEMES
        if required_bytes(request.parameters, other) < need
        and any(
            compatibility(other, p.compute_capability).support is Support.NATIVE
            and _size(request, other, p) is not None
            for p in pools
        )
    ]
    if smaller:
        message += f", or a smaller scheme that fits: {', '.join(smaller)}"
    return message


def _size(request: PlanRequest, scheme: Scheme, pool: GpuPool) -> Sizing | None:
    return size_replica(
        request.parameters,
        scheme,
        pool.memory_mib,
        pool.max_gpus_per_node,
        request.attention_heads,
        request.gpus_per_replica,
        request.gpu_memory_utilization,
    )


def _unplaceable(request: PlanRequest, reason: Reason, message: str) -> Unplaceable:
    return Unplaceable(request.scheme, request.objective, reason, message)


def _params(parameters: int) -> str:
    """72000000000 -> `72B`."""
    if parameters >= 10**9:
        return f"{parameters / 10**9:g}B"
    return f"{parameters / 10**6:g}M"
