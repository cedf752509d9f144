"""The trace checks, one registered entry each: reason code, what it means (for the curation report), the recipe
fields that tune it, and the test. `trace_problem` runs them in registration order and returns the first reason
that fires; the order matters (a malformed trace is never measured, a short one is never called repetitive).

To add a filter: write its test as a function of (trace, filters spec), decorate it with `@trace_check(...)` at
the place in the order where it belongs, add its recipe field to `recipe.FiltersSpec`, and give
tests/test_trace_checks.py a sample that trips it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from retinal_reason_data.recipe import FiltersSpec
from retinal_reason_data.teacher.verify import split_response


@dataclass(frozen=True)
class Trace:
    """A teacher response split into its reasoning and its answer (both empty when the tags are malformed)."""

    think: str
    answer: str
    well_formed: bool

    @classmethod
    def parse(cls, response: str) -> Trace:
        think, answer = split_response(response)
        if think is None or answer is None:
            return cls("", "", False)
        return cls(think, answer, True)


TraceTest = Callable[[Trace, FiltersSpec], bool]


@dataclass(frozen=True)
class TraceCheck:
    """One filter: the reason it drops a trace for, what that means, the `filters.*` recipe fields that tune or
    switch it, and the test (True when the trace should be dropped)."""

    reason: str
    description: str
    recipe_fields: tuple[str, ...]
    fires: TraceTest


TRACE_CHECKS: list[TraceCheck] = []


def trace_check(reason: str, description: str, *recipe_fields: str) -> Callable[[TraceTest], TraceTest]:
    """Register the decorated test as the next trace check in the order."""

    def register(test: TraceTest) -> TraceTest:
        if any(check.reason == reason for check in TRACE_CHECKS):
            raise ValueError(f"trace check {reason!r} is registered twice")
        unknown = [name for name in recipe_fields if name not in FiltersSpec.model_fields]
        if unknown:
            raise ValueError(f"trace check {reason!r} names unknown recipe fields filters.{unknown}")
        TRACE_CHECKS.append(TraceCheck(reason, description, recipe_fields, test))
        return test

    return register


def first_problem(response: str, spec: FiltersSpec) -> str | None:
    """The reason of the first registered check that fires on this response, or None when it passes them all."""
    trace = Trace.parse(response)
    for check in TRACE_CHECKS:
        if check.fires(trace, spec):
            return check.reason
    return None


def trace_descriptions() -> dict[str, str]:
    """Reason code -> what it means, in check order."""
    return {check.reason: check.description for check in TRACE_CHECKS}


_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+(?:'[a-z]+)?")
_ENGLISH_WORDS = """
    a about above after again all also an and any are as at be because been before being below between both but by
    can could did do does due each either for from further had has have having he her here his how however i if in
    into is it its itself may might more most must no nor not of on once only or other our out over own rather same
    shall she should since so some such than that the their them then there these they this those though through
    thus to too under until up upon very was we were what when where whether which while who whom why will with
    within without would yet you your"""
_ENGLISH = frozenset(_ENGLISH_WORDS.split())
# frequent function words of Spanish, French, German, Portuguese and Italian that are not English words
_FOREIGN_WORDS = """
    el la los las del que y en un una por con para es se lo como pero sus le les des du et est une dans pour qui
    sur pas avec sont der die das und ist nicht ein eine mit den dem zu auf auch sich dass von oder os da em uma
    não com para mais il di che non per sono della nel gli"""
_FOREIGN = frozenset(_FOREIGN_WORDS.split())
_NOT_ASCII_LETTERS = bytes(b for b in range(256) if not (65 <= b <= 90 or 97 <= b <= 122))
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def english_ratio(text: str) -> float:
    """How English a text looks, 0-1: the share of its letters that are Latin, scaled down when the function
    words of other European languages outnumber English ones (terse English lists of findings still pass)."""
    # ASCII letters are Latin and are counted in C; only the few other characters are looked up by name (a
    # name per character was most of curation's time: 0.5 s per thousand traces)
    ascii_letters = len(text.encode("ascii", "ignore").translate(None, _NOT_ASCII_LETTERS))
    other_letters = [c for c in _NON_ASCII.findall(text) if c.isalpha()]
    if not ascii_letters and not other_letters:
        return 1.0
    latin_others = sum(1 for c in other_letters if "LATIN" in unicodedata.name(c, ""))
    latin = (ascii_letters + latin_others) / (ascii_letters + len(other_letters))
    words = [w.lower() for w in _WORD.findall(text)]
    english = sum(1 for w in words if w in _ENGLISH)
    foreign = sum(1 for w in words if w in _FOREIGN)
    if foreign >= 3 and foreign > english:
        return latin * english / (english + foreign)
    return latin


# --- the checks, in order -------------------------------------------------------------------------


@trace_check("malformed_tags", "not exactly one <think> block followed by one <answer> block")
def _malformed(trace: Trace, spec: FiltersSpec) -> bool:
    return not trace.well_formed


@trace_check("think_too_short", "reasoning shorter than filters.min_think_chars", "min_think_chars")
def _too_short(trace: Trace, spec: FiltersSpec) -> bool:
    return len(trace.think) < spec.min_think_chars


@trace_check("think_too_long", "reasoning longer than filters.max_think_chars", "max_think_chars")
def _too_long(trace: Trace, spec: FiltersSpec) -> bool:
    return len(trace.think) > spec.max_think_chars


@trace_check("answer_too_long", "answer longer than filters.max_answer_chars", "max_answer_chars")
def _answer_too_long(trace: Trace, spec: FiltersSpec) -> bool:
    return len(trace.answer) > spec.max_answer_chars


@trace_check(
    "repetitive",
    "repeated lines or word 6-grams above the recipe's ratios",
    "max_repeated_line_ratio",
    "max_repeated_ngram_ratio",
)
def _repetitive(trace: Trace, spec: FiltersSpec) -> bool:
    lines = [line.strip().lower() for line in trace.think.splitlines() if line.strip()]
    if len(lines) >= 4:
        repeated = sum(count - 1 for count in Counter(lines).values())
        if repeated / len(lines) > spec.max_repeated_line_ratio:
            return True
    words = trace.think.lower().split()
    size = 6
    if len(words) < 4 * size:
        return False
    grams = Counter(tuple(words[k : k + size]) for k in range(len(words) - size + 1))
    repeated = sum(count - 1 for count in grams.values())
    return repeated / (len(words) - size + 1) > spec.max_repeated_ngram_ratio


@trace_check("non_english", "non-Latin script, or function words of another language", "min_english_ratio")
def _non_english(trace: Trace, spec: FiltersSpec) -> bool:
    return english_ratio(f"{trace.think} {trace.answer}") < spec.min_english_ratio


_REFUSAL = re.compile(
    r"\b(?:i\s*(?:am|'m)\s*(?:sorry|unable|not able)|i\s*(?:cannot|can't|can not|won't)\s*(?:help|provide|assist|"
    r"answer|diagnose|give|make|determine|interpret|view|see)|as an ai\b|as a language model|"
    r"(?:please\s+)?consult (?:a|an|your) (?:doctor|physician|ophthalmologist|eye (?:doctor|care)|specialist|"
    r"healthcare)|not (?:a substitute|intended) (?:for|as) (?:professional )?medical advice|"
    r"i (?:do not|don't) have (?:access to|the ability to view) (?:the )?image)",
    re.IGNORECASE,
)


@trace_check("refusal", "the teacher refuses, or defers to a clinician", "refusals")
def _refusal(trace: Trace, spec: FiltersSpec) -> bool:
    return spec.refusals and bool(_REFUSAL.search(trace.think) or _REFUSAL.search(trace.answer))


_HEDGE = re.compile(
    r"\b(?:i(?:'m| am) not (?:sure|certain)|i (?:cannot|can't) be (?:sure|certain)|"
    r"(?:it is|it's) (?:difficult|hard|impossible) to (?:say|tell|determine|be certain)|"
    r"cannot be (?:determined|assessed|concluded)|(?:without|in the absence of) (?:further|more|additional) "
    r"(?:information|tests|testing|examination|clinical)[^.]{0,40}(?:impossible|cannot|can't)|"
    r"i (?:would be|am) guessing|just a guess|hard to be sure|could be (?:any|either) of)",
    re.IGNORECASE,
)


@trace_check("hedging", "more explicit non-committal phrases than filters.max_hedges", "max_hedges")
def _hedging(trace: Trace, spec: FiltersSpec) -> bool:
    return len(_HEDGE.findall(trace.think)) + len(_HEDGE.findall(trace.answer)) > spec.max_hedges


_GIVEN_ANSWER = re.compile(
    r"\b(?:(?:the|a) (?:given|provided|supplied|reference|expected|correct) answer (?:is|was|says|of)|"
    r"(?:i was|we were|we are|i am|i've been|i have been) (?:told|given|provided with|shown) (?:that )?the "
    r"(?:answer|diagnosis|correct option)|(?:as|since) (?:the )?(?:hint|prompt|answer key|ground truth) "
    r"(?:says|states|indicates|tells)|according to the (?:provided |given )?(?:answer|hint|answer key|"
    r"ground truth)|ground[- ]truth (?:answer|label)|answer key)",
    re.IGNORECASE,
)


@trace_check("given_answer", "the trace says it was given the answer", "given_answer")
def _given_answer(trace: Trace, spec: FiltersSpec) -> bool:
    return spec.given_answer and bool(_GIVEN_ANSWER.search(trace.think))
