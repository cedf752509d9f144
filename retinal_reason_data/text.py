"""Text normalisation shared by the ontology, the task builders and answer verification."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPELLING = [
    (re.compile(r"haem"), "hem"),
    (re.compile(r"oedem"), "edem"),
    (re.compile(r"ischaem"), "ischem"),
    (re.compile(r"tumour"), "tumor"),
    (re.compile(r"colour"), "color"),
    (re.compile(r"isation"), "ization"),
    (re.compile(r"ise\b"), "ize"),
    (re.compile(r"\bnon\s+"), "non"),
]
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")
_ARTICLES = re.compile(r"^(?:the|a|an)\s+")


def normalise_term(text: str) -> str:
    """Fold case, accents, punctuation and British/American spelling so that names compare equal."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    folded = folded.replace("-", " ").replace("_", " ")
    folded = _PUNCT.sub(" ", folded)
    folded = _SPACE.sub(" ", folded).strip()
    for pattern, replacement in _SPELLING:
        folded = pattern.sub(replacement, folded)
    return _ARTICLES.sub("", folded)


def stable_hash(*parts: object, length: int = 16) -> str:
    """Hex digest of the parts, stable across runs and machines (content-derived ids)."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    return digest[:length]
