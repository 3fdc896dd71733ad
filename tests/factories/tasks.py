"""lm-eval task definitions and data written locally (no hub), as the evaluate program's tests
read them with `--include-path`: two multiple-choice text tasks, a generate-until image task for
vision-language models, and local copies of the study's lm-eval and lmms-eval tasks (each
harness's own task files over local data)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

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
# MMMU and MMLU are groups of many subjects: a copy of the group with one subject (its own task
# file over local rows), aggregated as the harness's group is, under the group's version.
GROUP_COPY = """group: {group}
task:
  - {task}
aggregate_metric_list:
  - metric: {metric}
    aggregation: mean
    weight_by_size: true
{filters}metadata:
  version: {version}
"""
SPLIT_COPY = """task: {name}
include: {include}
dataset_path: {format}
dataset_name: null
dataset_kwargs:
  data_files:
{splits}"""
# MMMU's rows offer one option: its answer parsing picks it whatever the reply, so both models
# score 1 on it. MMLU's want a letter among four.
MMMU_ROWS = {
    "id": ["validation_Accounting_1", "validation_Accounting_2"],
    "question": ["<image 1> Which colour fills the picture?"] * 2,
    "options": ["['red']", "['blue']"],
    "answer": ["A", "A"],
    "question_type": ["multiple-choice"] * 2,
}
MMLU_ROWS = [
    {"question": "What is 2 + 2?", "choices": ["3", "4", "5", "6"], "answer": 1,
     "subject": "abstract_algebra"},
    {"question": "What is 3 x 3?", "choices": ["6", "8", "9", "12"], "answer": 2,
     "subject": "abstract_algebra"},
]  # fmt: skip


def lm_eval_tasks() -> Path:
    """The installed lm-eval's task folder."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def write_study_task_copies(directory: Path) -> Path:
    """Local copies of the study's lm-eval tasks in `directory`, under the harness's own task
    names: mgsm (its 11 native-CoT tasks, as STUDY_TASKS runs it), chartqa (two plain-colour
    charts), and the groups mmmu_val and mmlu_generative with one subject each."""
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
    mmmu = directory / "mmmu.parquet"
    rows = {**MMMU_ROWS, "image_1": [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]}
    datasets.Dataset.from_dict(rows).cast_column("image_1", datasets.Image()).to_parquet(mmmu)
    mmlu = directory / "mmlu.jsonl"
    mmlu.write_text("\n".join(json.dumps(row) for row in MMLU_ROWS))
    copies = [
        ("mmmu", "mmmu_val_accounting", "mmmu_accounting.yaml", "_mmmu.yaml", "parquet", mmmu,
         ("validation",)),
        ("mmlu", "mmlu_abstract_algebra_generative", "generative/mmlu_abstract_algebra.yaml",
         "generative/_mmlu.yaml", "json", mmlu, ("test", "dev")),
    ]  # fmt: skip
    for folder, task, task_file, group_file, data_format, data, splits in copies:
        copy = SPLIT_COPY.format(
            name=task, include=harness / folder / task_file, format=data_format,
            splits="".join(f"    {split}: {data}\n" for split in splits),
        )  # fmt: skip
        (directory / f"{task}.yaml").write_text(copy)
        group = yaml.safe_load((harness / folder / group_file).read_text())
        aggregate = group["aggregate_metric_list"][0]
        filters = (
            f"    filter_list: {aggregate['filter_list']}\n" if "filter_list" in aggregate else ""
        )
        group_copy = GROUP_COPY.format(
            group=group["group"], task=task, metric=aggregate["metric"], filters=filters,
            version=group["metadata"]["version"],
        )  # fmt: skip
        (directory / f"{group['group']}.yaml").write_text(group_copy)
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


# lmms-eval's tasks (serving/.venv has lmms-eval, the project's environment does not): a copy
# names its split for lmms-eval as the harness's own file does. DocVQA's and VQAv2's rows are
# plain-colour pages asked for their colour; MathVista's first row has one choice, which
# lmms-eval's normalisation picks whatever the reply (so its score is at least 1/2 on any
# model), its second wants the number 4.
LMMS_COPY = """task: {name}
include: {include}
dataset_path: parquet
dataset_name: null
dataset_kwargs:
  data_files:
    {split}: {data}
{extra}"""
LMMS_COLOURS = ["red", "blue"]
MATHVISTA_QUERIES = [
    "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, "
    "at the end.\nQuestion: Which colour fills the picture?\nChoices:\n(A) red",
    "Hint: Please answer the question requiring an integer answer and provide the final value, "
    "e.g., 1, 2, 3, at the end.\nQuestion: How many sides has a square?",
]


def lmms_eval_tasks(python: Path) -> Path:
    """The task folder of the lmms-eval that `python` imports (found without importing it)."""
    find = "import importlib.util as u; print(*u.find_spec('lmms_eval').submodule_search_locations)"
    found = subprocess.run([python, "-c", find], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip()) / "tasks"


def write_lmms_task_copies(directory: Path, python: Path) -> Path:
    """Local copies of the study's lmms-eval tasks in `directory`, two rows each: docvqa_val,
    vqav2_val and mathvista_testmini_format (replies capped at 16 tokens, as for both models)."""
    import datasets
    from PIL import Image

    harness = lmms_eval_tasks(python)
    pages = [Image.new("RGB", (64, 64), colour) for colour in LMMS_COLOURS]
    question = ["Which colour fills the page?"] * len(LMMS_COLOURS)
    rows = {
        "docvqa_val": ("docvqa/docvqa_val.yaml", "validation", "image", {
            "image": pages, "question": question, "answers": [[c] for c in LMMS_COLOURS],
            "questionId": ["1", "2"],
        }),
        "vqav2_val": ("vqav2/vqav2_val.yaml", "validation", "image", {
            "image": pages, "question": question, "answer": LMMS_COLOURS, "question_id": [1, 2],
            "answers": [[{"answer": c, "answer_id": i} for i in range(10)] for c in LMMS_COLOURS],
        }),
        "mathvista_testmini_format": (
            "mathvista/mathvista_testmini_format.yaml", "testmini", "decoded_image", {
                "decoded_image": pages, "pid": ["1", "2"], "query": MATHVISTA_QUERIES,
                "question": ["Which colour fills the picture?", "How many sides has a square?"],
                "question_type": ["multi_choice", "free_form"],
                "answer_type": ["text", "integer"], "choices": [["red"], None],
                "answer": ["red", "4"], "precision": [None, None], "unit": [None, None],
                "metadata": [{"split": "testmini"}] * 2,
            },
        ),
    }  # fmt: skip
    for name, (include, split, image, columns) in rows.items():
        data = directory / f"{name}.parquet"
        dataset = datasets.Dataset.from_dict(columns).cast_column(image, datasets.Image())
        dataset.to_parquet(data)
        extra = "generation_kwargs:\n  max_new_tokens: 16\n" if "mathvista" in name else ""
        copy = LMMS_COPY.format(
            name=name, include=harness / include, split=split, data=data, extra=extra
        )
        (directory / f"{name}.yaml").write_text(copy)
    return directory
