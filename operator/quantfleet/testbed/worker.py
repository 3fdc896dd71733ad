"""The SIMULATED GPU worker: stands in for the Job programs on kwok's nodes, where no container
runs. It gives each quantfleet Job pod an exit code and a schema-valid result (marked
`simulated: true`); kwok's `pod-complete-with-result` Stage then terminates the pod with them."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from quantfleet.api.contract import (
    JOB_CONTAINER,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_MODEL,
    MANAGED_BY,
    PROGRAM_COMPONENTS,
)
from quantfleet.api.enums import EvalTask, ModelKind, Scheme
from quantfleet.api.results import (
    AnyResult,
    BenchmarkResult,
    EvaluateResult,
    FailureResult,
    Percentiles,
    ProgramName,
    QuantizeResult,
    TaskScore,
    dump_result,
    one_line,
)
from quantfleet.api.results import BenchmarkRun as BenchmarkRunResult
from quantfleet.testbed.fleet import KWOK_ANNOTATION, KWOK_ANNOTATION_VALUE

# Read by kwok's pod-complete-with-result Stage (kwok-stages.yaml): the container's termination
# message and exit code.
RESULT_ANNOTATION = "testbed.quantfleet.io/result"
EXIT_CODE_ANNOTATION = "testbed.quantfleet.io/exit-code"
PROGRAMS: tuple[ProgramName, ...] = ("quantize", "evaluate", "benchmark")
assert PROGRAMS == PROGRAM_COMPONENTS
POD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT} in ({','.join(PROGRAMS)})"
# Says in every synthesised result, wherever it is shown, that no program ran.
SIMULATED_VERSIONS = {"simulated": "quantfleet.testbed.worker"}

Outcome = tuple[int, str]
# Given a pod (the API's JSON, camelCase), the exit code and result JSON for it, or None to
# leave the pod running for now (asked again on the next pass).
Producer = Callable[[dict[str, Any]], Outcome | None]

log = logging.getLogger(__name__)


def program_of(pod: Mapping[str, Any]) -> ProgramName | None:
    component = pod.get("metadata", {}).get("labels", {}).get(LABEL_COMPONENT)
    return next((program for program in PROGRAMS if program == component), None)


def container_arguments(pod: Mapping[str, Any]) -> dict[str, str]:
    """The `main` container's `--flag value` / `--flag=value` pairs, with `QF_<FLAG>` env values
    (the programs' env overrides) underneath; flags without a value map to "true" and a flag
    given more than once (`--task=a --task=b`) joins its values with commas."""
    containers = pod.get("spec", {}).get("containers", [])
    main: Mapping[str, Any] = next((c for c in containers if c.get("name") == JOB_CONTAINER), {})
    found: dict[str, str] = {}
    for env in main.get("env") or []:
        name = str(env.get("name", ""))
        if name.startswith("QF_") and "value" in env:
            found[name.removeprefix("QF_").lower().replace("_", "-")] = str(env["value"])
    words = [str(word) for word in [*(main.get("command") or []), *(main.get("args") or [])]]
    given: set[str] = set()
    for index, word in enumerate(words):
        if not word.startswith("--"):
            continue
        key, equals, value = word[2:].partition("=")
        if not equals:
            following = words[index + 1] if index + 1 < len(words) else None
            value = following if following is not None and not following.startswith("--") else ""
        value = value or "true"
        found[key] = f"{found[key]},{value}" if key in given else value
        given.add(key)
    return found


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _jitter(seed: str, spread: float) -> float:
    """A deterministic offset in [-spread, spread] from `seed`: repeatable simulated numbers."""
    digest = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16)
    return (digest / 0xFFFFFFFF * 2 - 1) * spread


def dump_simulated(result: AnyResult) -> str:
    """The result's JSON with `simulated: true`, within the termination-message cap."""
    return dump_result(result.model_copy(update={"simulated": True}))


def simulated_failure(program: ProgramName, reason: str, exit_code: int = 1) -> Outcome:
    """A failed run: what a Job program writes when it cannot finish."""
    failure = FailureResult(program=program, reason=one_line(f"SIMULATED: {reason}"))
    return exit_code, dump_simulated(failure)


# Scheme -> (compressed-tensors format, weight bytes after / before): FP8 and INT8 halve BF16
# weights, 4-bit ones take a little over a quarter (group scales).
_FORMATS: dict[Scheme, tuple[str, float]] = {
    Scheme.FP8_DYNAMIC: ("float-quantized", 0.52),
    Scheme.W8A8: ("int-quantized", 0.52),
    Scheme.W4A16: ("pack-quantized", 0.28),
    Scheme.NVFP4: ("nvfp4-pack-quantized", 0.30),
}
_SIMULATED_SOURCE_BYTES = 16_000_000_000
# GuideLLM's sweep makes ten benchmarks (quantfleet_jobs.benchmark).
SWEEP_STEPS = 10


@dataclass
class SimulatedResults:
    """The default producer: schema-valid results synthesised from the pod's arguments.

    `recovery` is the overall recovery (percent) evaluate reports; `recovery_by_model` overrides
    it per QuantizedModel (the pod's `quantfleet.io/model` label). Numbers are deterministic per
    pod name so reruns show the same figures; none of them was measured."""

    recovery: float = 99.6
    recovery_by_model: dict[str, float] = field(default_factory=dict)

    def __call__(self, pod: dict[str, Any]) -> Outcome | None:
        program = program_of(pod)
        if program is None:
            return None
        arguments = container_arguments(pod)
        try:
            if program == "quantize":
                return 0, dump_simulated(self.quantize(arguments))
            if program == "evaluate":
                model = pod.get("metadata", {}).get("labels", {}).get(LABEL_MODEL, "")
                return 0, dump_simulated(self.evaluate(arguments, model))
            return 0, dump_simulated(self.benchmark(arguments, pod["metadata"]["name"]))
        except (ValueError, KeyError) as error:
            return simulated_failure(program, f"could not simulate {program}: {error}")

    def quantize(self, arguments: Mapping[str, str]) -> QuantizeResult:
        scheme = Scheme(arguments.get("scheme", Scheme.FP8_DYNAMIC.value))
        if scheme is Scheme.AUTO:
            raise ValueError("the quantize program takes a resolved scheme, not auto")
        kind = arguments.get("model-kind", "auto")
        model_kind = ModelKind(kind) if kind != "auto" else ModelKind.VISION_LANGUAGE
        format_name, ratio = _FORMATS[scheme]
        after = int(_SIMULATED_SOURCE_BYTES * ratio)
        return QuantizeResult(
            output=arguments.get("output", "simulated://output"),
            model_kind=model_kind,
            requested_scheme=scheme,
            scheme=scheme,
            format=format_name,
            recipe_overridden="recipe" in arguments,
            ignored_modules=1 if model_kind is ModelKind.TEXT else 2,
            calibration_samples=0 if scheme is Scheme.FP8_DYNAMIC else 512,
            size_before_bytes=_SIMULATED_SOURCE_BYTES,
            size_after_bytes=after,
            compression_ratio=round(_SIMULATED_SOURCE_BYTES / after, 3),
            duration_seconds=0.0,
            device="simulated",
            library_versions=SIMULATED_VERSIONS,
        )

    def evaluate(self, arguments: Mapping[str, str], model: str) -> EvaluateResult:
        recovery = self.recovery_by_model.get(model, self.recovery)
        tasks = _split(arguments.get("tasks")) or [EvalTask.CHARTQA.value]
        # Cached baseline scores arrive as JSON, task -> {metric, score} (the operator's cache).
        known: dict[str, dict[str, Any]] = json.loads(arguments.get("baseline-scores") or "{}")
        cached = {task: float(entry["score"]) for task, entry in known.items()}
        scores = []
        for task in tasks:
            baseline = round(float(cached.get(task, 0.80 + _jitter(task, 0.1))), 4)
            scores.append(
                TaskScore(
                    task=task,
                    metric="acc",
                    baseline=baseline,
                    quantized=round(baseline * recovery / 100, 4),
                    recovery=round(recovery, 2) if baseline else None,
                )
            )
        baseline_average = sum(score.baseline for score in scores) / len(scores)
        quantized_average = sum(score.quantized for score in scores) / len(scores)
        limit = arguments.get("limit")
        return EvaluateResult(
            engine="vllm" if arguments.get("engine", "vllm") == "vllm" else "hf",
            baseline=arguments.get("baseline", "simulated://baseline"),
            baseline_revision=arguments.get("baseline-revision"),
            quantized=arguments.get("quantized", "simulated://quantized"),
            limit=int(limit) if limit else None,
            baseline_cached=all(task in cached for task in tasks),
            tasks=scores,
            baseline_average=round(baseline_average, 4),
            quantized_average=round(quantized_average, 4),
            recovery=(
                round(quantized_average / baseline_average * 100, 2) if baseline_average else None
            ),
            duration_seconds=0.0,
            library_versions=SIMULATED_VERSIONS,
        )

    def benchmark(self, arguments: Mapping[str, str], pod_name: str) -> BenchmarkResult:
        # Workloads come as NAME or NAME:WIDTHxHEIGHT:PROMPT:OUTPUT; results carry the NAME.
        workloads = [workload.split(":")[0] for workload in _split(arguments.get("workloads"))] or [
            "docvqa"
        ]
        labels: list[str] = []
        for scenario in _split(arguments.get("scenarios")) or ["latency"]:
            # Labelled as the benchmark program labels GuideLLM's runs: one per rate.
            if scenario == "rate":
                rates = _split(arguments.get("rates")) or ["1", "2", "4"]
                labels.extend(f"rate@{float(rate):.3g}" for rate in rates)
            elif scenario == "sweep":
                labels.extend(f"sweep@{step + 1:.3g}" for step in range(SWEEP_STEPS))
            else:
                labels.append(scenario)
        runs = []
        for workload in workloads:
            for scenario in labels:
                rate = round(4.0 + _jitter(f"{pod_name}/{workload}/{scenario}", 1.0), 3)
                runs.append(
                    BenchmarkRunResult(
                        workload=workload,
                        scenario=scenario,
                        requests_per_second=rate,
                        output_tokens_per_second=round(rate * 128, 1),
                        ttft_ms=Percentiles(p50=180.0, p90=240.0, p99=320.0),
                        itl_ms=Percentiles(p50=12.0, p90=15.0, p99=21.0),
                        latency_s=Percentiles(p50=1.8, p90=2.3, p99=3.1),
                        successful=200,
                        errored=0,
                        error_rate=0.0,
                    )
                )
        return BenchmarkResult(
            target=arguments.get("target", "simulated://endpoint"),
            model=arguments.get("model", "simulated"),
            runs=runs[:12],
            max_error_rate=float(arguments.get("max-error-rate", "0.01")),
            report=arguments.get("output", "simulated://report"),
            duration_seconds=0.0,
            library_versions=SIMULATED_VERSIONS,
        )


default_producer: Producer = SimulatedResults()


class SimulatedWorker:
    """Finds Running quantfleet Job pods on kwok nodes and annotates each with its outcome once.

    `run_once()` makes one pass; `start()`/`stop()` run passes in a daemon thread every
    `interval` seconds. `producer` may be replaced while running (tests switch outcomes)."""

    def __init__(
        self,
        api: client.ApiClient,
        producer: Producer = default_producer,
        *,
        namespace: str | None = None,
        interval: float = 0.3,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.producer = producer
        self.namespace = namespace
        self.interval = interval
        self.completed: list[str] = []
        self.errors: list[str] = []
        self.passes = 0  # finished passes: lets a test wait for "the worker has looked"
        self._kwok_nodes: set[str] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[str]:
        """Annotate every pod that is ready for an outcome; returns their `namespace/name`s."""
        done = []
        for pod in self._running_pods():
            metadata = pod["metadata"]
            if RESULT_ANNOTATION in (metadata.get("annotations") or {}):
                continue
            if not self._on_kwok_node(pod.get("spec", {}).get("nodeName")):
                continue
            outcome = self.producer(pod)
            if outcome is None:
                continue
            exit_code, result = outcome
            key = f"{metadata['namespace']}/{metadata['name']}"
            patch = {
                "metadata": {
                    "annotations": {
                        RESULT_ANNOTATION: result,
                        EXIT_CODE_ANNOTATION: str(int(exit_code)),
                    }
                }
            }
            try:
                self.core.patch_namespaced_pod(metadata["name"], metadata["namespace"], patch)
            except client.ApiException as error:
                if error.status != 404:  # a pod deleted meanwhile needs no outcome
                    raise
                continue
            log.info("Annotated pod %s with a SIMULATED result (exit code %d)", key, exit_code)
            done.append(key)
        self.completed.extend(done)
        self.passes += 1
        return done

    def run(self, timeout: float | None = None) -> None:
        """Make passes until `stop()` is called or `timeout` seconds have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception as error:  # keep simulating through API hiccups; tests read errors
                self.errors.append(one_line(f"{type(error).__name__}: {error}"))
                log.warning("Simulated worker pass failed: %s", self.errors[-1])
            if deadline is not None and time.monotonic() >= deadline:
                return
            self._stopping.wait(self.interval)

    def start(self) -> SimulatedWorker:
        """Run passes in a daemon thread until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, name="simulated-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _running_pods(self) -> list[dict[str, Any]]:
        options: dict[str, Any] = {
            "label_selector": POD_SELECTOR,
            "field_selector": "status.phase=Running",
            "_preload_content": False,
        }
        if self.namespace:
            response = self.core.list_namespaced_pod(self.namespace, **options)
        else:
            response = self.core.list_pod_for_all_namespaces(**options)
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def _on_kwok_node(self, node_name: str | None) -> bool:
        """Only pods kwok runs get simulated outcomes; a real node runs the real program."""
        if not node_name:
            return False
        if node_name not in self._kwok_nodes:
            try:
                node = self.core.read_node(node_name)
            except client.ApiException as error:
                if error.status == 404:
                    return False
                raise
            annotations = node.metadata.annotations or {}
            if annotations.get(KWOK_ANNOTATION) != KWOK_ANNOTATION_VALUE:
                return False
            self._kwok_nodes.add(node_name)
        return True
