"""Quality filters: ungradable photographs, questions that give their answer away, and bad teacher traces.

Each check returns the first reason (a short code counted in `rrd stats --json` under `dropped_by_filter`)
or None. Reasons:

- images: `ungradable_label` (the collection says so); the hard refusals `image_blank`, `image_no_field`,
  `image_too_dark`, `image_overexposed`; the quality gate's `image_blurred`,
  `image_hazy`, `image_uneven`, `image_colour_patchy` (named after the family of the measure that weighed most,
  see quality_gate.py);
- items: `answer_in_question` (an open question whose text states its answer);
- traces: `malformed_tags`, `think_too_short`, `think_too_long`, `answer_too_long`, `repetitive`,
  `non_english`, `refusal`, `hedging`, `given_answer`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import NamedTuple

from retinal_reason_data.curation.quality_gate import load_gate
from retinal_reason_data.recipe import FiltersSpec, ImageFilters
from retinal_reason_data.schema import ImageRef, Item, QuestionType
from retinal_reason_data.teacher.verify import split_response
from retinal_reason_data.text import normalise_term

IMAGE_REASONS = (
    "ungradable_label",
    "image_blank",
    "image_no_field",
    "image_too_dark",
    "image_overexposed",
    "image_blurred",
    "image_hazy",
    "image_uneven",
    "image_colour_patchy",
)
TRACE_REASONS = (
    "malformed_tags",
    "think_too_short",
    "think_too_long",
    "answer_too_long",
    "repetitive",
    "non_english",
    "refusal",
    "hedging",
    "given_answer",
)


class ImageRefusal(NamedTuple):
    """Why a photograph is refused: the reason code, the measure that decided (or weighed most) and its value."""

    reason: str
    measure: str
    value: float | None


def image_problem(image: ImageRef, gradable: bool | None, spec: ImageFilters) -> str | None:
    """Why this photograph cannot be graded (a reason code), or None; see `image_refusal`."""
    refusal = image_refusal(image, gradable, spec)
    return refusal.reason if refusal else None


def image_refusal(image: ImageRef, gradable: bool | None, spec: ImageFilters) -> ImageRefusal | None:
    """Why this photograph cannot be graded, or None. A collection's own label decides when it has one (and
    `trust_source_labels` is on); otherwise the hard refusals (blank, no field, too dark, overexposed, and the
    legacy `min_sharpness` when set) come first, then the quality gate fitted on graders' labels."""
    if not spec.enabled or image.modality not in spec.modalities:
        return None
    if spec.trust_source_labels and gradable is not None:
        return None if gradable else ImageRefusal("ungradable_label", "source_label", None)
    quality = image.quality
    if quality is None:
        return None
    if quality.contrast < spec.min_contrast:
        return ImageRefusal("image_blank", "contrast", quality.contrast)
    if quality.fov_fraction < spec.min_field_fraction:
        return ImageRefusal("image_no_field", "fov_fraction", quality.fov_fraction)
    if quality.brightness < spec.min_brightness:
        return ImageRefusal("image_too_dark", "brightness", quality.brightness)
    if quality.brightness > spec.max_brightness:
        return ImageRefusal("image_overexposed", "brightness", quality.brightness)
    if spec.min_sharpness > 0 and normalised_sharpness(image) < spec.min_sharpness:
        return ImageRefusal("image_blurred", "sharpness_normalised", round(normalised_sharpness(image), 4))
    if spec.gate:
        gate = load_gate(str(spec.gate_model) if spec.gate_model else None)
        verdict = gate.verdict(quality, spec.gate_threshold)
        if verdict is not None:
            reason, measure = verdict
            return ImageRefusal(reason, measure, getattr(quality, measure))
    return None


def normalised_sharpness(image: ImageRef) -> float:
    """Laplacian variance over squared contrast: blur lowers it, exposure and contrast do not."""
    quality = image.quality
    if quality is None or quality.contrast <= 0:
        return 0.0
    return quality.sharpness / quality.contrast**2


