"""Failure classes: refusals, guided traces that give away the answer, secrets in error messages."""

from __future__ import annotations

import pytest

from retinal_reason_data.teacher.outcomes import is_refusal, redact, reveals_guidance, status_kind


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with interpreting medical images.",
        "I cannot provide a diagnosis from this image.",
        "Unfortunately, I am unable to analyze medical images.",
        "Sorry, I won't answer that.",
    ],
)
def test_untagged_declines_are_refusals(text: str) -> None:
    assert is_refusal(text, None, "stop")


def test_provider_refusal_field_and_content_filter_are_refusals() -> None:
    assert is_refusal(None, "I can't assist with that.", "stop")
    assert is_refusal(None, None, "content_filter")


def test_a_tagged_answer_that_hedges_is_not_a_refusal() -> None:
    text = "<think>I cannot be certain, but the exudates suggest it.</think><answer>B</answer>"
    assert not is_refusal(text, None, "stop")
    assert not is_refusal("The optic disc looks normal.", None, "stop")


@pytest.mark.parametrize(
    "text",
    [
        "<think>The given answer is drusen, so I explain why.</think><answer>B</answer>",
        "<think>We are told the answer is B; the image shows...</think><answer>B</answer>",
        "<think>Since the answer was provided, I will justify the answer.</think><answer>B</answer>",
        "<think>As stated in the prompt, it is CNV.</think><answer>CNV</answer>",
        "<think>For teaching purposes, the correct answer is B.</think><answer>B</answer>",
        "<think>Working backwards from the expected answer...</think><answer>A</answer>",
        "<think>The prompt says the answer is True.</think><answer>True</answer>",
    ],
)
def test_guided_traces_that_say_they_were_told_are_caught(text: str) -> None:
    assert reveals_guidance(text)


@pytest.mark.parametrize(
    "text",
    [
        "<think>Step 1: a colour fundus photograph. Step 2: hard exudates near the fovea. "
        "Therefore the correct answer is B.</think><answer>B</answer>",
        "<think>The question asks which finding is present; option C is not supported.</think><answer>A</answer>",
        "<think>The patient was referred after reduced vision; the OCT shows fluid.</think><answer>DME</answer>",
    ],
)
def test_ordinary_traces_are_not_flagged(text: str) -> None:
    assert not reveals_guidance(text)


def test_redact_removes_the_key_and_key_shaped_strings() -> None:
    message = "Incorrect API key provided: sk-live-abcdef123456. Also mytoken-XYZ was sent."
    cleaned = redact(message, ["mytoken-XYZ"])
    assert "abcdef123456" not in cleaned and "mytoken-XYZ" not in cleaned and "Incorrect API key" in cleaned


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "rate_limited"), (500, "server_error"), (503, "server_error"), (401, "auth_error"), (404, "not_found")],
)
def test_status_kinds(status: int, kind: str) -> None:
    assert status_kind(status) == kind
    assert status_kind(400) == "bad_request" and status_kind(408) == "timeout"
