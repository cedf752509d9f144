"""Answer extraction and scoring: one implementation, used by verification and by the RL reward."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from retinal_reason_data.schema import QuestionType
from retinal_reason_data.text import normalise_term

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"</?(think|answer)>", re.IGNORECASE)
_SEPARATORS = re.compile(r"\s*(?:,|\band\b|&|/|;|\s)\s*", re.IGNORECASE)
_LETTER = re.compile(r"^\(?([A-Ha-h])\)?$")
_LEADING_OPTION = re.compile(r"^\(?([A-H])\)?[.):]\s+\S")
_ANSWER_PREFIX = re.compile(
    r"^(?:the\s+)?(?:final\s+)?(?:answer|diagnosis|most likely diagnosis|grade)\s*(?:is|:)\s*", re.IGNORECASE
)
TRUE_WORDS = {"true", "yes", "correct"}
FALSE_WORDS = {"false", "no", "incorrect"}


@dataclass(frozen=True)
class Verdict:
    well_formed: bool
    extracted: str | None
    correct: bool


def split_response(response: str) -> tuple[str | None, str | None]:
    """(think, answer) when the response is exactly one <think> block followed by one <answer> block."""
    thinks, answers = _THINK.findall(response), _ANSWER.findall(response)
    if len(thinks) != 1 or len(answers) != 1:
        return None, None
    if response.lower().find("<think>") > response.lower().find("<answer>"):
        return None, None
    if len(_TAG.findall(response)) != 4:
        return None, None
    return thinks[0].strip(), answers[0].strip()


def parse_letters(answer: str) -> frozenset[str] | None:
    """The set of option letters in an answer such as 'A', '(b)', 'A, C', 'A and C', 'B. Drusen'."""
    text = _ANSWER_PREFIX.sub("", answer.strip()).strip().rstrip(".").strip()
    tokens = [token for token in _SEPARATORS.split(text) if token]
    matches = [_LETTER.match(token) for token in tokens]
    if tokens and all(matches):
        return frozenset(m.group(1).upper() for m in matches if m)
    leading = _LEADING_OPTION.match(text)
    if leading and leading.group(1).isupper():
        return frozenset(leading.group(1))
    return None


def parse_bool(answer: str) -> bool | None:
    words = normalise_term(_ANSWER_PREFIX.sub("", answer)).split()
    if not words:
        return None
    if words[0] in TRUE_WORDS:
        return True
    if words[0] in FALSE_WORDS:
        return False
    return None


def matches_name(answer: str, accepted: Iterable[str]) -> bool:
    """Normalised exact match of an open answer against the accepted names (answer plus aliases)."""
    candidate = normalise_term(_ANSWER_PREFIX.sub("", answer.strip()).rstrip("."))
    return bool(candidate) and candidate in {normalise_term(name) for name in accepted}


def score(question_type: QuestionType | str, answer: str, aliases: Iterable[str], response: str) -> Verdict:
    """Check a response against an item's answer: letter sets, true/false, or accepted names."""
    _, extracted = split_response(response)
    if extracted is None:
        return Verdict(well_formed=False, extracted=None, correct=False)
    kind = QuestionType(question_type)
    if kind in (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE):
        expected = frozenset(letter.strip() for letter in answer.split(",") if letter.strip())
        correct = parse_letters(extracted) == expected
    elif kind is QuestionType.TRUE_FALSE:
        correct = parse_bool(extracted) == (normalise_term(answer) in TRUE_WORDS)
    else:
        correct = matches_name(extracted, [answer, *aliases])
    return Verdict(well_formed=True, extracted=extracted, correct=correct)
