"""BenchmarkRun: serving benchmarks of quantized models against a baseline under the same load."""

from typing import Any

from pydantic import Field

from quantfleet.api.common import (
    CONDITIONS_LIST,
    DNS_LABEL,
    ApiModel,
    Condition,
    LocalObjectRef,
    Percentiles,
    Resources,
    Rule,
    clean_path_rule,
    kueue_queue_field,
    object_name_rule,
    one_of,
    printable_rule,
)
from quantfleet.api.contract import (
    BASELINE_TARGET,
    DEFAULT_SWEEP_STEPS,
    MAX_BENCHMARKS,
    WORKLOAD_PRESETS,
    WorkloadShape,
)
from quantfleet.api.enums import ScenarioKind, WorkloadPreset
from quantfleet.api.quantizedmodel import OUTPUT_URI


class Endpoint(ApiModel):
    """A plain OpenAI-compatible server."""

    url: str = Field(
        pattern=r"^https?://\S+$", max_length=1024, description="Base URL, e.g. http://svc:8000."
    )
    model: str = Field(max_length=512, description="Model name the server answers to.")

    rules = (printable_rule("model"),)


# The baseline's Job, labels and results already go by this name: a target taking it would
# overwrite them.
RESERVED_TARGET_NAME = f"'{BASELINE_TARGET}' is the baseline's name; choose another target name"


class Target(ApiModel):
    """One system under test: a QuantizedModel's Service or an endpoint."""

    name: str = Field(
        pattern=DNS_LABEL,
        max_length=40,
        description=f"Label of this target in results; not '{BASELINE_TARGET}' (the baseline's).",
    )
    model_ref: LocalObjectRef | None = Field(
        default=None, description="A QuantizedModel in this namespace; its Service is benchmarked."
    )
    endpoint: Endpoint | None = Field(default=None, description="A plain OpenAI-compatible server.")

    rules = (
        one_of("modelRef", "endpoint"),
        Rule(
            f"self.name != '{BASELINE_TARGET}'",
            lambda target: target.name != BASELINE_TARGET,
            RESERVED_TARGET_NAME,
            ".name",
        ),
    )


class Baseline(ApiModel):
    """What speed-ups are measured against: an endpoint, or a QuantizedModel's source in BF16."""

    model_ref: LocalObjectRef | None = Field(
        default=None,
        description=(
            "Serve this QuantizedModel's unquantized source on the same GPU family for the run, "
            "then tear it down."
        ),
    )
    endpoint: Endpoint | None = Field(default=None, description="An already-served baseline.")

    rules = (one_of("modelRef", "endpoint"),)


class Workload(ApiModel):
    """The requests sent: a study preset, or a custom image size and token counts."""

    name: str = Field(pattern=DNS_LABEL, max_length=40, description="Label in results.")
    preset: WorkloadPreset | None = Field(
        default=None, description="docvqa, visual-reasoning or captioning."
    )
    image_width: int | None = Field(default=None, ge=1, le=16384, description="Image width, px.")
    image_height: int | None = Field(default=None, ge=1, le=16384, description="Image height, px.")
    prompt_tokens: int | None = Field(default=None, ge=0, le=131072, description="Prompt tokens.")
    output_tokens: int | None = Field(default=None, ge=1, le=131072, description="Output tokens.")

    rules = (
        Rule(
            "has(self.preset) != has(self.outputTokens)",
            lambda w: (w.preset is None) != (w.output_tokens is None),
            "set either preset or a custom shape with outputTokens",
            ".outputTokens",
        ),
        Rule(
            "has(self.imageWidth) == has(self.imageHeight)",
            lambda w: (w.image_width is None) == (w.image_height is None),
            "imageWidth and imageHeight go together",
            ".imageHeight",
        ),
        Rule(
            "!has(self.preset) || (!has(self.imageWidth) && !has(self.promptTokens))",
            lambda w: w.preset is None or (w.image_width is None and w.prompt_tokens is None),
            "a preset fixes the shape; drop imageWidth, imageHeight and promptTokens",
            ".preset",
        ),
    )

    def shape(self) -> WorkloadShape:
        """The request shape, from the preset or the custom fields (0 × 0 means text only)."""
        if self.preset is not None:
            return WORKLOAD_PRESETS[self.preset]
        return WorkloadShape(
            self.image_width or 0,
            self.image_height or 0,
            self.prompt_tokens or 0,
            self.output_tokens or 0,
        )


class Scenario(ApiModel):
    """How load is offered."""

    kind: ScenarioKind = Field(description="latency, throughput, sweep or rate.")
    rates: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Requests per second for kind rate, one benchmark per rate.",
    )
    steps: int | None = Field(
        default=None,
        ge=2,
        le=20,
        description="Benchmarks a sweep makes: one synchronous, one throughput and constant "
        f"rates between them (GuideLLM's sweep_size); {DEFAULT_SWEEP_STEPS} when unset. Each "
        f"counts against the {MAX_BENCHMARKS} benchmarks one Job reports.",
    )

    rules = (
        Rule(
            "(self.kind == 'rate') == has(self.rates)",
            lambda s: (s.kind == ScenarioKind.RATE) == (s.rates is not None),
            "rates go with kind rate",
            ".rates",
        ),
        Rule(
            "!has(self.steps) || self.kind == 'sweep'",
            lambda s: s.steps is None or s.kind == ScenarioKind.SWEEP,
            "steps go with kind sweep",
            ".steps",
        ),
        Rule(
            "!has(self.rates) || self.rates.all(r, r > 0.0)",
            lambda s: s.rates is None or all(rate > 0 for rate in s.rates),
            "rates must be positive",
            ".rates",
        ),
    )


