"""The simulated worker and the Job programs cannot drift: for the pod the operator builds, the
worker's result and what the program's own summarising code makes of the same measurements reach
status identically (task names, run labels, speed-up metrics, artifact), only `simulated` aside."""

from datetime import UTC, datetime
from typing import Any

import pytest

from quantfleet.api.benchmarkrun import BenchmarkRunSpec, BenchmarkRunStatus
from quantfleet.api.contract import BASELINE_TARGET, SWEEP_THROUGHPUT, harness_task
from quantfleet.api.enums import EvalTask, ModelKind, Scheme
from quantfleet.api.quantizedmodel import QuantizedModelSpec, QuantizedModelStatus
from quantfleet.api.results import (
    AnyResult,
    BenchmarkResult,
    EvaluateResult,
    QuantizeResult,
    parse_result,
)
from quantfleet.api.settings import OperatorSettings
from quantfleet.builders.benchmark import SystemUnderTest, build_benchmark_job
from quantfleet.builders.benchmark_status import TargetProgress, build_benchmark_status
from quantfleet.builders.jobs import (
    artifact_id,
    build_evaluate_job,
    build_gpu_job_placement,
    build_quantize_job,
)
from quantfleet.builders.status import JobObservation, Observed, build_status
from quantfleet.planning.inventory import build_inventory
from quantfleet.planning.planner import Plan, PlanRequest, plan_placement
from quantfleet.testbed.fleet import build_nodes, load_fleet
from quantfleet.testbed.worker import SimulatedResults, pod_arguments
from quantfleet_jobs import benchmark, evaluate, quantize

Json = dict[str, Any]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCHEME = Scheme.W8A8
TASKS = [EvalTask.MMMU, EvalTask.MGSM, EvalTask.CHARTQA]
SPEC = QuantizedModelSpec.model_validate(
    {
        "source": {"uri": "hf://Qwen/Qwen2.5-VL-7B-Instruct", "kind": "vision-language",
                   "parametersBillions": 8.3},
        "quantization": {"scheme": SCHEME.value},
        "output": {"uri": "pvc://models/qwen-w8a8"},
        "evaluation": {"tasks": [t.value for t in TASKS], "limit": 20},
    }
)  # fmt: skip
OWNER: Json = {
    "apiVersion": "quantfleet.io/v1alpha1",
    "kind": "QuantizedModel",
    "metadata": {"name": "qwen", "namespace": "ml", "uid": "u-1", "generation": 1},
}


def make_plan() -> Plan:
    plan = plan_placement(
        PlanRequest(parameters=8_300_000_000, scheme=SCHEME),
        build_inventory(build_nodes(load_fleet())),
    )
    assert isinstance(plan, Plan), plan
    return plan


def pod_of(job: Json) -> Json:
    """The pod a Job's template makes, as the worker lists it."""
    template = job["spec"]["template"]
    name = job["metadata"]["name"] + "-x1y2z"
    return {"metadata": {**template["metadata"], "name": name}, "spec": template["spec"]}


def worker_result(pod: Json) -> AnyResult:
    exit_code, text = SimulatedResults()(pod) or (None, "")
    assert exit_code == 0, text
    return parse_result(text)


def real(result: AnyResult) -> AnyResult:
    """The result as a real run would mark it."""
    return result.model_copy(update={"simulated": False})


def qm_status(quantized: QuantizeResult, evaluated: EvaluateResult) -> QuantizedModelStatus:
    observed = Observed(
        generation=1,
        plan=make_plan(),
        artifact_id=artifact_id(SPEC, SCHEME),
        quantize=JobObservation("q", "Succeeded", quantized),
        evaluate=JobObservation("e", "Succeeded", evaluated),
    )
    return build_status(SPEC, observed, [], NOW)


