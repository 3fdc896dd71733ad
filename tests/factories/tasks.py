"""lm-eval task definitions and data written locally (no hub), as the evaluate program's tests
read them with `--include-path`: two multiple-choice text tasks, a generate-until image task for
vision-language models, and local copies of the study's lm-eval tasks (the harness's own task
files over local data)."""

from __future__ import annotations

import json
from pathlib import Path

from quantfleet.api.contract import STUDY_TASKS
from quantfleet.api.enums import EvalTask

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


# Local copies of the study's lm-eval tasks: each includes the installed harness's own task file
# (its prompt, filters, metric code and version) and swaps only the data for a few local rows.
LOCAL_COPY = """task: {name}
include: {include}
dataset_path: {format}
dataset_name: null
dataset_kwargs:
  data_files:
    test: {data}
    train: {data}
"""
MGSM_ROWS = [
    {"question": "Janet has 3 apples and buys 2 more. How many apples does she have?",
     "answer": None, "answer_number": 5, "equation_solution": None},
    {"question": "A box holds 4 pens. How many pens are in 2 boxes?",
     "answer": None, "answer_number": 8, "equation_solution": None},
]  # fmt: skip
CHARTQA_ROWS = {"colour": ["red", "blue"], "query": ["Which colour fills the chart?"] * 2}


def lm_eval_tasks() -> Path:
    """The installed lm-eval's task folder."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def write_study_task_copies(directory: Path) -> Path:
    """Local copies of the study's mgsm (its 11 native-CoT tasks, as STUDY_TASKS runs it) and
    chartqa (two plain-colour charts) in `directory`, under the harness's own task names."""
    import datasets
    from PIL import Image

    harness = lm_eval_tasks()
    mgsm = directory / "mgsm.jsonl"
    mgsm.write_text("\n".join(json.dumps(row) for row in MGSM_ROWS))
    for name in STUDY_TASKS[EvalTask.MGSM].parts:
        include = harness / "mgsm" / "native_cot" / f"{name}.yaml"
        copy = LOCAL_COPY.format(name=name, include=include, format="json", data=mgsm)
        (directory / f"{name}.yaml").write_text(copy)
    chartqa = directory / "chartqa.parquet"
    rows = {
        "image": [Image.new("RGB", (64, 64), colour) for colour in CHARTQA_ROWS["colour"]],
        "query": CHARTQA_ROWS["query"],
        "label": [[colour] for colour in CHARTQA_ROWS["colour"]],
    }
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(chartqa)
    include = harness / "chartqa" / "chartqa.yaml"
    copy = LOCAL_COPY.format(name="chartqa", include=include, format="parquet", data=chartqa)
    (directory / "chartqa.yaml").write_text(copy)
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
