"""Calibration data for `oneshot`: a hub dataset, a local or mounted one, or a built-in synthetic
set; tokenized (text) or run through the processor's chat template with one image (vision)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from quantfleet.api.enums import ModelKind
from quantfleet_jobs.common import JobError, hub_token

# The library's own examples calibrate on these (quantization.md §2).
DEFAULT_DATASETS = {
    ModelKind.TEXT: ("HuggingFaceH4/ultrachat_200k", "train_sft"),
    ModelKind.VISION_LANGUAGE: ("lmms-lab/flickr30k", "test"),
}
IMAGE_PROMPT = "What does the image show?"
SYNTHETIC_IMAGE_SIZE = (224, 224)
_WORDS = [
    "the",
    "model",
    "reads",
    "a",
    "chart",
    "a",
    "document",
    "and",
    "a",
    "photo",
    "then",
    "answers",
    "questions",
    "about",
    "numbers",
    "colours",
    "objects",
    "people",
    "places",
    "and",
    "the",
    "text",
    "written",
    "on",
    "signs",
    "in",
    "many",
    "languages",
]
_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load(
    name: str | None,
    *,
    kind: ModelKind,
    processor: Any,
    split: str | None,
    num_samples: int,
    max_seq_length: int,
    seed: int,
    fetch: Callable[[str], Path],
    token_env: str,
) -> Any:
    """A `datasets.Dataset` of at most `num_samples` model inputs, shuffled with `seed`."""
    from datasets import Dataset

    if num_samples < 1:
        raise JobError(f"--num-samples must be at least 1, got {num_samples}")
    name, split = (name, split) if name else DEFAULT_DATASETS[kind]
    examples = _raw_examples(name, kind, split, num_samples, seed, fetch, token_env)
    to_row = _vision_row if kind is ModelKind.VISION_LANGUAGE else _text_row
    rows = [row for example in examples if (row := to_row(example, processor, max_seq_length))]
    if not rows:
        raise JobError(
            f"calibration dataset {name} yielded no samples"
            f" (no usable {'image' if kind is ModelKind.VISION_LANGUAGE else 'text'} rows"
            f" within {max_seq_length} tokens)"
        )
    return Dataset.from_list(rows)


def batch_one_collator(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Vision inputs differ in shape per image, so calibrate one sample at a time."""
    import torch

    assert len(batch) == 1, "vision-language calibration runs with batch size 1"
    return {key: torch.tensor(value) for key, value in batch[0].items()}


def _raw_examples(
    name: str,
    kind: ModelKind,
    split: str | None,
    num_samples: int,
    seed: int,
    fetch: Callable[[str], Path],
    token_env: str,
) -> Iterable[dict[str, Any]]:
    if name == "synthetic":
        return _synthetic(kind, num_samples, seed)
    import datasets

    try:
        if "://" in name or Path(name).exists():
            path = Path(name) if Path(name).exists() else fetch(name)
            dataset = _load_local(path, split)
        else:
            dataset = datasets.load_dataset(
                name, split=f"{split or 'train'}[:{num_samples}]", token=hub_token(token_env)
            )
    except JobError:
        raise
    except Exception as error:  # datasets raises many types; the reason is enough
        raise JobError(f"cannot load calibration dataset {name}: {error}") from error
    if isinstance(dataset, datasets.DatasetDict):
        dataset = dataset[split or next(iter(dataset))]
    dataset = dataset.shuffle(seed=seed)
    result: Iterable[dict[str, Any]] = dataset.select(range(min(num_samples, len(dataset))))
    return result


def _load_local(path: Path, split: str | None) -> Any:
    import datasets

    if path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "state.json")):
        return datasets.load_from_disk(str(path))
    if path.is_file():
        builder = _FILE_BUILDERS.get(path.suffix)
        if builder is None:
            raise JobError(
                f"cannot read calibration file {path.name}: want json, jsonl, csv or parquet"
            )
        return datasets.load_dataset(builder, data_files=str(path), split=split or "train")
    return datasets.load_dataset(str(path), split=split or "train")


def _synthetic(kind: ModelKind, num_samples: int, seed: int) -> list[dict[str, Any]]:
    """Deterministic made-up samples for tests and smoke runs; not for real calibration."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(_WORDS, k=rng.randint(12, 48))) for _ in range(num_samples)]
    if kind is ModelKind.TEXT:
        return [{"text": text} for text in texts]
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed)
    width, height = SYNTHETIC_IMAGE_SIZE
    return [
        {
            "image": Image.fromarray(pixels.integers(0, 256, (height, width, 3), dtype=np.uint8)),
            "caption": text,
        }
        for text in texts
    ]


def _text_row(
    example: dict[str, Any], tokenizer: Any, max_seq_length: int
) -> dict[str, Any] | None:
    if isinstance(example.get("messages"), list) and example["messages"]:
        text = tokenizer.apply_chat_template(example["messages"], tokenize=False)
        special = False  # the chat template already added them
    else:
        text = next((example[k] for k in ("text", "prompt", "question") if example.get(k)), None)
        special = True
    if not isinstance(text, str) or not text.strip():
        return None
    encoded = tokenizer(
        text, max_length=max_seq_length, truncation=True, add_special_tokens=special
    )
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def _vision_row(
    example: dict[str, Any], processor: Any, max_seq_length: int
) -> dict[str, Any] | None:
    image = example.get("image")
    if image is None or not hasattr(image, "convert"):
        return None
    caption = example.get("caption")
    if isinstance(caption, list):
        caption = " ".join(str(c) for c in caption)
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": IMAGE_PROMPT}]}
    ]
    if caption:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": caption}]})
    text = processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=not caption
    )
    # Truncating would cut image tokens loose from their pixels: drop over-long samples instead.
    inputs = processor(text=[text], images=[image.convert("RGB")], padding=False)
    if len(inputs["input_ids"][0]) > max_seq_length:
        return None
    return {
        key: value.tolist() if hasattr(value, "tolist") else value for key, value in inputs.items()
    }
