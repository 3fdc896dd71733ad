"""A BenchmarkRun's children: one benchmark Job per target (the baseline included) and, when the
baseline is a QuantizedModel's source, a temporary BF16 vLLM Deployment and Service on the same
GPU family with the GPU count BF16 needs. Pure builders: no clock, no I/O."""

import json
from dataclasses import dataclass, field

from quantfleet.api.benchmarkrun import BenchmarkRunSpec, Scenario, Workload
from quantfleet.api.common import SecretKeyRef
from quantfleet.api.contract import (
    BASELINE_TARGET,
    DEFAULT_SWEEP_STEPS,
    LABEL_BENCHMARK_RUN,
    LABEL_COMPONENT,
    LABEL_TARGET,
    MAX_BENCHMARKS,
)
from quantfleet.api.enums import GpuFamily, ScenarioKind, Scheme
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.children import (
    CACHE_ENV,
    Json,
    child_name,
    digest,
    labels,
    owned,
    restricted_container_security,
    restricted_pod_security,
    scratch_volumes,
    token_env,
)
from quantfleet.builders.jobs import build_job
from quantfleet.builders.serving import PORT
from quantfleet.builders.storage import claim_volumes, local_path
from quantfleet.planning.capacity import (
    BYTES_PER_PARAMETER,
    UNQUANTIZED_SHARE,
    format_bytes,
    required_bytes,
    size_replica,
)
from quantfleet.planning.compat import BF16, Support, compatibility
from quantfleet.planning.inventory import (
    GPU_RESOURCE,
    LABEL_COMPUTE_MAJOR,
    LABEL_COMPUTE_MINOR,
    LABEL_FAMILY,
    LABEL_MEMORY_MIB,
    GpuInventory,
    GpuPool,
)

BASELINE = BASELINE_TARGET  # the baseline's name in results, Jobs and labels (contract)
# The program writes GuideLLM's full JSON and HTML reports here (a scratch emptyDir): the spec
# names no storage for them, so only the compact summary outlives the pod (in the report
# ConfigMap); see BenchmarkResult.report.
REPORT_DIR = "/tmp/reports"
# Bounds a benchmark Job whatever the limits say; GuideLLM stops each run on its own limits.
BENCHMARK_DEADLINE_SECONDS = 6 * 3600
BENCHMARK_RESOURCES: Json = {
    "requests": {"cpu": "2", "memory": "4Gi"},
    "limits": {"cpu": "4", "memory": "8Gi"},
}


@dataclass(frozen=True)
class Endpoint:
    """A resolved system under test: where to send requests and how to make prompts for it."""

    name: str  # target name, or "baseline"
    url: str  # base URL without /v1
    model: str  # served model name
    tokenizer: str  # hub name or URI the program builds synthetic prompts with
    token_secret_ref: SecretKeyRef | None = None
    read_only_uris: tuple[str, ...] = field(default=())  # pvc:// sources to mount


def base_url(url: str) -> str:
    """The server's base URL: the program and GuideLLM add /v1 themselves."""
    return url.rstrip("/").removesuffix("/v1")


def workload_arg(workload: Workload) -> str:
    """NAME:WIDTHxHEIGHT:PROMPT:OUTPUT, so results carry the spec's workload name (a bare
    preset name would label them with the preset's)."""
    shape = workload.shape()
    return (
        f"{workload.name}:{shape.image_width}x{shape.image_height}:"
        f"{shape.prompt_tokens}:{shape.output_tokens}"
    )


def runs_per_target(spec: BenchmarkRunSpec) -> int:
    """How many benchmarks one target's Job makes: workloads x (rates, sweep steps, 1)."""
    rates = {rate for s in spec.scenarios for rate in (s.rates or [])}
    kinds = {s.kind for s in spec.scenarios}
    per_workload = sum(
        len(rates)
        if kind is ScenarioKind.RATE
        else DEFAULT_SWEEP_STEPS
        if kind is ScenarioKind.SWEEP
        else 1
        for kind in kinds
    )
    return len(spec.workloads) * per_workload


def too_many_runs(spec: BenchmarkRunSpec) -> str | None:
    """Why the program could not report this spec in one result, or None."""
    runs = runs_per_target(spec)
    if runs <= MAX_BENCHMARKS:
        return None
    return (
        f"{runs} benchmarks per target (workloads x scenarios, a sweep counts "
        f"{DEFAULT_SWEEP_STEPS}); "
        f"one Job reports at most {MAX_BENCHMARKS}: split the run"
    )


