"""Answer extraction and scoring, shared by verification and the RL reward."""

from __future__ import annotations

import json

import pytest

from retinal_reason_data.rewards import compute_score, make_ground_truth
from retinal_reason_data.verify import parse_letters, score, split_response


def wrap(answer: str, think: str = "Step 1: look.") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


@pytest.mark.parametrize(
    "text, letters",
    [
        ("A", {"A"}),
        ("(b)", {"B"}),
        ("A, C", {"A", "C"}),
        ("C,A", {"A", "C"}),
        ("A and C", {"A", "C"}),
        ("B. Drusen", {"B"}),
        ("The answer is D.", {"D"}),
        (" a ,  c ", {"A", "C"}),
    ],
)
def test_letters_are_parsed_in_any_order_and_spacing(text: str, letters: set[str]) -> None:
    assert parse_letters(text) == frozenset(letters)


@pytest.mark.parametrize("text", ["Drusen", "About 3", "none of them", ""])
def test_non_letter_answers_are_not_letters(text: str) -> None:
    assert parse_letters(text) is None


def test_choice_scoring_is_set_equality() -> None:
    assert score("multiple_choice", "A,C", [], wrap("C, A")).correct
    assert not score("multiple_choice", "A,C", [], wrap("A")).correct
    assert not score("multiple_choice", "A,C", [], wrap("A,B,C")).correct
    assert score("single_choice", "B", [], wrap("b")).correct


def test_true_false_scoring() -> None:
    assert score("true_false", "True", [], wrap("Yes")).correct
    assert score("true_false", "False", [], wrap("false.")).correct
    assert not score("true_false", "False", [], wrap("True")).correct


def test_open_scoring_accepts_synonyms_and_spelling_variants_only() -> None:
    aliases = ["diabetic macular edema", "DME"]
    assert score("open", "Diabetic macular oedema", aliases, wrap("diabetic macular edema")).correct
    assert score("open", "Diabetic macular oedema", aliases, wrap("DME")).correct
    assert score("open", "Diabetic macular oedema", aliases, wrap("The diagnosis is Diabetic Macular Oedema.")).correct
    assert not score("open", "Diabetic macular oedema", aliases, wrap("macular hole")).correct
    assert not score("open", "No diabetic retinopathy", [], wrap("diabetic retinopathy")).correct


@pytest.mark.parametrize(
    "response",
    [
        "<answer>A</answer>",
        "<think>x</think>",
        "<answer>A</answer><think>x</think>",
        "<think>x</think><answer>A</answer><answer>B</answer>",
        "<think>x<think>y</think><answer>A</answer>",
        "A",
    ],
)
def test_malformed_responses_score_zero(response: str) -> None:
    verdict = score("single_choice", "A", [], response)
    assert not verdict.well_formed and not verdict.correct
    assert split_response(response) == (None, None)


def test_compute_score_has_verls_signature_and_weights() -> None:
    truth = make_ground_truth("single_choice", "B", [])
    assert json.loads(truth)["answer"] == "B"
    assert compute_score("rrd", wrap("B"), truth) == pytest.approx(1.0)
    assert compute_score("rrd", wrap("C"), truth, extra_info={"id": 1}) == pytest.approx(0.1)
    assert compute_score("rrd", "B", truth) == 0.0
