"""Resolve a requested scheme (or `auto`) against the inventory: a plan that says which scheme,
which GPUs and how many per replica (or which CPU nodes, cores and memory), or an unplaceable
verdict a user can act on."""

from dataclasses import dataclass, field

from quantfleet.api.conditions import Reason
from quantfleet.api.enums import CpuLevel, GpuFamily, Hardware, Objective, PlacementPolicy, Scheme
from quantfleet.api.settings import DEFAULT_CPU_CORES_PER_REPLICA, DEFAULT_CPU_KV_CACHE_GIB
from quantfleet.planning.capacity import (
    GPU_MEMORY_UTILIZATION,
    CpuSizing,
    Sizing,
    format_bytes,
    required_bytes,
    size_cpu_replica,
    size_replica,
    tensor_parallel_sizes,
    usable_bytes,
)
from quantfleet.planning.compat import Support, compatibility, family_label, native_families
from quantfleet.planning.inventory import CpuPool, GpuPool, Inventory, Taint
from quantfleet.planning.rules import (
    CPU_MAX_PARAMETERS,
    MEMORY_BOUND_WHY,
    AutoRule,
    GpuCosts,
    Kind,
    Pool,
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
    # GPUs, serving CPU nodes, or both (CPUs only for models up to CPU_MAX_PARAMETERS there).
    hardware: Hardware = Hardware.GPU
    cpu_cores: int = DEFAULT_CPU_CORES_PER_REPLICA  # per CPU replica
    cpu_kv_cache_gib: int = DEFAULT_CPU_KV_CACHE_GIB  # VLLM_CPU_KVCACHE_SPACE of a CPU replica
    # The GPU family or CPU level the model's current plan prefers: kept while it has room, over
    # what the policy would pick afresh, so other pods coming and going never move (roll) it.
    keep: Kind | None = None

    def __post_init__(self) -> None:
        if self.parameters <= 0:
            raise ValueError(f"parameter count must be positive, got {self.parameters}")
        if self.attention_heads is not None and self.attention_heads <= 0:
            raise ValueError(f"attention head count must be positive, got {self.attention_heads}")
        if self.gpus_per_replica is not None and self.gpus_per_replica <= 0:
            raise ValueError(f"GPUs per replica must be positive, got {self.gpus_per_replica}")
        if self.replicas < 0:
            raise ValueError(f"replicas must not be negative, got {self.replicas}")
        if self.cpu_cores <= 0 or self.cpu_kv_cache_gib <= 0:
            raise ValueError("CPU cores and KV cache per replica must be positive")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                f"GPU memory utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )


@dataclass(frozen=True)
class Target:
    """A kind of GPU, or a CPU pool, the plan may land on; `weight` (1-100) ranks it for the
    objective."""

    pool: Pool
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
    targets: tuple[Target, ...]  # best first; all GPU pools, or all CPU pools when `cpu`
    rationale: str
    cpu: CpuSizing | None = None  # a CPU plan: cores and memory per replica, no GPUs

    @property
    def target_families(self) -> tuple[GpuFamily, ...]:
        """GPU families the plan may land on, best first (none for a CPU plan)."""
        pools = (t.pool for t in self.targets if isinstance(t.pool, GpuPool))
        return tuple(dict.fromkeys(pool.family for pool in pools))

    @property
    def target_levels(self) -> tuple[CpuLevel, ...]:
        """CPU levels a CPU plan may land on, best first."""
        pools = (t.pool for t in self.targets if isinstance(t.pool, CpuPool))
        return tuple(dict.fromkeys(pool.level for pool in pools))

    @property
    def support(self) -> Support:
        """Native unless the plan only found GPUs that run the scheme as a fallback."""
        return self.targets[0].support

    @property
    def gpu_taints(self) -> tuple[Taint, ...]:
        """GPU taints on the target nodes, which the pods must tolerate."""
        pools = [t.pool for t in self.targets if isinstance(t.pool, GpuPool)]
        return tuple(sorted({taint for pool in pools for taint in pool.gpu_taints}, key=str))


@dataclass(frozen=True)
class Unplaceable:
    scheme: Scheme
    objective: Objective
    # NoGpuNodes, NoCompatibleGpu, InsufficientGpuMemory, InsufficientFreeGpus, and for CPUs
    # NoCpuNodes, NoCompatibleCpu, InsufficientNodeMemory, InsufficientFreeCpu
    reason: Reason
    message: str


@dataclass(frozen=True)
class _Candidate:
    pool: GpuPool
    scheme: Scheme
    support: Support
    sizing: Sizing
    step: int  # 0 for the rule's first scheme, higher for memory-bound step-downs
    why: str

    @property
    def kind(self) -> Kind:
        return self.pool.family

    @property
    def gpus(self) -> int:
        return self.sizing.gpus_per_replica

    def free_replicas(self) -> int:
        return self.pool.free_replicas(self.sizing.gpus_per_replica)


@dataclass(frozen=True)
class _CpuCandidate:
    pool: CpuPool
    scheme: Scheme
    support: Support
    sizing: CpuSizing
    step: int
    why: str
    gpus = 0

    @property
    def kind(self) -> Kind:
        return self.pool.level

    def free_replicas(self) -> int:
        return self.pool.free_replicas(self.sizing.cores, self.sizing.memory_bytes)


Candidate = _Candidate | _CpuCandidate


def plan_placement(request: PlanRequest, inventory: Inventory) -> Plan | Unplaceable:
    """The plan for `request` on `inventory`, or why there is none: GPUs and serving CPUs are
    searched as the request's hardware allows and ranked together by its policy."""
    searches: list[list[Candidate] | Unplaceable] = []
    if request.hardware is not Hardware.CPU:
        searches.append(_gpu_candidates(request, inventory))
    if cpus_considered(request):
        searches.append(_cpu_candidates(request, inventory))
    candidates = [c for found in searches if not isinstance(found, Unplaceable) for c in found]
    if not candidates:
        failed = [found for found in searches if isinstance(found, Unplaceable)]
        message = "; on CPUs: ".join(found.message for found in failed)
        return _unplaceable(request, failed[0].reason, message)
    free = [c for c in candidates if c.free_replicas() >= request.replicas]
    if not free:
        # A full fleet keeps a plan where it is rather than take back a model's progress: its
        # Jobs and pods were sized for it, and the scheduler waits for room there.
        free = [c for c in candidates if c.kind == request.keep]
    if not free:
        cpu_only = all(isinstance(c, _CpuCandidate) for c in candidates)
        reason = Reason.INSUFFICIENT_FREE_CPU if cpu_only else Reason.INSUFFICIENT_FREE_GPUS
        return _unplaceable(request, reason, _no_free_capacity(request, candidates))
    prefer = _preference(request, inventory)
    best, *others = sorted(
        free,
        key=lambda c: (
            c.step,
            c.support is not Support.NATIVE,
            not meant_for(c.scheme, c.kind),
            c.kind != request.keep,
            prefer(c.pool, c.gpus),
        ),
    )
    runner_up = next((c for c in others if c.kind != best.kind), None)
    if isinstance(best, _CpuCandidate):
        return _plan_around_cpu(best, runner_up, request, inventory)
    return _plan_around(best, runner_up, request, inventory)


def cpus_considered(request: PlanRequest) -> bool:
    """Whether serving CPUs are searched: always for `hardware: cpu`; for `any` only for models
    up to CPU_MAX_PARAMETERS (a CPU serves a 3B model usefully, never a 72B one)."""
    if request.hardware is Hardware.ANY:
        return request.parameters <= CPU_MAX_PARAMETERS
    return request.hardware is Hardware.CPU


def _preference(request: PlanRequest, inventory: Inventory) -> Preference:
    pools: list[Pool] = [*inventory.pools, *inventory.cpu_pools]
    return pool_preference(
        request.policy, request.objective, request.gpu_costs, pools, request.cpu_cores
    )


def _gpu_candidates(request: PlanRequest, inventory: Inventory) -> list[Candidate] | Unplaceable:
    pools = inventory.pools
    if not pools:
        return _unplaceable(request, Reason.NO_GPU_NODES, inventory.describe())
    if request.scheme is Scheme.AUTO:
        found = _auto_candidates(request, pools)
    else:
        found = _requested_candidates(request, pools)
    if isinstance(found, Unplaceable):
        return found
    candidates: list[Candidate] = [*found]
    return candidates


def _cpu_candidates(request: PlanRequest, inventory: Inventory) -> list[Candidate] | Unplaceable:
    """Serving CPU pools that run the scheme (auto: the CPU rule's) and hold one replica."""
    pools = inventory.cpu_pools
    if not pools:
        return _unplaceable(request, Reason.NO_CPU_NODES, inventory.describe_cpus())
    candidates: list[Candidate] = []
    tried: list[Scheme] = []
    for pool in pools:
        if request.scheme is Scheme.AUTO:
            rule = auto_rule(request.objective, pool.level)
            schemes = rule.schemes if rule else ()
        else:
            schemes = (request.scheme,)
        for step, scheme in enumerate(schemes):
            verdict = compatibility(scheme, pool.level)
            auto = request.scheme is Scheme.AUTO
            if not verdict.admitted(request.allow_fallback and not auto):
                continue
            tried.append(scheme)
            sizing = size_cpu_replica(
                request.parameters, scheme, request.cpu_cores, request.cpu_kv_cache_gib
            )
            if pool.fits(sizing.cores, sizing.memory_bytes):
                why = _auto_why(rule, step, pool.level) if auto and rule else verdict.reason
                candidates.append(_CpuCandidate(pool, scheme, verdict.support, sizing, step, why))
                break
    if candidates:
        return candidates
    if not tried:
        return _unplaceable(request, Reason.NO_COMPATIBLE_CPU, _incompatible_cpu(request, pools))
    smallest = min(tried, key=lambda s: required_bytes(request.parameters, s))
    return _unplaceable(
        request, Reason.INSUFFICIENT_NODE_MEMORY, _cpu_too_small(request, smallest, pools)
    )


def _auto_why(rule: AutoRule, step: int, kind: Kind) -> str:
    """The rule's reason for its first scheme, or the memory-bound step-down's."""
    why = rule.why if step == 0 else MEMORY_BOUND_WHY.format(first=rule.schemes[0])
    return why.format(family=kind)


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
                why = _auto_why(rule, step, pool.family)
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
    best: _Candidate, runner_up: Candidate | None, request: PlanRequest, inventory: Inventory
) -> Plan:
    """Widen the best candidate to every GPU kind that runs the same scheme at the same GPU
    count, so the scheduler has every good node to choose from."""
    gpus = best.sizing.gpus_per_replica
    allow_fallback = request.allow_fallback and request.scheme is not Scheme.AUTO
    fitting = [
        (pool, verdict.support)
        for pool in inventory.pools
        if (verdict := compatibility(best.scheme, pool.compute_capability)).admitted(allow_fallback)
        and pool.memory_mib >= best.sizing.min_gpu_memory_mib
        and pool.max_gpus_per_node >= gpus
    ]
    return Plan(
        scheme=best.scheme,
        objective=request.objective,
        policy=request.policy,
        parameters=request.parameters,
        gpus_per_replica=gpus,
        tensor_parallel_size=best.sizing.tensor_parallel_size,
        min_gpu_memory_mib=best.sizing.min_gpu_memory_mib,
        required_bytes=best.sizing.required_bytes,
        targets=_targets(best, fitting, request, inventory),
        rationale=_rationale(best, runner_up, request),
    )


