"""MathVista scored without a judge model.

lmms-eval's MathVista sends every reply it cannot parse to a GPT judge (an OpenAI account, the
network, a score that moves with the judge). The study's harness, mistral-evals, extracts the
answer by rule instead; so does this program. The task is lmms-eval's `mathvista_testmini_format`
as it ships (its images, prompts that ask for the answer in a set format, its answer
normalisation and comparison); only the extraction step differs, and the metric says so:
`judge_free_accuracy`. The same rules score the baseline and the quantized model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

METRIC = "judge_free_accuracy"
# What a reply names as its answer: the text after the last "answer is", "Answer:" or
# "Final Answer:", without quotes and a closing full stop.
MARKED = re.compile(r"answer(?:\s+is)?\s*[:：]?\s*(.+)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# A choice named by its letter alone: "B", "(B)" or "B.".
LETTER = re.compile(r"^\(?([A-Z])\)?\.?$")


def extract_answer(
    response: str, question_type: str, answer_type: str, choices: Sequence[str] | None
) -> str:
    """The answer a reply gives, by rule: a choice's text or letter for a multiple-choice
    question (lmms-eval then maps a letter to its choice, other text to the nearest choice by
    edit distance), the last number for a numeric answer, else the reply's answer text."""
    text = response.strip()
    if marked := MARKED.findall(text):
        text = marked[-1].strip().rstrip(".").strip("\"' ")
    if question_type == "multi_choice":
        if text in (choices or ()):
            return text
        letter = LETTER.match(text)
        return letter.group(1) if letter else text
    if answer_type in ("integer", "float"):
        numbers = NUMBER.findall(text.replace(",", ""))
        return numbers[-1] if numbers else ""
    return text


def process_results(doc: Mapping[str, Any], results: Sequence[str]) -> dict[str, float]:
    """lmms-eval's process_results for MathVista, judge-free: our extraction, then the task's
    own normalisation and comparison."""
    from lmms_eval.tasks.mathvista.utils import mathvista_evaluator

    choices = doc["choices"] or []
    extraction = extract_answer(results[0], doc["question_type"], doc["answer_type"], choices)
    prediction = mathvista_evaluator.normalize_extracted_answer(
        extraction, choices, doc["question_type"], doc["answer_type"], doc["precision"]
    )
    return {METRIC: float(mathvista_evaluator.safe_equal(prediction, doc["answer"]))}


# lmms-eval task configs laid over the installed ones, by harness task name.
OVERRIDES: dict[str, dict[str, Any]] = {
    "mathvista_testmini_format": {
        "process_results": process_results,
        "metric_list": [{"metric": METRIC, "aggregation": "mean", "higher_is_better": True}],
    },
}
