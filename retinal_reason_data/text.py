"""Text normalisation shared by the ontology, the task builders and answer verification."""

from __future__ import annotations

import codecs
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


BYTE_ORDER_MARKS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def bom_codec(head: bytes) -> str | None:
    """The codec a text's byte-order mark names (`utf-8-sig`, `utf-16`, `utf-32`), None without one."""
    return next((codec for bom, codec in BYTE_ORDER_MARKS if head.startswith(bom)), None)
