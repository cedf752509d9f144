"""Versioned prompt templates (the .txt files beside this module); the version and the rendered text both
enter the request fingerprint, so a change of template is a new request."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from retinal_reason_data.schema import Item, QuestionType
from retinal_reason_data.tasks.options import LETTERS, format_options
from retinal_reason_data.text import stable_hash

PROMPT_VERSION = "v1"
GUIDED_PROMPT_VERSION = "guided-v1"


def _template(name: str) -> str:
    return (files(__name__) / name).read_text(encoding="utf-8").strip()


SYSTEM_PROMPT = _template("system.txt")
GUIDED_TEMPLATE = _template("guided.txt")
ANSWER_INSTRUCTIONS = {
    QuestionType(kind.strip()): text.strip()
    for kind, text in (line.split(":", 1) for line in _template("answer_formats.txt").splitlines() if line.strip())
}


def user_text(item: Item) -> str:
    """The question as the teacher reads it, after the images."""
    parts = [item.question]
    if item.options:
        parts.append("Options:\n" + format_options(item.options))
    parts.append(ANSWER_INSTRUCTIONS[item.question_type])
    return "\n".join(parts)


def answer_hint(item: Item) -> str:
    """The answer as a guided prompt states it: letters with their option texts, True/False, or the name."""
    if not item.options:
        return item.answer.text
    letters = [letter.strip() for letter in item.answer.text.split(",")]
    return ", ".join(f"{letter} ({item.options[LETTERS.index(letter)]})" for letter in letters)


def guided_text(item: Item) -> str:
    """The question followed by the guided instruction that states the answer."""
    return user_text(item) + "\n" + GUIDED_TEMPLATE.format(answer=answer_hint(item))


def build_messages(item: Item, image_urls: list[str], guided: bool = False) -> list[dict[str, Any]]:
    """Chat messages for an OpenAI-compatible endpoint: images first (data URLs), then the question."""
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    content.append({"type": "text", "text": guided_text(item) if guided else user_text(item)})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


def request_fingerprint(model: str, params: dict[str, Any], item: Item, attempt: int) -> str:
    """Identity of one blind request: model, parameters, prompt version and text, image hashes, attempt."""
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


def guided_fingerprint(model: str, params: dict[str, Any], item: Item, attempt: int) -> str:
    """Identity of one guided request (the teacher is told the answer); never equal to a blind one."""
    return stable_hash(
        model,
        sorted(params.items()),
        GUIDED_PROMPT_VERSION,
        SYSTEM_PROMPT,
        guided_text(item),
        *item.image_shas,
        "guided",
        attempt,
        length=32,
    )
