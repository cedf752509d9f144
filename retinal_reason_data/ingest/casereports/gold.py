"""Hand-annotated case reports (a gold set) and how the rules' answers compare with them.

A gold record (one JSON line) names the article file and what a person read in it: age, sex, chief complaint,
the final diagnosis with its synonyms and the abbreviations the article defines, what is *not* the diagnosis
(earlier misdiagnoses, conditions ruled out) and caption fragments that give the diagnosis away. Multi-case
articles give the same per case (`per_case`).

An exported answer is *right* when one of its names is the gold diagnosis, one of its synonyms or an
abbreviation of them, or a phrase of two words or more within the gold diagnosis's head (the part before its
qualifiers: 'congenital bile acid synthesis defect' of '... defect (HSD3B7 deficiency) with prolonged neonatal
hyperinsulinism') or a synonym, ending on the same word ('lung adenocarcinoma', not 'stage IVB'), or a name that
holds such a synonym ('stage IVB lung adenocarcinoma' holds 'lung adenocarcinoma'); it is *wrong* otherwise,
and always when it names something the gold calls not the diagnosis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.text import normalise_term

_HEAD_END = re.compile(
    r"\s*(?:\(|;|,|\bcaused\s+by\b|\bsecondary\s+to\b|\bdue\s+to\b|\bwith\b|\bafter\b|\bassociated\s+with\b|"
    r"\battributed\s+to\b|\bat\s+the\b|\bfrom\b)",
    re.I,
)


class GoldCase(BaseModel):
    """One patient of a gold article."""

    model_config = ConfigDict(extra="ignore")

    age: int | None = None
    sex: str | None = Field(default=None, description="'female', 'male' or null.")
    chief_complaint: str | None = None
    diagnosis: str


class GoldRecord(GoldCase):
    """One gold article (its first case at the top level; every case in `per_case`)."""

    id: str
    pmcid: str | None = None
    doi: str | None = None
    file: str = Field(default="", description="The article's XML, relative to the gold folder (articles/<id>.nxml).")
    title: str = ""
    diagnosis_synonyms: list[str] = Field(default_factory=list)
    abbreviations: dict[str, str] = Field(default_factory=dict)
    not_the_diagnosis: list[str] = Field(default_factory=list)
    caption_leaks: list[str] = Field(default_factory=list)
    per_case: list[GoldCase] = Field(default_factory=list)
    human: bool = True

    @property
    def path(self) -> str:
        return self.file or f"articles/{self.id}.nxml"

    def case(self, number: int) -> GoldCase:
        """The gold of the article's case `number` (1-based)."""
        return self.per_case[number - 1] if self.per_case else self


def sex_code(sex: str | None) -> str | None:
    """'female' -> 'F', 'male' -> 'M'."""
    return {"female": "F", "male": "M", "f": "F", "m": "M"}.get((sex or "").strip().lower())


def head(diagnosis: str) -> str:
    """The diagnosis before its qualifiers and causes, asides in brackets left out ('stage IVB (cT2bN3M1c) lung
    adenocarcinoma, EGFR ...' -> 'stage IVB lung adenocarcinoma')."""
    diagnosis = re.sub(r"\s*\([^()]*\)", "", diagnosis)
    found = _HEAD_END.search(diagnosis)
    return (diagnosis[: found.start()] if found else diagnosis).strip()


def _plain(text: str) -> str:
    """A 'not the diagnosis' note without its explanation in brackets."""
    return re.split(r"\s*\(", text, maxsplit=1)[0].strip()


def gold_names(record: GoldRecord, case: GoldCase) -> list[str]:
    """Every accepted name of a case's diagnosis: the diagnosis, its head, the synonyms, and the abbreviations
    whose expansion is one of them."""
    names = [case.diagnosis, head(case.diagnosis), *record.diagnosis_synonyms]
    normal = {normalise_term(name) for name in names}
    names += [short for short, long_form in record.abbreviations.items() if normalise_term(long_form) in normal]
    return list(dict.fromkeys(name for name in names if name.strip()))


def _contains(longer: str, shorter: str, same_head: bool = False) -> bool:
    """`shorter` within `longer` as whole words; with `same_head`, also ending on the same word (its head noun:
    'lung adenocarcinoma' is within 'stage IVB lung adenocarcinoma', 'stage IVB' does not count)."""
    longer, shorter = normalise_term(longer), normalise_term(shorter)
    if not shorter or f" {shorter} " not in f" {longer} ":
        return False
    return not same_head or shorter.split()[-1] == longer.split()[-1]


def judge_answer(answer_names: Iterable[str], record: GoldRecord, case: GoldCase) -> str:
    """'right' or 'wrong' (see the module's rule)."""
    names = [name for name in answer_names if name and name.strip()]
    refused = [_plain(text) for text in record.not_the_diagnosis]
    for name in names:
        for other in refused:
            if normalise_term(name) == normalise_term(other) or (len(name.split()) >= 2 and _contains(other, name)):
                return "wrong"
    accepted = gold_names(record, case)
    heads = [head(case.diagnosis), *record.diagnosis_synonyms]
    for name in names:
        if any(normalise_term(name) == normalise_term(gold) for gold in accepted):
            return "right"
        if len(normalise_term(name).split()) >= 2 and any(_contains(gold, name, same_head=True) for gold in heads):
            return "right"
        if any(len(normalise_term(gold).split()) >= 2 and _contains(name, gold, same_head=True) for gold in heads):
            return "right"
    return "wrong"


def leaks(text: str, record: GoldRecord, case: GoldCase) -> list[str]:
    """What of the gold diagnosis a question's text or caption gives away: its names (whole words, short forms
    with their case) and the caption fragments the gold lists."""
    found = []
    padded = f" {normalise_term(text)} "
    for name in gold_names(record, case):
        if name in record.abbreviations:
            if re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", text):
                found.append(name)
        elif (normal := normalise_term(name)) and f" {normal} " in padded:
            found.append(name)
    for fragment in record.caption_leaks:
        if (normal := normalise_term(fragment)) and f" {normal} " in padded:
            found.append(fragment)
    return found
