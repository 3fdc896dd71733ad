"""lm-eval task definitions and data written locally (no hub), as the evaluate program's tests
read them with `--include-path`: two multiple-choice text tasks, one under a harness name the
contract maps a study task to, and a generate-until image task for vision-language models."""

from __future__ import annotations

import json
from pathlib import Path

CHOICE_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
CHOICES = {
    "qf_fox": ["lazy dog", "chart number"],
    "qf_image": ["a cat on a mat", "the quick brown fox", "a chart"],
}
CHOICE_ROWS = 16
IMAGE_TASK = """task: {name}
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_image:
  - image
doc_to_text: "<image>What colour is the picture?"
doc_to_target: "{{{{label}}}}"
generation_kwargs:
  until: []
  do_sample: false
  max_gen_toks: 4
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""
IMAGE_TASK_NAME = "qf_colour"
COLOURS = ["red", "green", "blue", "white"]


def write_choice_tasks(directory: Path) -> Path:
    """`qf_fox` and `qf_image` (CHOICES) in `directory`: 16 questions each, JSON lines."""
    for name, choices in CHOICES.items():
        rows = [
            {"question": f"the quick brown fox {i} jumps over the", "choices": choices,
             "answer": i % len(choices)}
            for i in range(CHOICE_ROWS)
        ]  # fmt: skip
        data = directory / f"{name}.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows))
        (directory / f"{name}.yaml").write_text(CHOICE_TASK.format(name=name, data=data))
    return directory


def write_harness_named_task(choice_tasks: Path, directory: Path, harness: str) -> Path:
    """`qf_fox` of `choice_tasks` again under the lm-eval name `harness` (e.g. the one the
    contract runs a study task as), so the name mapping runs for real without the hub."""
    fox = (choice_tasks / "qf_fox.yaml").read_text()
    (directory / f"{harness}.yaml").write_text(fox.replace("task: qf_fox", f"task: {harness}"))
    return directory


def write_image_task(directory: Path) -> Path:
    """`qf_colour` in `directory`: one plain-colour 64x64 picture per COLOURS, asked for its
    colour, from a local parquet file (lm-eval's multimodal path reads images from a dataset)."""
    import datasets
    from PIL import Image

    rows = {"image": [Image.new("RGB", (64, 64), c) for c in COLOURS], "label": COLOURS}
    data = directory / f"{IMAGE_TASK_NAME}.parquet"
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(data)
    (directory / f"{IMAGE_TASK_NAME}.yaml").write_text(
        IMAGE_TASK.format(name=IMAGE_TASK_NAME, data=data)
    )
    return directory
