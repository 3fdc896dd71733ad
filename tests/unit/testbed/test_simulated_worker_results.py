"""The simulated worker's default producer: schema-valid results, read from the Job pod's own
arguments, always marked simulated."""

from typing import Any

import pytest

from quantfleet.api.contract import HUB_TOKEN_ENV, MOUNT_ROOT
from quantfleet.api.results import (
    BenchmarkResult,
    EvaluateResult,
    FailureResult,
    QuantizeResult,
    parse_result,
)
from quantfleet.testbed.worker import SimulatedResults, pod_arguments, program_of

# What every Job of the program carries (the operator's builders always pass these).
REQUIRED = {
    "quantize": ["--source=pvc://models/src", "--output=pvc://models/out"],
    "evaluate": ["--baseline=hf://org/base", "--quantized=pvc://models/out"],
    "benchmark": ["--target=http://q-vllm:8000", "--model=q", "--output=/tmp/reports"],
}


def make_pod(
    component: str = "quantize",
    args: list[str] | None = None,
    env: list[dict[str, str]] | None = None,
    model: str = "tiny",
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{model}-{component}-abc12",
            "labels": {
                "app.kubernetes.io/managed-by": "quantfleet",
                "quantfleet.io/component": component,
                "quantfleet.io/model": model,
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "command": ["python", "-m", f"quantfleet_jobs.{component}"],
                    "args": [*REQUIRED.get(component, []), *(args or [])],
                    "env": env or [],
                }
            ]
        },
    }


