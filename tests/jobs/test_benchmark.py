"""The benchmark program for real: GuideLLM 0.8.1 against its own mock server on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factories import FEW_GUIDELLM_WORKERS, MOCK_ITL_MS, MOCK_TTFT_MS, guidellm_mock_server
from quantfleet.api.contract import SWEEP_THROUGHPUT
from quantfleet.api.results import BenchmarkResult, FailureResult, parse_result
from quantfleet_jobs import benchmark


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(autouse=True)
def few_guidellm_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FEW_GUIDELLM_WORKERS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def failing_server() -> Iterator[str]:
    with guidellm_mock_server(fail_after_requests=2) as url:
        yield url


def run(tmp_path: Path, *args: str) -> tuple[int, Any]:
    log = tmp_path / "termination-log"
    argv = [*args, "--termination-log", str(log), "--workdir", str(tmp_path / "work")]
    code = benchmark.main(argv)
    return code, parse_result(log.read_text())


def test_summary_per_workload_and_scenario_against_the_mock_server(
    mock_server: str, tiny_llama: Path, tmp_path: Path
) -> None:
    output = tmp_path / "reports"
    code, result = run(
        tmp_path,
        f"--target={mock_server}",
        "--model=tiny",
        f"--tokenizer={tiny_llama}",
        "--workloads=small-image:64x48:16:8",
        # One guidellm invocation (each costs ~30 s of imports here); the failing-server test
        # below covers the latency scenario.
        "--scenarios=rate",
        "--rates=20,40",
        "--max-requests=4",
        "--max-seconds=60",
        f"--output={output}",
    )

    assert code == 0, result
    assert isinstance(result, BenchmarkResult)
    assert [(r.workload, r.scenario) for r in result.runs] == [
        ("small-image", "rate@20"),
        ("small-image", "rate@40"),
    ]
    for run_ in result.runs:
        assert run_.successful == 4
        assert run_.errored == 0
        assert run_.error_rate == 0
        assert run_.requests_per_second > 0
        assert run_.output_tokens_per_second > 0
        assert MOCK_TTFT_MS <= run_.ttft_ms.p50 <= run_.ttft_ms.p90 <= run_.ttft_ms.p99
        # Lower bounds only: the mock sleeps at least this long, a loaded machine adds more.
        assert MOCK_ITL_MS <= run_.itl_ms.p50 <= run_.itl_ms.p99
        assert run_.latency_s.p50 * 1000 > run_.ttft_ms.p50
    assert result.report == str(output)
    assert {p.name for p in output.iterdir()} == {
        "small-image-rate.json",
        "small-image-rate.html",
        "summary.json",
    }
    assert result.library_versions == {"guidellm": "0.8.1"}


def test_throughput_and_a_sweep_run_and_are_labelled_for_the_speedups(
    mock_server: str, tiny_llama: Path, tmp_path: Path
) -> None:
    # GuideLLM 0.8.1's throughput profile refuses to start without max_concurrency; a sweep
    # makes --sweep-steps benchmarks, labelled as the operator's speed-up code reads them.
    code, result = run(
        tmp_path,
        f"--target={mock_server}",
        "--model=tiny",
        f"--tokenizer={tiny_llama}",
        "--workloads=text:0x0:16:8",
        "--scenarios=throughput,sweep",
        "--sweep-steps=3",
        "--max-concurrency=4",
        "--max-requests=4",
        "--max-seconds=60",
        f"--output={tmp_path / 'reports'}",
    )

    assert code == 0, result
    assert isinstance(result, BenchmarkResult)
    labels = [r.scenario for r in result.runs]
    assert labels[:3] == ["throughput", "sweep:synchronous", SWEEP_THROUGHPUT]
    assert len(labels) == 4
    assert labels[3].startswith("sweep@")
    assert all(r.successful == 4 and r.requests_per_second > 0 for r in result.runs)


def test_a_server_returning_errors_fails_the_run(
    failing_server: str, tiny_llama: Path, tmp_path: Path
) -> None:
    output = tmp_path / "reports"
    code, result = run(
        tmp_path,
        f"--target={failing_server}",
        "--model=tiny",
        f"--tokenizer={tiny_llama}",
        "--workloads=text:0x0:16:8",
        "--scenarios=latency",
        "--max-requests=6",
        f"--output={output}",
    )

    assert code == 1
    assert isinstance(result, FailureResult)
    assert "text/latency: error rate" in result.reason
    assert "is over 0.05" in result.reason
    assert not output.exists()


def test_unreachable_endpoint_fails_fast_with_a_reason(tiny_llama: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    code, result = run(
        tmp_path,
        f"--target=http://127.0.0.1:{free_port()}",
        "--model=tiny",
        f"--tokenizer={tiny_llama}",
        f"--output={tmp_path / 'reports'}",
    )
    assert code == 1
    assert isinstance(result, FailureResult)
    assert "is unreachable" in result.reason
    assert time.monotonic() - started < 15
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("flag", "want_reason"),
    [
        pytest.param("--workloads=docvqa,bogus", "bad workload 'bogus'", id="unknown-workload"),
        pytest.param("--scenarios=latency,soak", "unknown scenario 'soak'", id="unknown-scenario"),
        pytest.param("--scenarios=sweep,rate", "runs requested; want 1..12", id="too-many-runs"),
    ],
)
def test_bad_workloads_and_scenarios_are_refused(
    tmp_path: Path, flag: str, want_reason: str
) -> None:
    code, result = run(
        tmp_path, "--target=http://127.0.0.1:9", "--model=m", "--output=/tmp/x", flag
    )
    assert code == 1
    assert isinstance(result, FailureResult)
    assert want_reason in result.reason


def test_study_presets_match_the_published_workloads() -> None:
    assert benchmark.parse_workload("docvqa") == benchmark.Workload("docvqa", 1680, 2240, 64, 128)
    assert benchmark.parse_workload("captioning").prompt_tokens == 0


@pytest.fixture(scope="module")
def transformers_server(
    tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`transformers serve` with the tiny Llama on the CPU: a real model server on loopback."""
    import os

    port = free_port()
    cache = tmp_path_factory.mktemp("hf-cache")  # /v1/models scans it; it must exist
    process = subprocess.Popen(
        [sys.executable, "-m", "transformers.cli.transformers", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--device", "cpu", str(tiny_llama)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("transformers serve did not come up") from None
            time.sleep(1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_real_model_server_on_loopback(
    transformers_server: str, tiny_llama: Path, tmp_path: Path
) -> None:
    code, result = run(
        tmp_path,
        f"--target={transformers_server}",
        f"--model={tiny_llama}",
        f"--tokenizer={tiny_llama}",
        "--workloads=text:0x0:16:8",
        "--scenarios=latency",
        "--max-requests=3",
        "--server-kind=openai",  # transformers serve refuses vLLM's ignore_eos
        f"--output={tmp_path / 'reports'}",
    )

    assert code == 0, result
    assert isinstance(result, BenchmarkResult)
    (only,) = result.runs
    assert (only.workload, only.scenario, only.successful, only.errored) == (
        "text",
        "latency",
        3,
        0,
    )
    assert only.output_tokens_per_second > 0
    assert 0 < only.ttft_ms.p50 <= only.latency_s.p50 * 1000
