"""Versioned prompt templates; the version and the rendered text both enter the request fingerprint."""

from __future__ import annotations

from typing import Any

from retinal_reason_data.schema import Item, QuestionType
from retinal_reason_data.tasks.options import format_options
from retinal_reason_data.text import stable_hash

PROMPT_VERSION = "v1"

SYSTEM_PROMPT = (
    "You are an experienced ophthalmologist teaching residents. Look at the images carefully and reason "
    "step by step: describe the modality and what you see, relate the findings to the question, weigh "
    "every option, then conclude. Write your reasoning inside <think></think> and only the final answer "
    "inside <answer></answer>."
)

ANSWER_INSTRUCTIONS = {
    QuestionType.TRUE_FALSE: "Answer with True or False.",
    QuestionType.SINGLE_CHOICE: "Answer with the letter of the single correct option.",
    QuestionType.MULTIPLE_CHOICE: "Answer with the letters of all correct options, separated by commas (e.g. A,C).",
    QuestionType.OPEN: "Answer with the name of the finding or diagnosis only.",
}


def user_text(item: Item) -> str:
    """The question as the teacher reads it, after the images."""
    parts = [item.question]
    if item.options:
        parts.append("Options:\n" + format_options(item.options))
    parts.append(ANSWER_INSTRUCTIONS[item.question_type])
    return "\n".join(parts)


def build_messages(item: Item, image_urls: list[str]) -> list[dict[str, Any]]:
    """Chat messages for an OpenAI-compatible endpoint: images first (data URLs), then the question."""
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    content.append({"type": "text", "text": user_text(item)})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


def request_fingerprint(model: str, params: dict[str, Any], item: Item, attempt: int) -> str:
    """Identity of one request: model, parameters, prompt version and text, image hashes, attempt number."""
    return stable_hash(
        model,
        sorted(params.items()),
        PROMPT_VERSION,
        SYSTEM_PROMPT,
        user_text(item),
        *item.image_shas,
        attempt,
        length=32,
    )
