"""Findings named in a caption: phrases that are exactly an accepted ontology name, never a guess.

A phrase counts when it is, after the ontology's normalisation, the name, a synonym or an abbreviation of an
entry seen in the image's modality. Longer phrases win over the shorter ones inside them ("central retinal
vein occlusion", not also "retinal vein occlusion"); abbreviations must match with their case ("PED", not
"ped"); a phrase in a clause that negates or contrasts it ("no signs of ...", "without ...", "mimicking
...") is skipped.
"""

from __future__ import annotations

import re

from retinal_reason_data.ontology import Entry, Ontology
from retinal_reason_data.schema import Modality
from retinal_reason_data.text import normalise_term

MAX_WORDS = 8
NEGATIONS = {
    "no",
    "not",
    "without",
    "absence",
    "absent",
    "negative",
    "excluded",
    "exclude",
    "ruled",
    "rule",
    "free",
    "nor",
    "neither",
    "versus",
    "vs",
    "differential",
    "mimicking",
    "mimics",
    "simulating",
    "resembling",
}
_CLAUSE = re.compile(r"[^.;:,!?()\[\]]+")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’/-]*")


def caption_findings(caption: str, ontology: Ontology, modality: Modality) -> list[str]:
    """The phrases of `caption` (as written) that name ontology entries; one phrase per entry, in order."""
    found: dict[str, str] = {}
    for clause in _CLAUSE.finditer(caption or ""):
        words = list(_WORD.finditer(clause.group()))
        start = 0
        while start < len(words):
            match = _longest(clause.group(), words, start, ontology, modality)
            if match is None:
                start += 1
                continue
            entry, phrase, length = match
            negated = any(word.group().lower() in NEGATIONS for word in words[:start])
            if not negated:
                found.setdefault(entry.code, phrase)
            start += length
    return list(found.values())


def _longest(
    text: str, words: list[re.Match[str]], start: int, ontology: Ontology, modality: Modality
) -> tuple[Entry, str, int] | None:
    for length in range(min(MAX_WORDS, len(words) - start), 0, -1):
        phrase = text[words[start].start() : words[start + length - 1].end()]
        entry = ontology.lookup(phrase)
        if entry is None or modality not in entry.modalities:
            continue
        spelled = {normalise_term(term) for term in [entry.name, *entry.synonyms]}
        if normalise_term(phrase) not in spelled and phrase not in entry.abbreviations:
            continue  # an abbreviation written in another case ('ped', 'Ma') is an ordinary word
        return entry, phrase, length
    return None
