"""Scoring a reply against an item's answer: one implementation, used by verification and by the RL reward.

`reply.read_reply` finds the reasoning and the answer (linear time, a length cap, the format rules);
`answers` reads the answer (decorations off, letters, truth values, names, hedges refused). A `Verdict` keeps
the format apart from the answer: `well_formed` is the format score, `accurate` the reward's accuracy, and
`correct` (both) what verification keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from retinal_reason_data.schema import QuestionType
from retinal_reason_data.teacher.answers import (
    FALSE_WORDS,
    TRUE_WORDS,
    Judged,
    judge_letters,
    judge_name,
    judge_truth,
    matches_name,
    parse_bool,
    parse_letters,
)
from retinal_reason_data.teacher.reply import MAX_REPLY_CHARS, read_reply
from retinal_reason_data.text import normalise_term

__all__ = [
    "FALSE_WORDS",
    "MAX_REPLY_CHARS",
    "TRUE_WORDS",
    "Verdict",
    "matches_name",
    "parse_bool",
    "parse_letters",
    "score",
    "split_response",
]


@dataclass(frozen=True)
class Verdict:
    """`well_formed`: the reply follows the <think>/<answer> layout; `extracted`: the answer read from it (None
    when there is none); `accurate`: that answer is right and nothing voids it; `correct`: well formed and
    accurate (what verification keeps); `problem`: the first thing wrong, None for a right, well-formed reply."""

    well_formed: bool
    extracted: str | None
    correct: bool
    accurate: bool = False
    problem: str | None = None


def split_response(response: str) -> tuple[str | None, str | None]:
    """(think, answer) of a reply in exactly the exported layout: `<think>`, `</think>`, `<answer>`,
    `</answer>` (any case, no spaces inside the tags), each once, in order, with nothing but whitespace and
    end-of-turn tokens outside the blocks; (None, None) otherwise. Stricter than `score`, which also accepts a
    pre-filled `<think>` and spaced tags: the `sft` rows keep only replies that a trainer can use as they are."""
    reading = read_reply(response, max_chars=None)
    if reading.form != "standard" or not reading.exact_tags or not reading.usable:
        return None, None
    return reading.think, reading.answer


def score(
    question_type: QuestionType | str,
    answer: str,
    aliases: list[str] | tuple[str, ...],
    response: str,
    max_reply_chars: int | None = MAX_REPLY_CHARS,
) -> Verdict:
    """Check a reply against an item's answer: letter sets, true/false, or accepted names (`answers`)."""
    reading = read_reply(response, max_reply_chars)
    if reading.answer is None:
        return Verdict(well_formed=False, extracted=None, correct=False, problem=reading.problem)
    judged = _judge(QuestionType(question_type), answer, tuple(aliases), reading.answer) if reading.usable else None
    accurate = judged is not None and judged.right
    problem = reading.problem or (judged.problem if judged else None)
    return Verdict(
        well_formed=reading.well_formed,
        extracted=reading.answer,
        correct=reading.well_formed and accurate,
        accurate=accurate,
        problem=problem,
    )


def _judge(kind: QuestionType, answer: str, aliases: tuple[str, ...], given: str) -> Judged:
    if kind in (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE):
        expected = frozenset(letter.strip().upper() for letter in answer.split(",") if letter.strip())
        return judge_letters(given, expected, single=kind is QuestionType.SINGLE_CHOICE)
    if kind is QuestionType.TRUE_FALSE:
        return judge_truth(given, normalise_term(answer) in TRUE_WORDS)
    return judge_name(given, (answer, *aliases))