def report_location(owner_name: str, spec: BenchmarkRunSpec, endpoint: Endpoint) -> str:
    """Where this target's full reports go: under spec.reportUri, else the pod's scratch."""
    if spec.report_uri is None:
        return REPORT_DIR
    return f"{spec.report_uri.rstrip('/')}/{owner_name}/{endpoint.name}"


def benchmark_args(spec: BenchmarkRunSpec, endpoint: Endpoint, report: str) -> list[str]:
    """Arguments of `python -m quantfleet_jobs.benchmark` (its 0.8.1-era CLI)."""
    kinds = list(dict.fromkeys(s.kind.value for s in spec.scenarios))
    args = [
        f"--target={endpoint.url}",
        f"--model={endpoint.model}",
        f"--tokenizer={endpoint.tokenizer}",
        f"--workloads={','.join(workload_arg(w) for w in spec.workloads)}",
        f"--scenarios={','.join(kinds)}",
        f"--max-error-rate={spec.max_error_rate:g}",
        f"--output={report}",
    ]
    rates = _rates(spec.scenarios)
    if rates:
        args.append(f"--rates={','.join(f'{rate:g}' for rate in rates)}")
    if spec.limits.max_requests is not None:
        args.append(f"--max-requests={spec.limits.max_requests}")
    if spec.limits.max_seconds is not None:
        args.append(f"--max-seconds={spec.limits.max_seconds}")
    return args


def build_benchmark_job(
    owner: Json, spec: BenchmarkRunSpec, endpoint: Endpoint, settings: OperatorSettings
) -> Json:
    """The Job benchmarking one endpoint with every workload and scenario of the run. Its name
    carries the hash of its inputs, so a changed spec makes a new Job."""
    report = report_location(owner["metadata"]["name"], spec, endpoint)
    args = benchmark_args(spec, endpoint, report)
    inputs = digest(endpoint.name, args)
    env = list(CACHE_ENV) + token_env(endpoint.token_secret_ref)
    volumes, mounts = claim_volumes(writable=[report], read_only=endpoint.read_only_uris)
    job = build_job(
        owner,
        child_name(owner["metadata"]["name"], "bench", inputs),
        "benchmark",
        inputs,
        module="quantfleet_jobs.benchmark",
        args=args,
        env=env,
        volumes=volumes,
        mounts=mounts,
        placement={},  # a CPU client: it needs no GPU
        resources=BENCHMARK_RESOURCES,
        deadline=BENCHMARK_DEADLINE_SECONDS,
        settings=settings,
        owner_label=LABEL_BENCHMARK_RUN,
    )
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        meta["labels"][LABEL_TARGET] = endpoint.name
    return job


def _rates(scenarios: list[Scenario]) -> list[float]:
    """Every rate of the rate scenarios, in order, once (the program takes one list)."""
    return list(dict.fromkeys(rate for s in scenarios for rate in (s.rates or [])))


@dataclass(frozen=True)
class BaselinePlan:
    """Where and on how many GPUs the BF16 baseline runs."""

    gpu_family: GpuFamily
    gpus: int  # tensor-parallel size: one replica, one node
    min_gpu_memory_mib: int
    pools: tuple[GpuPool, ...]
    dtype: str  # bfloat16, or half where a GPU has no BF16 (vLLM's own advice)
    rationale: str


