"""W8A8 against BF16 on real vLLM on the CPU, as a BenchmarkRun compares them.

Builds the tests' tiny Qwen2-VL, quantizes it to W8A8 with the quantize program, then serves one
model at a time with the operator's own Deployment arguments (the BF16 baseline's, then the
W8A8 model's; factories.vllm) and measures each with the benchmark program under the same load:
the latency and throughput scenarios of one image workload. Prints both sides and the speed-ups
as the operator computes them (builders.benchmark_status.speedups). Not a test: run it by hand,
holding the vLLM lock.

    flock /tmp/qf-vllm.lock uv run python benchmarks/serving_speedup.py [--requests 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from quantfleet.api.contract import BASELINE_TARGET
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.results import BenchmarkResult, parse_result
from quantfleet.builders.benchmark_status import results_of, speedups
from quantfleet_jobs import benchmark

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def measure(
    url: str, served_name: str, tokenizer: Path, args: argparse.Namespace, work: Path
) -> BenchmarkResult:
    """One run of the benchmark program, as the benchmark Job runs it; its BenchmarkResult."""
    log = work / "termination-log"
    code = benchmark.main(
        [f"--target={url}", f"--model={served_name}", f"--tokenizer={tokenizer}",
         f"--workloads={args.workload}", "--scenarios=latency,throughput",
         f"--max-requests={args.requests}", f"--max-concurrency={args.concurrency}",
         "--max-seconds=300", f"--output={work / 'reports'}", f"--termination-log={log}",
         f"--workdir={work / 'scratch'}"]
    )  # fmt: skip
    result = parse_result(log.read_text())
    if code != 0 or not isinstance(result, BenchmarkResult):
        raise SystemExit(f"the benchmark program failed against {served_name}: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16, help="per benchmark")
    parser.add_argument("--concurrency", type=int, default=4, help="throughput's bound")
    parser.add_argument("--workload", default="visual-reasoning", help="a preset or a shape")
    args = parser.parse_args()

    from factories import FEW_GUIDELLM_WORKERS
    from factories.models import build_tiny_qwen2_vl, quantize
    from factories.vllm import VllmServers, baseline_args, deployment_args

    os.environ.update(FEW_GUIDELLM_WORKERS)
    kind = ModelKind.VISION_LANGUAGE
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        source = build_tiny_qwen2_vl(work / "source")
        w8a8 = quantize(source, Scheme.W8A8, work / "w8a8", work / "quantize")
        sides = {
            BASELINE_TARGET: (source, baseline_args(source, kind)),
            "w8a8": (w8a8, deployment_args(w8a8, kind, Scheme.W8A8)),
        }
        servers = VllmServers(work)
        results = []
        try:
            for name, (model, serve_args) in sides.items():
                server = servers.serve(model, serve_args)
                served_name = next(a for a in serve_args if a.startswith("--served-model-name="))
                bench = work / "bench" / name
                bench.mkdir(parents=True)
                measured = measure(server.url, served_name.split("=", 1)[1], source, args, bench)
                results += results_of(name, measured)
        finally:
            servers.stop()
    header = ("target", "scenario", "req/s", "lat p50 s", "TTFT p50 ms", "ITL p50 ms")
    print("{:9} {:11} {:>7} {:>9} {:>11} {:>10}".format(*header))
    for r in results:
        print(
            f"{r.target:9} {r.scenario:11} {r.requests_per_second:7.3f} "
            f"{r.latency_seconds.p50:9.3f} {r.ttft_ms.p50:11.1f} {r.itl_ms.p50:10.2f}"
        )
    for s in speedups(results):
        print(f"speed-up W8A8 vs BF16, {s.workload}/{s.scenario} ({s.metric}): {s.value:.3f}x")


if __name__ == "__main__":
    main()
