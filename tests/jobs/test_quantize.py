"""The quantize program for real: LLM Compressor on the CPU with tiny models built offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open

from factories.models import quantize_args
from quantfleet.api.enums import ModelKind, Scheme
from quantfleet.api.results import FailureResult, QuantizeResult, parse_result
from quantfleet_jobs import checkpoints, quantize

WANT_FORMAT = {
    "FP8_DYNAMIC": "float-quantized",
    "W8A8": "int-quantized",
    "W4A16": "pack-quantized",
    "NVFP4": "nvfp4-pack-quantized",
}


def run(tmp_path: Path, *args: str) -> tuple[int, Any]:
    log = tmp_path / "termination-log"
    argv = [*args, "--termination-log", str(log), "--workdir", str(tmp_path / "work")]
    code = quantize.main(argv)
    return code, parse_result(log.read_text())


def generate(directory: Path, kind: ModelKind) -> int:
    """Load the checkpoint back with transformers and return how many tokens it generated."""
    import torch

    model = checkpoints.load_model(directory)
    processor = checkpoints.load_processor(directory, kind)
    if kind is ModelKind.VISION_LANGUAGE:
        from PIL import Image

        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}
        ]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        image = Image.new("RGB", (64, 64), (200, 30, 30))
        inputs = processor(text=[text], images=[image], return_tensors="pt")
    else:
        inputs = processor("the quick brown fox", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    return int(out.shape[-1] - inputs["input_ids"].shape[-1])


def tensor_names(directory: Path) -> set[str]:
    names: set[str] = set()
    for file in directory.glob("*.safetensors"):
        with safe_open(str(file), "pt") as handle:
            names.update(handle.keys())
    return names


@pytest.mark.parametrize("scheme", ["FP8_DYNAMIC", "W8A8", "W4A16", "NVFP4"])
def test_each_scheme_quantizes_the_tiny_decoder_and_it_generates(
    tiny_llama: Path, tmp_path: Path, scheme: str
) -> None:
    output = tmp_path / "out"
    code, result = run(tmp_path, *quantize_args(tiny_llama, output, scheme))

    assert code == 0, result
    assert isinstance(result, QuantizeResult)
    assert result.scheme is Scheme(scheme)
    assert result.format == WANT_FORMAT[scheme]
    assert result.model_kind is ModelKind.TEXT
    assert result.calibration_samples == (0 if scheme == "FP8_DYNAMIC" else 8)
    assert 0 < result.size_after_bytes < result.size_before_bytes
    assert result.compression_ratio == pytest.approx(
        result.size_before_bytes / result.size_after_bytes, rel=1e-3
    )
    assert set(result.library_versions) >= {"llmcompressor", "compressed-tensors", "torch"}
    saved = json.loads((output / "config.json").read_text())
    assert checkpoints.classify(saved) == (Scheme(scheme), WANT_FORMAT[scheme])
    assert saved["quantization_config"]["ignore"] == ["lm_head"]
    assert (output / "recipe.yaml").is_file()
    assert (output / "tokenizer.json").is_file()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert generate(output, ModelKind.TEXT) == 4


@pytest.mark.parametrize("scheme", ["W4A16", "FP8_DYNAMIC"])
def test_vision_language_model_keeps_vision_tower_and_projector_unquantized(
    tiny_vlm: Path, tmp_path: Path, scheme: str
) -> None:
    output = tmp_path / "out"
    code, result = run(tmp_path, *quantize_args(tiny_vlm, output, scheme), "--num-samples=3")

    assert code == 0, result
    assert isinstance(result, QuantizeResult)
    assert result.model_kind is ModelKind.VISION_LANGUAGE
    assert result.scheme is Scheme(scheme)
    ignore = json.loads((output / "config.json").read_text())["quantization_config"]["ignore"]
    # Two vision blocks x (qkv, proj, fc1, fc2) and the merger's two linears, plus lm_head.
    assert sorted(n for n in ignore if "visual" in n) == sorted(
        [
            f"visual.blocks.{b}.{m}"
            for b in (0, 1)
            for m in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
        ]
        + ["visual.merger.mlp.0", "visual.merger.mlp.2"]
    )
    assert "lm_head" in ignore
    assert not any("layers." in n for n in ignore)
    names = tensor_names(output)
    quantized_suffix = "weight_packed" if scheme == "W4A16" else "weight_scale"
    assert not [n for n in names if n.startswith("visual.") and n.endswith(quantized_suffix)]
    assert "visual.merger.mlp.0.weight" in names
    assert "model.layers.0.self_attn.q_proj." + quantized_suffix in names
    assert (output / "processor_config.json").is_file()
    assert generate(output, ModelKind.VISION_LANGUAGE) == 4


def test_recipe_override_replaces_the_default_and_is_classified_from_the_checkpoint(
    tiny_llama: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n"
        "      targets: [Linear]\n      scheme: W8A16\n      ignore: [lm_head]\n"
    )
    code, result = run(
        tmp_path, *quantize_args(tiny_llama, tmp_path / "out", "W4A16"), f"--recipe={recipe}"
    )

    assert code == 0, result
    assert isinstance(result, QuantizeResult)
    assert result.recipe_overridden
    assert result.requested_scheme is Scheme.W4A16
    assert result.format == "pack-quantized"
    assert result.scheme is None  # 8-bit weight-only is none of the four schemes


def test_pvc_source_and_output_resolve_under_the_mount_root(
    tiny_llama: Path, tmp_path: Path
) -> None:
    mount_root = tmp_path / "mnt"
    (mount_root / "models").mkdir(parents=True)
    (mount_root / "models" / "tiny").symlink_to(tiny_llama)
    code, result = run(
        tmp_path,
        "--source=pvc://models/tiny",
        "--output=pvc://models/tiny-fp8",
        "--scheme=FP8_DYNAMIC",
        f"--mount-root={mount_root}",
    )

    assert code == 0, result
    assert isinstance(result, QuantizeResult)
    assert result.output == str(mount_root / "models" / "tiny-fp8")
    assert (mount_root / "models" / "tiny-fp8" / "config.json").is_file()


def _assert_failed(code: int, result: Any, output: Path, *reason_parts: str) -> None:
    assert code == 1
    assert isinstance(result, FailureResult)
    assert result.program == "quantize"
    assert "\n" not in result.reason
    for part in reason_parts:
        assert part in result.reason
    assert not output.exists()
    assert not [p for p in output.parent.iterdir() if ".partial-" in p.name]


def test_unreadable_source_fails_with_a_one_line_reason(tmp_path: Path) -> None:
    output = tmp_path / "out"
    code, result = run(tmp_path, *quantize_args(tmp_path / "missing", output, "W4A16"))
    _assert_failed(code, result, output, "not a readable directory")


def test_unknown_scheme_fails_with_a_one_line_reason(tiny_llama: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    code, result = run(tmp_path, *quantize_args(tiny_llama, output, "INT3"))
    _assert_failed(code, result, output, "unknown scheme 'INT3'")


def test_model_kind_the_recipe_cannot_handle_fails(tiny_llama: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    code, result = run(
        tmp_path, *quantize_args(tiny_llama, output, "W4A16"), "--model-kind=vision-language"
    )
    _assert_failed(code, result, output, "model kind vision-language requested")


def test_dataset_yielding_no_samples_fails_and_leaves_no_artifact(
    tiny_llama: Path, tmp_path: Path
) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text('{"text": ""}\n{"text": "   "}\n')
    output = tmp_path / "out"
    args = [a for a in quantize_args(tiny_llama, output, "W4A16") if not a.startswith("--dataset")]
    code, result = run(tmp_path, *args, f"--dataset={data}")
    _assert_failed(code, result, output, "yielded no samples")


def test_hub_source_failure_never_shows_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here: fail fast instead of timing out
    monkeypatch.setenv("QF_TEST_TOKEN", "hf_secret_never_print_me")
    output = tmp_path / "out"
    code, result = run(
        tmp_path,
        *quantize_args(Path("unused"), output, "W4A16")[1:],
        "--source=hf://org/model@main",
        "--hf-token-env=QF_TEST_TOKEN",
    )
    _assert_failed(code, result, output, "could not download hf://org/model@main")
    assert "hf_secret_never_print_me" not in result.model_dump_json()


def test_module_entry_point_exits_non_zero_with_reason_on_stderr(tmp_path: Path) -> None:
    log = tmp_path / "log"
    env = {**os.environ, "QF_TERMINATION_LOG": str(log)}
    completed = subprocess.run(
        [sys.executable, "-m", "quantfleet_jobs.quantize", "--source", str(tmp_path), "--bogus"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1
    assert "quantize failed: bad arguments: unrecognized arguments: --bogus" in completed.stderr
    result = parse_result(log.read_text())
    assert isinstance(result, FailureResult)
    assert completed.stdout.strip().splitlines()[-1] == log.read_text()


def test_ignore_patterns_replace_the_defaults(tiny_llama: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    code, result = run(
        tmp_path, *quantize_args(tiny_llama, output, "FP8_DYNAMIC"),
        "--ignore=re:.*lm_head", "--ignore=re:.*layers\\.0\\..*",
    )  # fmt: skip
    assert code == 0, result
    ignored = json.loads((output / "config.json").read_text())["quantization_config"]["ignore"]
    assert "lm_head" in ignored
    assert any(".layers.0." in name for name in ignored)
    assert not any(".layers.1." in name for name in ignored)