def _plan_around_cpu(
    best: _CpuCandidate, runner_up: Candidate | None, request: PlanRequest, inventory: Inventory
) -> Plan:
    """Widen the best CPU candidate to every CPU pool that runs the scheme and holds a replica."""
    sizing = best.sizing
    allow_fallback = request.allow_fallback and request.scheme is not Scheme.AUTO
    fitting = [
        (pool, verdict.support)
        for pool in inventory.cpu_pools
        if (verdict := compatibility(best.scheme, pool.level)).admitted(allow_fallback)
        and pool.fits(sizing.cores, sizing.memory_bytes)
    ]
    return Plan(
        scheme=best.scheme,
        objective=request.objective,
        policy=request.policy,
        parameters=request.parameters,
        gpus_per_replica=0,
        tensor_parallel_size=1,
        min_gpu_memory_mib=0,
        required_bytes=sizing.required_bytes,
        targets=_targets(best, fitting, request, inventory),
        rationale=_rationale(best, runner_up, request),
        cpu=sizing,
    )


def _targets(
    best: Candidate,
    fitting: "list[tuple[GpuPool, Support]] | list[tuple[CpuPool, Support]]",
    request: PlanRequest,
    inventory: Inventory,
) -> tuple[Target, ...]:
    """The fitting pools as weighted targets: fallback ones only when no native one takes the
    replica (they load without the speed); the best candidate's kind first, then as the scheme's
    rules and the policy rank them. Free capacity chose `best` but does not order the rest: the
    weights become the Deployment's node affinity, which must not change (and roll the pods)
    each time another pod starts or ends."""
    native = [(pool, support) for pool, support in fitting if support is Support.NATIVE]
    chosen: list[tuple[Pool, Support]] = [*(native or fitting)]
    prefer = _preference(request, inventory)

    def kind(pool: Pool) -> Kind:
        return pool.level if isinstance(pool, CpuPool) else pool.family

    ranked = sorted(
        chosen,
        key=lambda item: (
            kind(item[0]) != best.kind,
            not meant_for(best.scheme, kind(item[0])),
            prefer(item[0], best.gpus),
        ),
    )
    step = max(1, 100 // len(ranked))
    return tuple(
        Target(pool, support, max(1, 100 - rank * step))
        for rank, (pool, support) in enumerate(ranked)
    )


def _rationale(best: Candidate, runner_up: Candidate | None, request: PlanRequest) -> str:
    chose = (
        f"auto chose {best.scheme} for {request.objective}"
        if request.scheme is Scheme.AUTO
        else f"{best.scheme} as requested"
    )
    if best.support is Support.FALLBACK:
        chose += " (fallback allowed by the spec)"
    rationale = (
        f"{chose}: {best.why}; {_params(request.parameters)} needs "
        f"{format_bytes(best.sizing.required_bytes)} -> {_where(best)} by {request.policy}"
    )
    if runner_up is not None:
        rationale += f"; runner-up: {runner_up.scheme} on {_where(runner_up)}"
    if request.hardware is Hardware.ANY and not cpus_considered(request):
        rationale += f"; CPUs not considered above {_params(CPU_MAX_PARAMETERS)}"
    return rationale


def _where(candidate: Candidate) -> str:
    """`2 x hopper 80 GiB (TP 2)`, or `cpu amx, 16 cores, 12 GiB`."""
    if isinstance(candidate, _CpuCandidate):
        sizing = candidate.sizing
        return (
            f"cpu {candidate.pool.level}, {sizing.cores} cores, "
            f"{sizing.memory_bytes / 2**30:.0f} GiB"
        )
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


def _no_free_capacity(request: PlanRequest, candidates: list[Candidate]) -> str:
    """What each kind that would hold the model has free now."""

    def free(c: Candidate) -> str:
        if isinstance(c, _CpuCandidate):
            cores = sum(node.free_cores for node in c.pool.nodes)
            return f"{c.scheme} on {_where(c)}: {cores} cores free"
        pool = c.pool
        return (
            f"{c.scheme} on {c.gpus} x {pool.family} {pool.memory_mib / 1024:.0f} GiB: "
            f"{pool.free_gpus} of {pool.gpus} GPUs free"
        )

    what = "capacity" if any(isinstance(c, _CpuCandidate) for c in candidates) else "GPUs"
    kinds = "; ".join(free(c) for c in candidates[:3])
    more = f"; and {len(candidates) - 3} more" if len(candidates) > 3 else ""
    return (
        f"{request.replicas} replica(s) fit the fleet but not its free {what} now "
        f"({kinds}{more}); planned again as {what} free up"
    )


def _incompatible_cpu(request: PlanRequest, pools: tuple[CpuPool, ...]) -> str:
    """Why no serving CPU runs the scheme, and what does run there."""
    levels = ", ".join(dict.fromkeys(pool.level for pool in pools))
    if request.scheme is Scheme.AUTO:
        message = f"auto found no scheme that runs natively on the serving CPUs ({levels})"
    else:
        verdicts = [compatibility(request.scheme, pool.level) for pool in pools]
        why = "; ".join(dict.fromkeys(v.reason.split("; CPU is")[0] for v in verdicts))
        message = f"{request.scheme} on the serving CPUs ({levels}): {why}"
        if any(v.support is Support.FALLBACK for v in verdicts):
            message += " (allow fallback in the spec to accept that)"
    alternatives = [
        other
        for other in CONCRETE_SCHEMES
        if any(compatibility(other, p.level).support is Support.NATIVE for p in pools)
    ]
    if alternatives:
        message += f"; {', '.join(alternatives)} run natively there"
    return message


def _cpu_too_small(request: PlanRequest, scheme: Scheme, pools: tuple[CpuPool, ...]) -> str:
    """Memory one CPU replica needs against the largest node's, with its parts."""
    sizing = size_cpu_replica(
        request.parameters, scheme, request.cpu_cores, request.cpu_kv_cache_gib
    )
    nodes = [node for pool in pools for node in pool.nodes]
    biggest = max(nodes, key=lambda node: node.memory_bytes)
    most_cores = max(node.cores for node in nodes)
    return (
        f"{_params(request.parameters)} at {scheme} needs {sizing.memory_bytes / 2**30:.0f} GiB "
        f"and {sizing.cores} cores per CPU replica (weights {format_bytes(sizing.weight_bytes)}, "
        f"KV cache {sizing.kv_cache_gib} GiB, runtime); the largest CPU node has "
        f"{biggest.memory_bytes / 2**30:.0f} GiB allocatable and the most cores are {most_cores}"
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
