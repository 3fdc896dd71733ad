"""The tests' tiny random models, with tokenizers trained offline (factories.tokenizer): a
2-layer Llama and a 2-layer Qwen2-VL-shaped vision-language model with its processor, seconds to
build; and their checkpoints, from the real quantize program on the CPU (`quantize`, with the one
argument list `quantize_args`). Every suite that needs a real checkpoint starts from these."""

from pathlib import Path

from quantfleet.testbed.tinymodels import build_tiny_llama, build_tiny_qwen2_vl

__all__ = ["build_tiny_llama", "build_tiny_qwen2_vl", "quantize", "quantize_args"]


def quantize_args(source: Path, output: Path, scheme: str) -> list[str]:
    """The quantize program's arguments for a tiny model on the CPU: synthetic calibration data,
    8 samples of 128 tokens."""
    return [
        f"--source={source}",
        f"--output={output}",
        f"--scheme={scheme}",
        "--dataset=synthetic",
        "--num-samples=8",
        "--max-seq-length=128",
        "--device=cpu",
    ]


def quantize(source: Path, scheme: str, output: Path, workdir: Path) -> Path:
    """`source` quantized to `scheme` at `output` by the real quantize program, on the CPU."""
    from quantfleet_jobs import quantize as program

    log = workdir / "termination-log"
    args = [*quantize_args(source, output, scheme), f"--termination-log={log}"]
    if program.main([*args, f"--workdir={workdir / 'work'}"]) != 0:
        raise RuntimeError(f"quantize {scheme} failed: {log.read_text()}")
    return output