@pytest.mark.parametrize(
    ("args", "env", "want"),
    [
        pytest.param(["--scheme=W8A8"], [], {"scheme": "W8A8"}, id="flag=value"),
        pytest.param(["--scheme", "W4A16"], [], {"scheme": "W4A16"}, id="flag value"),
        pytest.param(
            ["--ignore=lm_head", "--ignore=re:.*visual.*"],
            [],
            {"ignore": ["lm_head", "re:.*visual.*"]},
            id="repeated flag, as the program collects it",
        ),
        pytest.param([], [], {"num_samples": 512, "mount_root": MOUNT_ROOT}, id="defaults"),
        pytest.param(
            [], [{"name": "QF_MOUNT_ROOT", "value": "/mnt"}], {"mount_root": "/mnt"}, id="env"
        ),
        pytest.param(
            ["--output=pvc://a/b"],
            [{"name": "QF_OUTPUT", "value": "pvc://x/y"}],
            {"output": "pvc://a/b"},
            id="flag over env",
        ),
        pytest.param(
            [],
            [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            {"hf_token_env": HUB_TOKEN_ENV},
            id="a secret reference has no value to read",
        ),
    ],
)
def test_pod_arguments_are_read_with_the_programs_parser(
    args: list[str], env: list[dict[str, Any]], want: dict[str, object]
) -> None:
    parsed = vars(pod_arguments(make_pod(args=args, env=env)))

    assert {key: parsed[key] for key in want} == want


def test_arguments_the_program_refuses_fail_the_pod_as_the_program_would() -> None:
    exit_code, text = SimulatedResults()(make_pod(args=["--schema=W8A8"])) or (None, "")

    result = parse_result(text)
    assert exit_code == 1
    assert isinstance(result, FailureResult)
    assert "unrecognized arguments: --schema=W8A8" in result.reason


@pytest.mark.parametrize(
    ("component", "want_program"),
    [
        pytest.param("quantize", "quantize", id="quantize Job"),
        pytest.param("evaluate", "evaluate", id="evaluate Job"),
        pytest.param("benchmark", "benchmark", id="benchmark Job"),
        pytest.param("serve", None, id="a vLLM server keeps running"),
        pytest.param("baseline", None, id="a baseline server keeps running"),
    ],
)
def test_program_of(component: str, want_program: str | None) -> None:
    assert program_of(make_pod(component)) == want_program


def test_quantize_result_reports_the_requested_scheme_and_output() -> None:
    pod = make_pod(args=["--scheme=W4A16", "--output=pvc://models/x", "--model-kind=text"])

    exit_code, text = SimulatedResults()(pod) or (None, "")

    result = parse_result(text)
    assert exit_code == 0
    assert isinstance(result, QuantizeResult)
    assert (result.scheme, result.output, result.model_kind) == ("W4A16", "pvc://models/x", "text")
    assert result.simulated is True
    assert result.device == "simulated"


@pytest.mark.parametrize(
    ("producer", "model", "want_recovery"),
    [
        pytest.param(SimulatedResults(), "tiny", 99.6, id="default recovery passes the gate"),
        pytest.param(SimulatedResults(recovery=93.5), "tiny", 93.5, id="configured recovery"),
        pytest.param(
            SimulatedResults(recovery_by_model={"bad": 90.0}), "bad", 90.0, id="per model"
        ),
    ],
)
def test_evaluate_result_has_the_configured_recovery(
    producer: SimulatedResults, model: str, want_recovery: float
) -> None:
    pod = make_pod("evaluate", ["--tasks=chartqa,docvqa", "--limit=50"], model=model)

    _, text = producer(pod) or (None, "")

    result = parse_result(text)
    assert isinstance(result, EvaluateResult)
    assert result.recovery == pytest.approx(want_recovery, abs=0.01)
    assert [task.task for task in result.tasks] == ["chartqa", "docvqa"]
    assert result.limit == 50
    assert result.simulated is True


def test_benchmark_result_has_one_run_per_workload_and_scenario() -> None:
    pod = make_pod("benchmark", ["--workloads=docvqa,captioning", "--scenarios=latency,throughput"])

    _, text = SimulatedResults()(pod) or (None, "")

    result = parse_result(text)
    assert isinstance(result, BenchmarkResult)
    assert len(result.runs) == 4
    assert result.simulated is True


def test_unsimulatable_arguments_give_a_failure_result() -> None:
    exit_code, text = SimulatedResults()(make_pod(args=["--scheme=auto"])) or (None, "")

    result = parse_result(text)
    assert exit_code == 1
    assert isinstance(result, FailureResult)
    assert result.reason.startswith("SIMULATED: ")
    assert result.simulated is True


def test_pods_of_other_components_get_no_outcome() -> None:
    assert SimulatedResults()(make_pod("serve")) is None


def test_evaluate_uses_cached_baseline_scores_like_the_program() -> None:
    pod = make_pod(
        "evaluate",
        [
            "--tasks=chartqa,docvqa",
            '--baseline-scores={"chartqa": {"metric": "relaxed_accuracy,none", "score": 0.5}, '
            '"docvqa": {"metric": "anls", "score": 0.5}}',
        ],
    )

    _, text = SimulatedResults(recovery=98.0)(pod) or (None, "")

    result = parse_result(text)
    assert isinstance(result, EvaluateResult)
    assert result.tasks[0].baseline == 0.5
    assert result.tasks[0].quantized == pytest.approx(0.49)
    # docvqa's cached score is in another metric than the one its task reports now: scored again.
    assert result.tasks[1].baseline != 0.5
    assert result.baseline_cached is False


@pytest.mark.parametrize(
    ("args", "want_runs"),
    [
        pytest.param(
            ["--workloads=doc:1680x2240:128:64", "--scenarios=latency,throughput"],
            [("doc", "latency"), ("doc", "throughput")],
            id="workload shape dropped from the name",
        ),
        pytest.param(
            ["--workloads=doc:640x480:128:128", "--scenarios=rate", "--rates=2,8"],
            [("doc", "rate@2"), ("doc", "rate@8")],
            id="one run per rate",
        ),
        pytest.param(
            ["--workloads=doc:640x480:128:128", "--scenarios=sweep", "--sweep-steps=4"],
            [
                ("doc", "sweep:synchronous"),
                ("doc", "sweep:throughput"),
                ("doc", "sweep@"),
                ("doc", "sweep@"),
            ],
            id="a sweep as GuideLLM runs it: synchronous, throughput, then constant rates",
        ),
    ],
)
def test_benchmark_runs_are_labelled_as_the_program_labels_them(
    args: list[str], want_runs: list[tuple[str, str]]
) -> None:
    _, text = SimulatedResults()(make_pod("benchmark", args)) or (None, "")

    result = parse_result(text)
    assert isinstance(result, BenchmarkResult)
    # A sweep's constant rates are measured, so only their prefix is known in advance.
    assert [
        (run.workload, run.scenario.rstrip("0123456789.e+"))
        if want.endswith("@")
        else (run.workload, run.scenario)
        for run, (_, want) in zip(result.runs, want_runs, strict=False)
    ] == want_runs
    assert len(result.runs) == len(want_runs)