def plan_baseline(
    parameters: int, family: GpuFamily, inventory: GpuInventory
) -> BaselinePlan | str:
    """The BF16 baseline on `family`: the fewest GPUs any of its pools fits it on (least memory
    first on a tie); every pool of the family that fits that count is admitted. A string says
    why it cannot be placed."""
    pools = [pool for pool in inventory.pools if pool.family == family]
    if not pools:
        return f"no schedulable {family} GPU nodes for the BF16 baseline ({inventory.describe()})"
    sized = [
        (sizing.gpus_per_replica, pool.memory_mib, pool, sizing)
        for pool in pools
        if (sizing := size_replica(parameters, BF16, pool.memory_mib, pool.max_gpus_per_node))
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


def baseline_name(owner_name: str) -> str:
    """The baseline Deployment's and Service's name."""
    return child_name(owner_name, BASELINE)


def baseline_endpoint(owner_name: str, namespace: str) -> str:
    return f"http://{baseline_name(owner_name)}.{namespace}.svc:{PORT}"


def build_baseline_deployment(
    owner: Json,
    model: QuantizedModelSpec,
    served_name: str,
    plan: BaselinePlan,
    settings: OperatorSettings,
) -> Json:
    """One vLLM replica serving the QuantizedModel's unquantized source, restricted like every
    pod, with the model's own serving options so both sides see the same limits."""
    owner_name = owner["metadata"]["name"]
    pod_labels = labels(LABEL_BENCHMARK_RUN, owner_name, BASELINE)
    scratch, scratch_mounts = scratch_volumes(shm=plan.gpus > 1)
    volumes, mounts = claim_volumes(writable=[], read_only=[model.source.uri])
    source = model.source.uri.removeprefix("hf://")  # vLLM takes a hub name as is
    args = [
        local_path(source),
        f"--served-model-name={served_name}",
        f"--port={PORT}",
        f"--dtype={plan.dtype}",
        f"--tensor-parallel-size={plan.gpus}",
        f"--gpu-memory-utilization={settings.gpu_memory_utilization}",
    ]
    if model.source.uri.startswith("s3://"):
        args.append("--load-format=runai_streamer")
    if model.source.revision:
        args.append(f"--revision={model.source.revision}")
    if model.serving.max_model_length:
        args.append(f"--max-model-len={model.serving.max_model_length}")
    if model.serving.images_per_prompt is not None:
        args.append(
            f"--limit-mm-per-prompt={json.dumps({'image': model.serving.images_per_prompt})}"
        )
    env = list(CACHE_ENV) + token_env(model.source.token_secret_ref)
    probe = {"httpGet": {"path": "/health", "port": PORT}}
    gpus = {GPU_RESOURCE: str(plan.gpus)}
    container = {
        "name": "vllm",
        "image": model.serving.image,
        "command": ["vllm", "serve"],
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": {"requests": dict(gpus), "limits": dict(gpus)},
        "securityContext": restricted_container_security(),
        "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": 180},
        "readinessProbe": {**probe, "periodSeconds": 5},
        "volumeMounts": scratch_mounts + mounts,
    }
    deployment_spec = {
        "replicas": 1,
        "selector": {"matchLabels": _selector(owner_name)},
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": restricted_pod_security(),
                "affinity": {"nodeAffinity": _baseline_affinity(plan)},
                "tolerations": _tolerations(plan),
                "containers": [container],
                "volumes": scratch + volumes,
            },
        },
    }
    return owned(
        owner, "apps/v1", "Deployment", baseline_name(owner["metadata"]["name"]), pod_labels,
        spec=deployment_spec,
    )  # fmt: skip


def build_baseline_service(owner: Json) -> Json:
    owner_name = owner["metadata"]["name"]
    service_spec = {
        "selector": _selector(owner_name),
        "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
    }
    return owned(
        owner, "v1", "Service", baseline_name(owner_name),
        labels(LABEL_BENCHMARK_RUN, owner_name, BASELINE), spec=service_spec,
    )  # fmt: skip


def _selector(owner_name: str) -> dict[str, str]:
    return {LABEL_BENCHMARK_RUN: owner_name, LABEL_COMPONENT: BASELINE}


def _baseline_affinity(plan: BaselinePlan) -> Json:
    """Required: a GPU of the plan's family (by compute capability where labelled, else by the
    family label, as placement does) with enough memory for its share."""
    minimum = {
        "key": LABEL_MEMORY_MIB,
        "operator": "Gt",
        "values": [str(plan.min_gpu_memory_mib - 1)],
    }
    terms = []
    for pool in plan.pools:
        if pool.labelled_compute_capability:
            cc = pool.compute_capability
            selector = [
                {"key": LABEL_COMPUTE_MAJOR, "operator": "In", "values": [str(cc.major)]},
                {"key": LABEL_COMPUTE_MINOR, "operator": "In", "values": [str(cc.minor)]},
            ]
        else:
            selector = [{"key": LABEL_FAMILY, "operator": "In", "values": [str(pool.family)]}]
        term = {"matchExpressions": [*selector, dict(minimum)]}
        if term not in terms:
            terms.append(term)
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}


def _tolerations(plan: BaselinePlan) -> list[Json]:
    keys = dict.fromkeys((t.key, t.effect) for pool in plan.pools for t in pool.gpu_taints)
    return [{"key": key, "operator": "Exists", "effect": effect} for key, effect in keys]


def source_parameters(
    model: QuantizedModelSpec, artifact_bytes: int | None, scheme: str | None
) -> int | None:
    """The source's parameter count: from the spec, else estimated from the checkpoint's size
    and scheme (the inverse of capacity.weight_bytes), else None."""
    if model.source.parameters_billions:
        return int(model.source.parameters_billions * 1e9)
    if not artifact_bytes or scheme not in {str(s) for s in BYTES_PER_PARAMETER if s != BF16}:
        return None
    quantized = BYTES_PER_PARAMETER[Scheme(scheme)]
    per_parameter = (1 - UNQUANTIZED_SHARE) * quantized + UNQUANTIZED_SHARE * BYTES_PER_PARAMETER[
        BF16
    ]
    return max(int(artifact_bytes / per_parameter), 1)
