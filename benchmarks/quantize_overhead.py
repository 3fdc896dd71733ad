"""How much the quantize program adds over a bare LLM Compressor `oneshot` on the same model.

Builds the tests' tiny random Llama offline, then times, in one process and alternating so that
both see the same machine load: (a) load + `oneshot` + save, the library's own example shape;
(b) `quantfleet_jobs.quantize.main` (source checks, calibration data, staging, classification,
atomic move, result). Prints the medians and their ratio. Not a test: run it by hand.

    uv run python benchmarks/quantize_overhead.py [--scheme W4A16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "jobs"))


def bare_oneshot(source: Path, output: Path, scheme: str, samples: int) -> None:
    """The LLM Compressor example shape, with the same recipe and the same synthetic texts."""
    from llmcompressor.entrypoints.oneshot import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quantfleet.api.enums import ModelKind, Scheme
    from quantfleet_jobs import calibration
    from quantfleet_jobs.quantize import default_recipe

    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(source)
    dataset = None
    if scheme != "FP8_DYNAMIC":
        from datasets import Dataset

        texts = calibration._synthetic(ModelKind.TEXT, samples, seed=42)
        dataset = Dataset.from_list(texts)
    oneshot(
        model=model,
        recipe=default_recipe(Scheme(scheme), ModelKind.TEXT),
        dataset=dataset,
        processor=tokenizer,
        num_calibration_samples=samples,
        max_seq_length=128,
        output_dir=str(output),
    )


def program(source: Path, output: Path, scheme: str, samples: int, work: Path) -> None:
    from quantfleet_jobs import quantize

    code = quantize.main(
        [f"--source={source}", f"--output={output}", f"--scheme={scheme}",
         "--dataset=synthetic", f"--num-samples={samples}", "--max-seq-length=128",
         "--device=cpu", f"--termination-log={work / 'log'}", f"--workdir={work}"]
    )  # fmt: skip
    if code != 0:
        raise SystemExit(f"quantize program failed: {(work / 'log').read_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="W4A16")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from conftest import build_tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = build_tiny_llama(work / "tiny-llama")
        # Warm up both paths once (imports, first-call caches) before timing.
        bare_oneshot(source, work / "warm-bare", args.scheme, args.samples)
        program(source, work / "warm-program", args.scheme, args.samples, work)
        bare, ours = [], []
        for i in range(args.repeats):
            started = time.perf_counter()
            bare_oneshot(source, work / f"bare-{i}", args.scheme, args.samples)
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            program(source, work / f"program-{i}", args.scheme, args.samples, work)
            ours.append(time.perf_counter() - started)
    b, p = statistics.median(bare), statistics.median(ours)
    print(f"scheme={args.scheme} samples={args.samples} repeats={args.repeats}")
    print(f"bare oneshot median      {b:.3f} s  {[round(t, 3) for t in bare]}")
    print(f"quantize program median  {p:.3f} s  {[round(t, 3) for t in ours]}")
    print(f"ratio program / bare     {p / b:.3f}")


if __name__ == "__main__":
    main()
