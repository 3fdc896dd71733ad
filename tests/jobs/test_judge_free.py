"""MathVista's answer extraction without a judge model: what a reply names as its answer."""

from __future__ import annotations

import pytest

from quantfleet_jobs.judge_free import extract_answer

CHOICES = ["red", "blue", "green"]


@pytest.mark.parametrize(
    ("response", "question_type", "answer_type", "want"),
    [
        pytest.param("blue", "multi_choice", "text", "blue", id="a choice's text"),
        pytest.param("(B)", "multi_choice", "text", "B", id="a letter in brackets"),
        pytest.param("The answer is C.", "multi_choice", "text", "C", id="a marked letter"),
        pytest.param(
            'Looking at it, the answer is "green".',
            "multi_choice",
            "text",
            "green",
            id="a marked, quoted choice",
        ),
        pytest.param(
            "A square has four sides",
            "multi_choice",
            "text",
            "A square has four sides",
            id="prose: left to the nearest-choice match",
        ),
        pytest.param("4", "free_form", "integer", "4", id="a bare integer"),
        pytest.param(
            "Each side is 2, so 2 + 2 = 4. Final Answer: 1,024",
            "free_form",
            "integer",
            "1024",
            id="the marked number, thousands separator dropped",
        ),
        pytest.param("It is about -3.75 m", "free_form", "float", "-3.75", id="the last number"),
        pytest.param("no idea", "free_form", "integer", "", id="no number: no answer"),
        pytest.param("Answer: [1, 2]", "free_form", "list", "[1, 2]", id="a list, as written"),
    ],
)
def test_the_answer_a_reply_names_is_extracted_by_rule(
    response: str, question_type: str, answer_type: str, want: str
) -> None:
    choices = CHOICES if question_type == "multi_choice" else None
    assert extract_answer(response, question_type, answer_type, choices) == want
