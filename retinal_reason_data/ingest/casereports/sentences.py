"""Sentences of case-report prose, and abbreviations the article defines for itself."""

from __future__ import annotations

import re

from retinal_reason_data.ingest.casereports.jats import normalise_characters

_ABBREVIATION_END = re.compile(r"\b(?:Dr|Mr|Ms|Mrs|Fig|Figs|vs|No|approx|ca|St|Prof|al|e\.g|i\.e|cf|resp)\.$", re.I)
# A sentence ends at a full stop and a space before a capital or digit, or at a full stop that a typesetting slip
# glued to the next sentence ('right eye.After 20 days'): two lower-case letters, '.', a capitalised word.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|(?<=[a-z]{2}\.)(?=[A-Z][a-z]{2})")
# 'pulmonary hypertension syndrome (PHS)': a short form in brackets after its long form
_SHORT_IN_BRACKETS = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9&/-]{1,11})\s*(?:[;,][^()]*)?\)")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'/-]*")


def split_sentences(text: str) -> list[str]:
    """Sentences of prose (abbreviations such as 'Dr.', 'Fig.', 'e.g.' and decimals do not end one)."""
    sentences: list[str] = []
    for paragraph in normalise_characters(text).splitlines():
        pieces = [piece.strip() for piece in _SENTENCE_END.split(paragraph) if piece.strip()]
        merged: list[str] = []
        for piece in pieces:
            if merged and _ABBREVIATION_END.search(merged[-1]):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        sentences += merged
    return sentences


def is_short_form(token: str) -> bool:
    """'PHS', 'CSCR', 'mCNV', 'HSD3B7': one word, at least two capitals, at most 11 characters."""
    return bool(token) and " " not in token and len(token) <= 11 and sum(c.isupper() for c in token) >= 2


def abbreviation_definitions(text: str) -> dict[str, str]:
    """Short form -> long form for every 'long form (SHORT)' the text writes, first definition kept. The long
    form is the fewest words before the bracket whose letters spell the short form in order, the first letter
    starting a word (Schwartz and Hearst's rule: 'central serous chorioretinopathy (CSC)', 'pulmonary
    hypertension syndrome (PHS)'); brackets that no preceding words spell ('(n = 3)', '(OD)') define nothing."""
    found: dict[str, str] = {}
    for match in _SHORT_IN_BRACKETS.finditer(normalise_characters(text)):
        short = match.group(1)
        if not is_short_form(short) or short in found:
            continue
        before = text[max(0, match.start() - 200) : match.start()]
        before = re.split(r"[.;:()\[\]]", normalise_characters(before))[-1]
        words = _WORD.findall(before)
        limit = min(len(short) + 5, len(short) * 2)
        long_form = _long_form(short, words[-limit:])
        if long_form:
            found[short] = long_form
    return found


def _long_form(short: str, words: list[str]) -> str | None:
    """The shortest run of trailing `words` that spells `short` (letters and digits, in order)."""
    letters = [c.lower() for c in short if c.isalnum()]
    for start in range(len(words) - 1, -1, -1):
        candidate = " ".join(words[start:])
        parts = len(re.split(r"[\s-]+", candidate))  # 'Vogt-Koyanagi-Harada (VKH)': three parts
        if parts >= min(2, len(letters)) and _spells(letters, candidate.lower()):
            return candidate
    return None


def _spells(letters: list[str], phrase: str) -> bool:
    """Whether the letters occur in `phrase` in order, right to left, each the latest that fits, the first one
    at the start of a word and the phrase's first word starting with it (Schwartz and Hearst)."""
    if not phrase or phrase[0] != letters[0]:
        return False
    position = len(phrase)
    for index in range(len(letters) - 1, -1, -1):
        letter = letters[index]
        position -= 1
        while position >= 0 and (
            phrase[position] != letter or (index == 0 and position > 0 and phrase[position - 1].isalnum())
        ):
            position -= 1
        if position < 0:
            return False
    return True