def item_problem(item: Item, spec: FiltersSpec) -> str | None:
    """Why this question should not be asked at all, or None."""
    if spec.answer_in_question and item.question_type == QuestionType.OPEN:
        question = f" {normalise_term(item.question)} "
        for name in (item.answer.text, *item.answer.aliases):
            term = normalise_term(name)
            if len(term) >= 4 and f" {term} " in question:
                return "answer_in_question"
    return None


# --- traces ---------------------------------------------------------------------------------------

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
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:am|'m)\s*(?:sorry|unable|not able)|i\s*(?:cannot|can't|can not|won't)\s*(?:help|provide|assist|"
    r"answer|diagnose|give|make|determine|interpret|view|see)|as an ai\b|as a language model|"
    r"(?:please\s+)?consult (?:a|an|your) (?:doctor|physician|ophthalmologist|eye (?:doctor|care)|specialist|"
    r"healthcare)|not (?:a substitute|intended) (?:for|as) (?:professional )?medical advice|"
    r"i (?:do not|don't) have (?:access to|the ability to view) (?:the )?image)",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"\b(?:i(?:'m| am) not (?:sure|certain)|i (?:cannot|can't) be (?:sure|certain)|"
    r"(?:it is|it's) (?:difficult|hard|impossible) to (?:say|tell|determine|be certain)|"
    r"cannot be (?:determined|assessed|concluded)|(?:without|in the absence of) (?:further|more|additional) "
    r"(?:information|tests|testing|examination|clinical)[^.]{0,40}(?:impossible|cannot|can't)|"
    r"i (?:would be|am) guessing|just a guess|hard to be sure|could be (?:any|either) of)",
    re.IGNORECASE,
)
_GIVEN_ANSWER = re.compile(
    r"\b(?:(?:the|a) (?:given|provided|supplied|reference|expected|correct) answer (?:is|was|says|of)|"
    r"(?:i was|we were|we are|i am|i've been|i have been) (?:told|given|provided with|shown) (?:that )?the "
    r"(?:answer|diagnosis|correct option)|(?:as|since) (?:the )?(?:hint|prompt|answer key|ground truth) "
    r"(?:says|states|indicates|tells)|according to the (?:provided |given )?(?:answer|hint|answer key|"
    r"ground truth)|ground[- ]truth (?:answer|label)|answer key)",
    re.IGNORECASE,
)


def trace_problem(response: str, spec: FiltersSpec, item: Item | None = None) -> str | None:
    """The first reason this trace should not be exported, or None when it passes."""
    think, answer = split_response(response)
    if think is None or answer is None:
        return "malformed_tags"
    if len(think) < spec.min_think_chars:
        return "think_too_short"
    if len(think) > spec.max_think_chars:
        return "think_too_long"
    if len(answer) > spec.max_answer_chars:
        return "answer_too_long"
    if _repetitive(think, spec):
        return "repetitive"
    if english_ratio(f"{think} {answer}") < spec.min_english_ratio:
        return "non_english"
    if spec.refusals and (_REFUSAL.search(think) or _REFUSAL.search(answer)):
        return "refusal"
    if len(_HEDGE.findall(think)) + len(_HEDGE.findall(answer)) > spec.max_hedges:
        return "hedging"
    if spec.given_answer and _GIVEN_ANSWER.search(think):
        return "given_answer"
    return None


def _repetitive(think: str, spec: FiltersSpec) -> bool:
    lines = [line.strip().lower() for line in think.splitlines() if line.strip()]
    if len(lines) >= 4:
        repeated = sum(count - 1 for count in Counter(lines).values())
        if repeated / len(lines) > spec.max_repeated_line_ratio:
            return True
    words = think.lower().split()
    size = 6
    if len(words) < 4 * size:
        return False
    grams = Counter(tuple(words[k : k + size]) for k in range(len(words) - size + 1))
    repeated = sum(count - 1 for count in grams.values())
    return repeated / (len(words) - size + 1) > spec.max_repeated_ngram_ratio


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
