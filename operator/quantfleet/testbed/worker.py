"""The SIMULATED GPU worker: stands in for the Job programs on kwok's nodes, where no container
runs. It gives each quantfleet Job pod an exit code and a schema-valid result (marked
`simulated: true`); kwok's `pod-complete-with-result` Stage then terminates the pod with them."""

from __future__ import annotations

import argparse
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
    harness_task,
)
from quantfleet.api.enums import ModelKind, ScenarioKind, Scheme
from quantfleet.api.results import (
    AnyResult,
    BenchmarkResult,
    EvaluateResult,
    FailureResult,
    ProgramName,
    QuantizeResult,
    dump_result,
    one_line,
    parse_result,
)
from quantfleet.testbed.fleet import KWOK_ANNOTATION, KWOK_ANNOTATION_VALUE
from quantfleet_jobs import benchmark, evaluate, quantize
from quantfleet_jobs.common import JobError

# Read by kwok's pod-complete-with-result Stage (kwok-stages.yaml): the container's termination
# message and exit code.
RESULT_ANNOTATION = "testbed.quantfleet.io/result"
EXIT_CODE_ANNOTATION = "testbed.quantfleet.io/exit-code"
PROGRAMS: tuple[ProgramName, ...] = ("quantize", "evaluate", "benchmark")
assert PROGRAMS == PROGRAM_COMPONENTS
POD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT} in ({','.join(PROGRAMS)})"
# Says in every synthesised result, wherever it is shown, that no program ran.
SIMULATED_VERSIONS = {"simulated": "quantfleet.testbed.worker"}
# Each program's own argument parser, given the environment its flags' QF_* defaults come from.
PARSERS: dict[ProgramName, Callable[[Mapping[str, str]], argparse.ArgumentParser]] = {
    "quantize": quantize.build_parser,
    "evaluate": evaluate.build_parser,
    "benchmark": benchmark.build_parser,
}

Outcome = tuple[int, str]
# Given a pod (the API's JSON, camelCase), the exit code and result JSON for it, or None to
# leave the pod running for now (asked again on the next pass).
Producer = Callable[[dict[str, Any]], Outcome | None]

log = logging.getLogger(__name__)


def program_of(pod: Mapping[str, Any]) -> ProgramName | None:
    component = pod.get("metadata", {}).get("labels", {}).get(LABEL_COMPONENT)
    return next((program for program in PROGRAMS if program == component), None)


def job_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod's container that runs the Job program (empty if it has none)."""
    containers = pod.get("spec", {}).get("containers", [])
    return next((c for c in containers if c.get("name") == JOB_CONTAINER), {})


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's literal environment (values from references are left out)."""
    return {str(e["name"]): str(e["value"]) for e in container.get("env") or [] if "value" in e}


def pod_arguments(pod: Mapping[str, Any]) -> argparse.Namespace:
    """The Job container's arguments as its program reads them: the program's own parser over
    the container's args, with the container's env underneath (each flag's QF_* default).
    Arguments the program would refuse raise its JobError."""
    program = program_of(pod)
    if program is None:
        raise ValueError("not a Job program's pod")
    main = job_container(pod)
    environ = container_env(main)
    return PARSERS[program](environ).parse_args([str(word) for word in main.get("args") or []])


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


