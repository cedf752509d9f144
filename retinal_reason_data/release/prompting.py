"""The question as trainers show it to a model: the teacher's wording (question, lettered options, the
answer-format instruction of the question type) plus the <think>/<answer> instruction the reward checks."""

from __future__ import annotations

from typing import Any

from retinal_reason_data.schema import QuestionType
from retinal_reason_data.tasks.options import format_options
from retinal_reason_data.teacher.prompts import ANSWER_INSTRUCTIONS

IMAGE_PLACEHOLDER = "<image>"
TAG_INSTRUCTION = "Think step by step inside <think></think>, then give only the final answer inside <answer></answer>."


def question_with_options(row: dict[str, Any]) -> str:
    """The question followed by its lettered options (as released datasets show multiple-choice questions)."""
    if not row["options"]:
        return row["question"]
    return row["question"] + "\n" + format_options(row["options"])


def prompt_text(row: dict[str, Any]) -> str:
    """Question, options, the answer format of its type, and the tag instruction."""
    parts = [row["question"]]
    if row["options"]:
        parts.append("Options:\n" + format_options(row["options"]))
    parts += [ANSWER_INSTRUCTIONS[QuestionType(row["question_type"])], TAG_INSTRUCTION]
    return "\n".join(parts)


def with_placeholders(text: str, images: int) -> str:
    """One `<image>` per image before the text: verl, EasyR1 and LLaMA-Factory pair them with the images
    in order and require as many placeholders as images."""
    return IMAGE_PLACEHOLDER * images + text
