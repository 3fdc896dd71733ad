"""What a checkpoint is (model kind; scheme read back from config.json) and loading it with
Hugging Face transformers, including compressed-tensors checkpoints of vision-language models."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from quantfleet.api.enums import ModelKind, Scheme

# Keep the vision encoder and projector in high precision. Patterns match both the old and the
# new transformers layouts (quantization.md §2): Qwen-VL `visual` (its merger is the projector),
# Llava/Pixtral/Mistral3 `vision_tower` + `multi_modal_projector`, Mllama `vision_model`.
VISION_IGNORE = [
    "re:.*lm_head",
    "re:.*visual.*",
    "re:.*vision_tower.*",
    "re:.*multi_modal_projector.*",
    "re:.*vision_model.*",
]
TEXT_IGNORE = ["lm_head"]


def read_config(directory: Path) -> dict[str, Any]:
    """The checkpoint's config.json."""
    path = directory / "config.json"
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path.name} in {directory}: {error}") from error
    return config


def model_kind_of(config: dict[str, Any]) -> ModelKind:
    """A model that carries a vision config takes images."""
    return ModelKind.VISION_LANGUAGE if "vision_config" in config else ModelKind.TEXT


def classify(config: dict[str, Any]) -> tuple[Scheme | None, str]:
    """(scheme, format) from a saved config.json's quantization_config — what was produced,
    not what was asked for. The scheme is None for a format that is none of ours."""
    quantization = config.get("quantization_config") or {}
    if quantization.get("quant_method") != "compressed-tensors":
        return None, "none"
    fmt = str(quantization.get("format", "unknown"))
    groups = list((quantization.get("config_groups") or {}).values())
    if len(groups) != 1:
        return None, fmt
    weights = groups[0].get("weights") or {}
    activations = groups[0].get("input_activations") or {}
    bits, kind = weights.get("num_bits"), weights.get("type")
    act_bits, act_kind = activations.get("num_bits"), activations.get("type")
    if fmt == "float-quantized" and (bits, kind, act_bits, act_kind) == (8, "float", 8, "float"):
        return (Scheme.FP8_DYNAMIC if activations.get("dynamic") is True else None), fmt
    if fmt == "int-quantized" and (bits, kind, act_bits, act_kind) == (8, "int", 8, "int"):
        return Scheme.W8A8, fmt
    if fmt == "pack-quantized" and (bits, kind) == (4, "int") and not activations:
        return Scheme.W4A16, fmt
    if fmt == "nvfp4-pack-quantized" and (bits, kind, act_bits) == (4, "float", 4):
        return Scheme.NVFP4, fmt
    return None, fmt


def model_class_for(kind: ModelKind) -> Any:
    """The transformers auto class for a model kind."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return (
        AutoModelForImageTextToText if kind is ModelKind.VISION_LANGUAGE else AutoModelForCausalLM
    )


def load_model(directory: Path, *, device: str = "cpu") -> Any:
    """Load a (possibly compressed-tensors) checkpoint with transformers for inference.

    llmcompressor writes `quantization_config.ignore` with checkpoint key names (e.g. Qwen2-VL's
    `visual.blocks.0.attn.qkv`), which vLLM maps itself; transformers 5 renames modules on load
    (`model.visual...`) and matches `ignore` against the new names, so it would treat the vision
    tower as quantized. Add each ignored name as transformers will call it before loading."""
    from transformers import AutoConfig

    raw = read_config(directory)
    kind = model_kind_of(raw)
    auto_class = model_class_for(kind)
    config = AutoConfig.from_pretrained(directory)
    quantization = getattr(config, "quantization_config", None)
    if isinstance(quantization, dict) and quantization.get("ignore"):
        quantization = copy.deepcopy(quantization)
        quantization["ignore"] = _with_loaded_names(auto_class, config, quantization["ignore"])
        config.quantization_config = quantization
    model = auto_class.from_pretrained(directory, config=config, dtype="auto", device_map=device)
    model.eval()
    return model


def _with_loaded_names(auto_class: Any, config: Any, ignore: list[str]) -> list[str]:
    import torch
    from transformers.conversion_mapping import get_model_conversion_mapping

    with torch.device("meta"):
        skeleton = auto_class.from_config(copy.deepcopy(config))
    conversions = get_model_conversion_mapping(skeleton)
    extra = []
    for name in ignore:
        renamed = name
        for conversion in conversions:
            candidate, matched = conversion.rename_source_key(renamed)
            if matched is not None:
                renamed = candidate
        if renamed != name:
            extra.append(renamed)
    return [*ignore, *extra]


def load_processor(directory: Path, kind: ModelKind) -> Any:
    """The processor (vision-language) or tokenizer (text) saved with a checkpoint."""
    from transformers import AutoProcessor, AutoTokenizer

    if kind is ModelKind.VISION_LANGUAGE:
        return AutoProcessor.from_pretrained(directory)  # type: ignore[no-untyped-call]
    return AutoTokenizer.from_pretrained(directory)