def test_a_quantize_and_evaluate_pod_reach_status_as_the_programs_would_put_them() -> None:
    placement = build_gpu_job_placement(0, [])
    settings = OperatorSettings()
    quantize_pod = pod_of(build_quantize_job(OWNER, SPEC, SCHEME, placement, settings))
    cached = {"mgsm": {"metric": "exact_match,flexible-extract", "score": 0.5}}
    evaluate_pod = pod_of(
        build_evaluate_job(OWNER, SPEC, artifact_id(SPEC, SCHEME), ModelKind.VISION_LANGUAGE,
                           placement, 2, cached, settings)
    )  # fmt: skip
    simulated_quantize = worker_result(quantize_pod)
    simulated_evaluate = worker_result(evaluate_pod)
    assert isinstance(simulated_quantize, QuantizeResult)
    assert isinstance(simulated_evaluate, EvaluateResult)

    # The programs' own code over the same pods and the same measurements.
    quantize_args = pod_arguments(quantize_pod)
    by_program_quantize = quantize.summarise(
        quantize_args,
        kind=simulated_quantize.model_kind,
        saved_config={
            "quantization_config": {
                "quant_method": "compressed-tensors",
                "format": "int-quantized",
                "config_groups": {
                    "group_0": {
                        "weights": {"num_bits": 8, "type": "int"},
                        "input_activations": {"num_bits": 8, "type": "int", "dynamic": True},
                    }
                },
                "ignore": quantize.ignore_patterns(ModelKind.VISION_LANGUAGE, quantize_args.ignore),
            }
        },
        output=quantize_args.output,
        calibration_samples=simulated_quantize.calibration_samples,
        size_before=simulated_quantize.size_before_bytes,
        size_after=simulated_quantize.size_after_bytes,
        duration_seconds=simulated_quantize.duration_seconds,
        device=simulated_quantize.device,
        versions=simulated_quantize.library_versions,
    )
    evaluate_args = pod_arguments(evaluate_pod)
    tasks = evaluate.requested_tasks(evaluate_args)

    def lm_eval_results(side: str) -> Json:
        """lm-eval's answer for one model: keyed by the harness names it ran."""
        return {
            "results": {
                name: {"alias": t.task, t.metric: getattr(t, side)}
                for t in simulated_evaluate.tasks
                for name in harness_task(t.task).runs
            }
        }

    by_program_evaluate = evaluate.summarise(
        evaluate_args,
        tasks,
        evaluate.read_scores(lm_eval_results("baseline"), tasks),
        evaluate.read_scores(lm_eval_results("quantized"), tasks),
        engine=simulated_evaluate.engine,
        baseline_cached=False,
        duration_seconds=simulated_evaluate.duration_seconds,
        versions=simulated_evaluate.library_versions,
    )

    simulated = qm_status(simulated_quantize, simulated_evaluate)
    by_program = qm_status(by_program_quantize, by_program_evaluate)
    assert simulated.recovery is not None
    assert by_program.recovery is not None
    assert [t.task for t in simulated.recovery.tasks] == [t.value for t in TASKS]
    assert simulated.recovery.tasks[1].baseline == 0.5  # the operator's cache, by the CRD name
    assert simulated.recovery.model_copy(update={"simulated": False}) == by_program.recovery
    assert simulated.artifact is not None
    assert simulated.artifact.model_copy(update={"simulated": False}) == by_program.artifact
    assert evaluate_args.tensor_parallel_size == 2
    assert real(simulated_quantize) == by_program_quantize
    assert real(simulated_evaluate) == by_program_evaluate


RUN_SPEC = BenchmarkRunSpec.model_validate(
    {
        "targets": [{"name": "w8a8", "modelRef": {"name": "qwen"}}],
        "baseline": {"endpoint": {"url": "http://bf16.ml.svc:8000", "model": "qwen-bf16"}},
        "workloads": [{"name": "doc", "preset": "docvqa"}],
        "scenarios": [{"kind": "latency"}, {"kind": "throughput"}, {"kind": "sweep", "steps": 4}],
    }
)


def guidellm_report(strategies: list[Json], requests_per_second: float) -> Json:
    """A GuideLLM 0.8.1 JSON report, reduced to the fields the program reads."""

    def metric(mean: float) -> Json:
        return {"successful": {"mean": mean,
                               "percentiles": {"p50": mean, "p90": mean, "p99": mean}}}  # fmt: skip

    return {
        "benchmarks": [
            {
                "config": {"strategy": strategy},
                "metrics": {
                    "request_totals": {"successful": 50, "errored": 0},
                    "requests_per_second": metric(requests_per_second),
                    "output_tokens_per_second": metric(requests_per_second * 128),
                    "time_to_first_token_ms": metric(150.0),
                    "inter_token_latency_ms": metric(10.0),
                    "request_latency": metric(1.5),
                },
            }
            for strategy in strategies
        ]
    }


