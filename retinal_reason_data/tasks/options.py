"""Choosing distractors and laying out lettered options, deterministically."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from functools import lru_cache

from retinal_reason_data.ontology import Entry, Ontology
from retinal_reason_data.schema import Modality
from retinal_reason_data.text import normalise_term, stable_hash

LETTERS = "ABCDEFGH"


def seeded_rng(*parts: object) -> random.Random:
    """A private RNG whose sequence depends only on `parts` (recipe seed, item identity)."""
    return random.Random(int(stable_hash(*parts), 16))


def pick_distractors(
    ontology: Ontology,
    answer_codes: Sequence[str],
    present_codes: Iterable[str],
    modalities: Iterable[Modality],
    count: int,
    rng: random.Random,
    categories: Iterable[str] | None = None,
    exclude_names: Iterable[str] = (),
) -> list[Entry]:
    """Distractors for a finding that is not a grade: entries of the same modality (the answer's category
    first) that are neither synonyms of the answer nor findings the case also has, nor a broader or narrower
    form of either ("Retinal vein occlusion" is also right when the answer is "Branch retinal vein occlusion"),
    and never a grade of an ordered scale (a graded answer's alternatives are the other grades of its scale:
    tasks/basic.py)."""
    present = set(present_codes) | set(answer_codes)
    modality_set = set(modalities)
    wanted = set(categories) if categories is not None else {ontology.entry(c).category for c in answer_codes}
    excluded = {normalise_term(name) for name in exclude_names}

    def allowed(entry: Entry) -> bool:
        if entry.scale is not None or entry.code in present or not modality_set & set(entry.modalities):
            return False
        known = [code for code in present if code in ontology.entries]
        if any(ontology.same_concept(entry.code, code) for code in known):
            return False
        if any(nested_names(entry.name, ontology.entry(code).name) for code in known):
            return False
        return not ontology.names(entry.code) & excluded

    pool = [entry for entry in ontology.entries.values() if allowed(entry)]
    preferred = [entry for entry in pool if entry.category in wanted]
    others = [entry for entry in pool if entry.category not in wanted]
    rng.shuffle(preferred)
    rng.shuffle(others)
    return (preferred + others)[:count]


_FILLER = frozenset({"of", "the", "and", "with", "in", "to", "a", "an", "or", "for", "on", "due"})


@lru_cache(maxsize=4096)
def _name_words(name: str) -> frozenset[str]:
    return frozenset(normalise_term(name).split()) - _FILLER


def nested_names(first: str, second: str) -> bool:
    """True when one name's words contain the other's (a negation aside): a broader or narrower form of one
    finding ("Diabetic retinopathy" and "Severe non-proliferative diabetic retinopathy"), which cannot be a wrong
    option for it."""
    words, other = _name_words(first), _name_words(second)
    if ("no" in words) != ("no" in other):
        return False  # "Glaucoma" and "No glaucoma" contradict each other: a fair wrong option
    return bool(words and other) and (words <= other or other <= words)


def lay_out(correct: Sequence[str], wrong: Sequence[str], rng: random.Random) -> tuple[list[str], str]:
    """Shuffle option texts; return them with the answer as sorted letters joined by commas ('A,C')."""
    tagged = [(text, True) for text in correct] + [(text, False) for text in wrong]
    rng.shuffle(tagged)
    options = [text for text, _ in tagged]
    letters = ",".join(LETTERS[i] for i, (_, is_correct) in enumerate(tagged) if is_correct)
    return options, letters


def format_options(options: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(options))