# What LLM Compressor writes into config.json per scheme (the program classifies it back), and
# weight bytes after / before: FP8 and INT8 halve BF16 weights, 4-bit ones take a little over
# a quarter (group scales).
_FP8 = {"num_bits": 8, "type": "float"}
_INT8 = {"num_bits": 8, "type": "int"}
_SCHEMES: dict[Scheme, tuple[str, dict[str, Any], float]] = {
    Scheme.FP8_DYNAMIC: (
        "float-quantized", {"weights": _FP8, "input_activations": {**_FP8, "dynamic": True}}, 0.52
    ),
    Scheme.W8A8: (
        "int-quantized", {"weights": _INT8, "input_activations": {**_INT8, "dynamic": True}}, 0.52
    ),
    Scheme.W4A16: ("pack-quantized", {"weights": {"num_bits": 4, "type": "int"}}, 0.28),
    Scheme.NVFP4: (
        "nvfp4-pack-quantized",
        {"weights": {"num_bits": 4, "type": "float"},
         "input_activations": {"num_bits": 4, "type": "float", "dynamic": "local"}},
        0.30,
    ),
}  # fmt: skip
_SIMULATED_SOURCE_BYTES = 16_000_000_000
# Latency percentiles of every simulated benchmark: (p50, p90, p99).
_TTFT_MS = (180.0, 240.0, 320.0)
_ITL_MS = (12.0, 15.0, 21.0)
_LATENCY_S = (1.8, 2.3, 3.1)
_REQUESTS = 200


@dataclass
class SimulatedResults:
    """The default producer: schema-valid results synthesised from the pod's arguments (read
    with the program's own parser) and summarised by the program's own code.

    `recovery` is the overall recovery (percent) evaluate reports; `recovery_by_model` overrides
    it per QuantizedModel (the pod's `quantfleet.io/model` label). Numbers are deterministic per
    pod name so reruns show the same figures; none of them was measured."""

    recovery: float = 99.6
    recovery_by_model: dict[str, float] = field(default_factory=dict)

    def __call__(self, pod: dict[str, Any]) -> Outcome | None:
        program = program_of(pod)
        if program is None:
            return None
        try:
            arguments = pod_arguments(pod)
            if program == "quantize":
                return 0, dump_simulated(self.quantize(arguments))
            if program == "evaluate":
                model = pod.get("metadata", {}).get("labels", {}).get(LABEL_MODEL, "")
                return 0, dump_simulated(self.evaluate(arguments, model))
            return 0, dump_simulated(self.benchmark(arguments, pod["metadata"]["name"]))
        except (JobError, ValueError, KeyError) as error:
            return simulated_failure(program, f"could not simulate {program}: {error}")

    def quantize(self, args: argparse.Namespace) -> QuantizeResult:
        """A checkpoint of the requested scheme, as config.json would describe it."""
        scheme = quantize.requested_scheme(args)
        kind = (
            ModelKind(args.model_kind) if args.model_kind != "auto" else ModelKind.VISION_LANGUAGE
        )
        format_name, group, ratio = _SCHEMES[scheme]
        saved = {
            "quantization_config": {
                "quant_method": "compressed-tensors",
                "format": format_name,
                "config_groups": {"group_0": group},
                "ignore": quantize.ignore_patterns(kind, args.ignore),
            }
        }
        return quantize.summarise(
            args,
            kind=kind,
            saved_config=saved,
            output=args.output,
            calibration_samples=0 if scheme in quantize.DATA_FREE else args.num_samples,
            size_before=_SIMULATED_SOURCE_BYTES,
            size_after=int(_SIMULATED_SOURCE_BYTES * ratio),
            duration_seconds=0.0,
            device="simulated",
            versions=SIMULATED_VERSIONS,
        )

    def evaluate(self, args: argparse.Namespace, model: str) -> EvaluateResult:
        """Scores per task at the configured recovery; baseline scores the operator passed are
        used as the program uses them."""
        tasks = evaluate.requested_tasks(args)
        recovery = self.recovery_by_model.get(model, self.recovery)
        known = evaluate.known_scores(args.baseline_scores, SIMULATED_VERSIONS)
        baseline = {
            task: known.get(task)
            or evaluate.Score(
                harness_task(task).metric or "acc,none", round(0.80 + _jitter(task, 0.1), 4)
            )
            for task in tasks
        }
        # What the harness would answer for the quantized model: keyed by its task names.
        harness_results = {
            "results": {
                name: {"alias": task, metric: value * recovery / 100}
                for task, (metric, value, *_) in baseline.items()
                for name in harness_task(task).runs
            }
        }
        return evaluate.summarise(
            args,
            tasks,
            baseline,
            evaluate.read_scores(harness_results, tasks),
            # The simulated GPU nodes run the evaluate image, which has vLLM.
            engine=evaluate.engine_for(args.engine, args.device, has_vllm=True),
            baseline_cached=all(task in known for task in tasks),
            duration_seconds=0.0,
            versions=SIMULATED_VERSIONS,
        )

    def benchmark(self, args: argparse.Namespace, pod_name: str) -> BenchmarkResult:
        """Each workload x scenario as GuideLLM would report it, summarised by the program."""
        plan = benchmark.plan_runs(args)
        runs = []
        for workload in plan.workloads:
            for scenario in plan.scenarios:
                seed = f"{pod_name}/{workload.name}/{scenario}"
                report = {
                    "benchmarks": [
                        _guidellm_benchmark(strategy, rate, workload.output_tokens)
                        for strategy, rate in _strategies(scenario, plan.rates, args, seed)
                    ]
                }
                runs.extend(benchmark.summarise(report, workload.name, scenario))
        return benchmark.result_of(
            args, runs, report=args.output, duration_seconds=0.0, versions=SIMULATED_VERSIONS
        )