# What GuideLLM runs for each scenario (a sweep of 4: synchronous, throughput, two rates).
GUIDELLM_STRATEGIES: dict[str, list[Json]] = {
    "latency": [{"type_": "synchronous"}],
    "throughput": [{"type_": "throughput", "max_concurrency": 64}],
    "sweep": [
        {"type_": "synchronous"},
        {"type_": "throughput", "max_concurrency": 64},
        {"type_": "constant", "rate": 1.5},
        {"type_": "constant", "rate": 3.25},
    ],
}


def run_status(results: dict[str, BenchmarkResult]) -> BenchmarkRunStatus:
    progress = [
        TargetProgress(name, JobObservation(f"{name}-bench", "Succeeded", result))
        for name, result in results.items()
    ]
    return build_benchmark_status(RUN_SPEC, progress, 1, [], NOW)


@pytest.mark.parametrize(
    "speed", [pytest.param(1.0, id="target as fast"), pytest.param(2.0, id="target twice as fast")]
)
def test_benchmark_pods_reach_status_with_the_programs_labels_and_speedups(speed: float) -> None:
    owner = {**OWNER, "kind": "BenchmarkRun", "metadata": {**OWNER["metadata"], "name": "cmp"}}
    endpoints = {
        BASELINE_TARGET: SystemUnderTest(
            BASELINE_TARGET, "http://bf16.ml.svc:8000", "qwen-bf16", "hf://Qwen/Q"
        ),
        "w8a8": SystemUnderTest("w8a8", "http://qwen-vllm.ml.svc:8000", "qwen", "hf://Qwen/Q"),
    }
    pods = {
        name: pod_of(build_benchmark_job(owner, RUN_SPEC, endpoint, OperatorSettings()))
        for name, endpoint in endpoints.items()
    }
    simulated: dict[str, BenchmarkResult] = {}
    by_program: dict[str, BenchmarkResult] = {}
    for name, pod in pods.items():
        result = worker_result(pod)
        assert isinstance(result, BenchmarkResult)
        simulated[name] = result
        args = pod_arguments(pod)
        plan = benchmark.plan_runs(args)
        rps = 2.0 * (speed if name != BASELINE_TARGET else 1.0)
        runs = [
            run
            for w in plan.workloads
            for s in plan.scenarios
            for run in benchmark.summarise(guidellm_report(GUIDELLM_STRATEGIES[s], rps), w.name, s)
        ]
        by_program[name] = benchmark.result_of(
            args, runs, report=args.output, duration_seconds=0.0, versions={}
        )

    from_worker, from_program = run_status(simulated), run_status(by_program)

    def keys(status: BenchmarkRunStatus) -> list[tuple[str, str, str]]:
        return [(r.target, r.workload, r.scenario.split("@")[0]) for r in status.results]

    def metrics(status: BenchmarkRunStatus) -> list[tuple[str, str]]:
        # A sweep's constant steps run at rates measured per target, so they pair only by
        # chance; the named benchmarks always do.
        return [(s.scenario, s.metric) for s in status.speedups if "@" not in s.scenario]

    assert keys(from_worker) == keys(from_program)
    assert metrics(from_worker) == metrics(from_program)
    assert metrics(from_worker) == [
        ("latency", "latency"),
        ("throughput", "throughput"),
        ("sweep:synchronous", "latency"),
        (SWEEP_THROUGHPUT, "throughput"),
    ]
    labels = [r.scenario for r in from_worker.results if r.target == BASELINE_TARGET]
    assert labels[:4] == ["latency", "throughput", "sweep:synchronous", SWEEP_THROUGHPUT]
    assert [label.split("@")[0] for label in labels[4:]] == ["sweep", "sweep"]
    sweep_throughput = next(s for s in from_program.speedups if s.scenario == SWEEP_THROUGHPUT)
    assert sweep_throughput.value == speed
