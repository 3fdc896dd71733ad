"""A BenchmarkRun's children: one benchmark Job per target (the baseline included) and, when the
baseline is a QuantizedModel's source, a temporary BF16 vLLM Deployment and Service on the same
GPU family with the GPU count BF16 needs. Pure builders: no clock, no I/O."""

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
    benchmarks_per_scenario,
)
from quantfleet.api.enums import ScenarioKind
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.children import Json, child_name, digest, labels, owned
from quantfleet.builders.jobs import build_job, kueue_queue
from quantfleet.builders.serving import (
    PORT,
    VllmModel,
    build_vllm_pod_template,
    build_vllm_service,
)
from quantfleet.builders.storage import claim_volumes
from quantfleet.planning.baseline import BaselinePlan

# The program writes GuideLLM's full JSON and HTML reports here (a scratch emptyDir): the spec
# names no storage for them, so only the compact summary outlives the pod (in the report
# ConfigMap); see BenchmarkResult.report.
REPORT_DIR = "/tmp/reports"
# Bounds a benchmark Job whatever the limits say; GuideLLM stops each run on its own limits.
BENCHMARK_DEADLINE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class SystemUnderTest:
    """A resolved benchmark target: where to send requests and how to make prompts for it
    (the spec's plain `Endpoint` is one way to name it)."""

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


def sweep_steps(spec: BenchmarkRunSpec) -> int:
    """The benchmarks a sweep makes: the most any sweep scenario asks for, else GuideLLM's."""
    steps = [s.steps for s in spec.scenarios if s.kind is ScenarioKind.SWEEP and s.steps]
    return max(steps, default=DEFAULT_SWEEP_STEPS)


def runs_per_target(spec: BenchmarkRunSpec) -> int:
    """How many benchmarks one target's Job makes: workloads x (rates, sweep steps, 1)."""
    rates = len({rate for s in spec.scenarios for rate in (s.rates or [])})
    kinds = {s.kind for s in spec.scenarios}
    steps = sweep_steps(spec)
    return len(spec.workloads) * sum(benchmarks_per_scenario(k, rates, steps) for k in kinds)


def too_many_runs(spec: BenchmarkRunSpec) -> str | None:
    """Why the program could not report this spec in one result, or None."""
    runs = runs_per_target(spec)
    if runs <= MAX_BENCHMARKS:
        return None
    return (
        f"{runs} benchmarks per target (workloads x scenarios, a sweep counts its steps, "
        f"{sweep_steps(spec)} here); one Job reports at most {MAX_BENCHMARKS}: split the run"
    )


def report_location(owner_name: str, spec: BenchmarkRunSpec, endpoint: SystemUnderTest) -> str:
    """Where this target's full reports go: under spec.reportUri, else the pod's scratch."""
    if spec.report_uri is None:
        return REPORT_DIR
    return f"{spec.report_uri.rstrip('/')}/{owner_name}/{endpoint.name}"


def benchmark_args(spec: BenchmarkRunSpec, endpoint: SystemUnderTest, report: str) -> list[str]:
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
    if ScenarioKind.SWEEP in kinds:
        args.append(f"--sweep-steps={sweep_steps(spec)}")
    if spec.limits.max_requests is not None:
        args.append(f"--max-requests={spec.limits.max_requests}")
    if spec.limits.max_seconds is not None:
        args.append(f"--max-seconds={spec.limits.max_seconds}")
    return args


def build_benchmark_job(
    owner: Json, spec: BenchmarkRunSpec, endpoint: SystemUnderTest, settings: OperatorSettings
) -> Json:
    """The Job benchmarking one endpoint with every workload and scenario of the run. Its name
    carries the hash of its inputs, so a changed spec makes a new Job."""
    report = report_location(owner["metadata"]["name"], spec, endpoint)
    args = benchmark_args(spec, endpoint, report)
    resources = spec.resources.model_dump(mode="json")
    inputs = digest(endpoint.name, args, resources)
    volumes, mounts = claim_volumes(writable=[report], read_only=endpoint.read_only_uris)
    job = build_job(
        owner,
        child_name(owner["metadata"]["name"], "bench", inputs),
        "benchmark",
        inputs,
        module="quantfleet_jobs.benchmark",
        args=args,
        env=[],
        token_secret_ref=endpoint.token_secret_ref,
        volumes=volumes,
        mounts=mounts,
        placement={},  # a CPU client: it needs no GPU
        resources=resources,
        deadline=BENCHMARK_DEADLINE_SECONDS,
        settings=settings,
        owner_label=LABEL_BENCHMARK_RUN,
        queue=kueue_queue(spec.queue_name, settings),
    )
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        meta["labels"][LABEL_TARGET] = endpoint.name
    return job


def _rates(scenarios: list[Scenario]) -> list[float]:
    """Every rate of the rate scenarios, in order, once (the program takes one list)."""
    return list(dict.fromkeys(rate for s in scenarios for rate in (s.rates or [])))


def baseline_name(owner_name: str) -> str:
    """The baseline Deployment's and Service's name."""
    return child_name(owner_name, BASELINE_TARGET)


def baseline_endpoint(owner_name: str, namespace: str) -> str:
    return f"http://{baseline_name(owner_name)}.{namespace}.svc:{PORT}"


def build_baseline_deployment(
    owner: Json,
    model: QuantizedModelSpec,
    served_name: str,
    plan: BaselinePlan,
    settings: OperatorSettings,
) -> Json:
    """One vLLM replica serving the QuantizedModel's unquantized source, the same pod as the
    model's own (serving.build_vllm_pod_template), with the model's serving options so both
    sides see the same limits; the model's extra arguments stay with the quantized side."""
    owner_name = owner["metadata"]["name"]
    pod_labels = labels(LABEL_BENCHMARK_RUN, owner_name, BASELINE_TARGET)
    source = VllmModel(
        uri=model.source.uri,
        served_name=served_name,
        serving=model.serving,
        dtype=plan.dtype,
        revision=model.source.revision,
        token_secret_ref=model.source.token_secret_ref,
    )
    deployment_spec = {
        "replicas": 1,
        "selector": {"matchLabels": _selector(owner_name)},
        "template": build_vllm_pod_template(source, plan, pod_labels, settings),
    }
    return owned(
        owner, "apps/v1", "Deployment", baseline_name(owner_name), pod_labels,
        spec=deployment_spec,
    )  # fmt: skip


def build_baseline_service(owner: Json) -> Json:
    """A ClusterIP Service in front of the baseline pod."""
    owner_name = owner["metadata"]["name"]
    return build_vllm_service(
        owner,
        baseline_name(owner_name),
        _selector(owner_name),
        labels(LABEL_BENCHMARK_RUN, owner_name, BASELINE_TARGET),
    )


def _selector(owner_name: str) -> dict[str, str]:
    return {LABEL_BENCHMARK_RUN: owner_name, LABEL_COMPONENT: BASELINE_TARGET}