def _strategies(
    scenario: str, rates: list[float], args: argparse.Namespace, seed: str
) -> list[tuple[dict[str, Any], float]]:
    """GuideLLM's strategies for one scenario, each with the requests/s it would measure: a
    sweep runs synchronous, throughput, then constant rates evenly between the two."""
    synchronous = round(0.5 + _jitter(seed + "/synchronous", 0.1), 3)
    throughput = round(4.0 + _jitter(seed + "/throughput", 1.0), 3)
    if scenario == ScenarioKind.LATENCY:
        return [({"type_": "synchronous"}, synchronous)]
    if scenario == ScenarioKind.THROUGHPUT:
        return [({"type_": "throughput", "max_concurrency": args.max_concurrency}, throughput)]
    if scenario == ScenarioKind.RATE:
        return [({"type_": "constant", "rate": rate}, min(rate, throughput)) for rate in rates]
    between = args.sweep_steps - 2
    constant = [
        synchronous + (throughput - synchronous) * i / between for i in range(1, between + 1)
    ]
    return [
        ({"type_": "synchronous"}, synchronous),
        ({"type_": "throughput", "max_concurrency": args.max_concurrency}, throughput),
        *(({"type_": "constant", "rate": rate}, rate) for rate in constant),
    ]


def _guidellm_benchmark(
    strategy: dict[str, Any], requests_per_second: float, output_tokens: int
) -> dict[str, Any]:
    """One benchmark shaped as GuideLLM 0.8.1's JSON report holds it (the fields the program's
    summariser reads)."""

    def metric(mean: float, percentiles: tuple[float, float, float]) -> dict[str, Any]:
        p50, p90, p99 = percentiles
        return {"successful": {"mean": mean, "percentiles": {"p50": p50, "p90": p90, "p99": p99}}}

    rps = (requests_per_second,) * 3
    return {
        "config": {"strategy": strategy},
        "metrics": {
            "request_totals": {"successful": _REQUESTS, "errored": 0},
            "requests_per_second": metric(requests_per_second, rps),
            "output_tokens_per_second": metric(
                requests_per_second * output_tokens, (requests_per_second * output_tokens,) * 3
            ),
            "time_to_first_token_ms": metric(_TTFT_MS[0], _TTFT_MS),
            "inter_token_latency_ms": metric(_ITL_MS[0], _ITL_MS),
            "request_latency": metric(_LATENCY_S[0], _LATENCY_S),
        },
    }


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
            what = "a SIMULATED" if parse_result(result).simulated else "a measured"
            log.info("Annotated pod %s with %s result (exit code %d)", key, what, exit_code)
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