class Limits(ApiModel):
    """When each benchmark stops: after a duration, a request count, or whichever comes first."""

    max_seconds: int | None = Field(
        default=None, ge=1, le=86400, description="Stop after this many seconds."
    )
    max_requests: int | None = Field(
        default=None, ge=1, le=1000000, description="Stop after this many requests."
    )

    rules = (
        Rule(
            "has(self.maxSeconds) || has(self.maxRequests)",
            lambda limits: limits.max_seconds is not None or limits.max_requests is not None,
            "set maxSeconds or maxRequests",
        ),
    )


def unique_names(items: list[Target] | list[Workload]) -> bool:
    names = [item.name for item in items]
    return len(names) == len(set(names))


class BenchmarkRunSpec(ApiModel):
    """The comparison to run."""

    targets: list[Target] = Field(min_length=1, max_length=8, description="Systems under test.")
    baseline: Baseline | None = Field(default=None, description="What speed-ups are relative to.")
    workloads: list[Workload] = Field(min_length=1, max_length=8, description="Request shapes.")
    scenarios: list[Scenario] = Field(min_length=1, max_length=8, description="Load patterns.")
    limits: Limits = Field(
        default_factory=lambda: Limits(max_requests=200), description="Per-benchmark stop rule."
    )
    max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Fraction of failed requests above which the run fails.",
    )
    parallel: bool = Field(
        default=False, description="Benchmark targets at once instead of one after another."
    )
    report_uri: str | None = Field(
        default=None,
        pattern=OUTPUT_URI,
        max_length=1024,
        description=(
            "Where to keep GuideLLM's full reports (pvc://claim/path or s3://bucket/path), one "
            "folder per run and target; without it only the compact results are kept."
        ),
    )
    queue_name: str | None = kueue_queue_field(
        "Kueue LocalQueue in this namespace for the benchmark Jobs (created suspended; Kueue "
        "admits them within its quota). Unset: the operator's --kueue-queue-name, if any."
    )
    ready_timeout_seconds: int = Field(
        default=1800, ge=0, le=86400, description="How long to wait for a target to be Ready."
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests={"cpu": "2", "memory": "4Gi"}, limits={"cpu": "4", "memory": "8Gi"}
        ),
        description=(
            "The benchmark pods' CPU and memory (GuideLLM's client: it makes the prompts and "
            "images and keeps the load up), replacing the default as a whole."
        ),
    )

    rules = (
        Rule(
            "self.targets.all(t, self.targets.exists_one(u, u.name == t.name))",
            lambda spec: unique_names(spec.targets),
            "target names must be unique",
            ".targets",
        ),
        Rule(
            "self.workloads.all(w, self.workloads.exists_one(v, v.name == w.name))",
            lambda spec: unique_names(spec.workloads),
            "workload names must be unique",
            ".workloads",
        ),
        clean_path_rule("reportUri"),
    )


class Result(ApiModel):
    """One benchmark: a target under one workload and scenario."""

    target: str = Field(description="Target name (or 'baseline').")
    workload: str = Field(description="Workload name.")
    scenario: str = Field(description="Scenario, with its rate where it has one.")
    requests_per_second: float = Field(description="Completed requests per second.")
    output_tokens_per_second: float = Field(description="Generated tokens per second.")
    ttft_ms: Percentiles = Field(description="Time to first token, milliseconds.")
    itl_ms: Percentiles = Field(description="Inter-token latency, milliseconds.")
    latency_seconds: Percentiles = Field(description="Request latency, seconds.")
    error_rate: float = Field(description="Fraction of requests that failed.")
    simulated: bool = Field(
        default=False, description="True when the numbers come from a simulated server."
    )


class Speedup(ApiModel):
    """A target against the baseline under the same workload and scenario."""

    target: str = Field(description="Target name.")
    workload: str = Field(description="Workload name.")
    scenario: str = Field(description="Scenario.")
    metric: str = Field(description="latency (p50 ratio) or throughput (requests/s ratio).")
    value: float = Field(description="Baseline over target for latency, target over baseline else.")


class BenchmarkRunStatus(ApiModel):
    """Results as observed."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this status reflects."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=CONDITIONS_LIST,
        description="Running, Succeeded, Failed.",
    )
    results: list[Result] = Field(default_factory=list, description="One entry per benchmark.")
    speedups: list[Speedup] = Field(default_factory=list, description="Against the baseline.")
    best_speedup: float | None = Field(default=None, description="Largest speed-up in speedups.")
    workloads: str | None = Field(default=None, description="Workload names, for the table.")
    report_config_map: str | None = Field(
        default=None, description="ConfigMap holding the full GuideLLM reports."
    )
    jobs: list[str] = Field(default_factory=list, description="Benchmark Jobs, in run order.")


class BenchmarkRun(ApiModel):
    """Serving benchmarks of targets against a baseline, with speed-ups in status."""

    api_version: str = Field(description="quantfleet.io/v1alpha1.")
    kind: str = Field(description="BenchmarkRun.")
    metadata: dict[str, Any] = Field(description="Standard object metadata.")
    spec: BenchmarkRunSpec = Field(description="Desired runs.")
    status: BenchmarkRunStatus | None = Field(default=None, description="Observed results.")

    rules = (object_name_rule(),)
