"""Figure captions: which imaging modality each panel shows, and compound captions split by panel letters.

Captions of case reports name their panels in several ways: "(A) Fundus photograph ... (B) OCT ...",
"a Fundus ... b OCT" (bold letters, turned into "(a)" by the JATS reader), "A: ...; B: ...", ranges
"(A-C)", lists "(A, B)", and letters after the noun they label: "Fundus photographs of the right (A) and
left (B) eyes". A panel whose own text names no modality takes the modality of the panel before it (or
of the caption's preamble), because such captions name the modality once for several panels.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from retinal_reason_data.schema import Modality

# Specific patterns first: when two matches overlap, the one listed first wins (OCTA over OCT).
_PATTERNS: list[tuple[Modality, re.Pattern[str]]] = [
    (
        Modality.OCTA,
        re.compile(
            r"\b(?:SS-|SD-)?OCT-?A\b|\bOCT\s+angiogra\w*|optical coherence tomography\s+angiogra\w*|\bangio-?OCT\b",
            re.IGNORECASE,
        ),
    ),
    (Modality.ICGA, re.compile(r"\bICGA?\b|indocyanine", re.IGNORECASE)),
    (
        Modality.FAF,
        re.compile(r"\b(?:FAF|BAF|NIR-AF|SW-AF)\b|(?:fundus\s+)?auto-?fluorescen\w*", re.IGNORECASE),
    ),
    (
        Modality.FFA,
        re.compile(
            r"\b(?:FFA|IVFA|FA|FAG)\b|(?:fundus\s+)?fluorescein(?:\s+angiogra\w*)?|(?:fundus\s+)?\bangiogra(?:m|ms|phy|phic)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Modality.OTHER,
        re.compile(
            r"ultrasono\w*|\bultrasound\b|echogra\w*|\bB-scan ultra\w*|\bMRI\b|magnetic resonance|\bCT\b|"
            r"computed tomograph\w*|histolog\w*|histopatholog\w*|\bH&E\b|ha?ematoxylin|immunohisto\w*|"
            r"photomicrograph\w*|electroretinogra\w*|\bERG\b|\bVEP\b|\bx-ray\b|radiograph\w*|"
            r"\bchest\b|\bskin\b|\bbiopsy\b",
            re.IGNORECASE,
        ),
    ),
    (
        Modality.OCT,
        re.compile(
            r"\b(?:SD-|SS-|EDI-|HD-)?OCT\b|optical coherence tomogra\w*|\bB-?scans?\b|\btomogra(?:m|ms|phy)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Modality.SLIT_LAMP,
        re.compile(
            r"slit[- ]lamp|anterior[- ]segment\s+photo\w*|biomicroscop\w*|external\s+photo\w*|"
            r"retro-?illumination|\bcornea\b|\bconjunctiva\w*",
            re.IGNORECASE,
        ),
    ),
    (
        Modality.VISUAL_FIELD,
        re.compile(r"visual fields?|perimetr\w*|humphrey|goldmann|\b(?:24|30|10)-2\b", re.IGNORECASE),
    ),
    (
        Modality.CFP,
        re.compile(
            r"fundus\s+photo\w*|colou?r\s+fundus|\bCFP\b|fundus\s+(?:image|picture|view)s?|fundoscop\w*|"
            r"funduscop\w*|ophthalmoscop\w*|ultra-?wide-?field|\boptos\b|pseudo-?colou?r|red-?free|"
            r"\bfundus\b|\bretinography\b|\bretinal photo\w*",
            re.IGNORECASE,
        ),
    ),
]
RETINAL = frozenset(
    {
        Modality.CFP,
        Modality.FFA,
        Modality.ICGA,
        Modality.OCT,
        Modality.OCTA,
        Modality.FAF,
        Modality.SLIT_LAMP,
        Modality.VISUAL_FIELD,
    }
)

_LETTER_LIST = r"[A-Ha-h](?:\s*(?:[-–—,]|and|&|to)\s*[A-Ha-h])*"
_PAREN_MARK = re.compile(r"\((" + _LETTER_LIST + r")\)")
_LEADING_BARE = re.compile(r"^([A-H](?:\s*[-–—,]\s*[A-H])*)\s*[.:)]\s+(?=\S)")
_RANGE = re.compile(r"^([A-Ha-h])\s*(?:[-–—]|to)\s*([A-Ha-h])$")


@dataclass(frozen=True)
class Panel:
    """One panel (or group of panels sharing a text) of a figure caption."""

    letters: tuple[str, ...]
    text: str
    modality: Modality
    named: bool  # the modality is named in the panel's own text (not inherited)


def classify(text: str) -> Modality | None:
    """The modality that `text` names first (specific names win over the shorter ones inside them:
    'OCT angiography' is OCTA); None when it names none."""
    spans: list[tuple[int, int, int, Modality]] = []
    for rank, (modality, pattern) in enumerate(_PATTERNS):
        for match in pattern.finditer(text):
            spans.append((match.start(), match.end(), rank, modality))
    taken: list[tuple[int, int, int, Modality]] = []
    for span in sorted(spans, key=lambda s: (s[2], s[0])):
        if not any(span[0] < other[1] and other[0] < span[1] for other in taken):
            taken.append(span)
    if not taken:
        return None
    return min(taken, key=lambda s: (s[0], s[2]))[3]


def letters_of(marker: str) -> tuple[str, ...]:
    """'A-C' -> (A, B, C); 'a, b' -> (A, B); 'A and B' -> (A, B)."""
    marker = marker.strip()
    found = _RANGE.match(marker)
    if found:
        start, end = found.group(1).upper(), found.group(2).upper()
        if start <= end:
            return tuple(chr(code) for code in range(ord(start), ord(end) + 1))
    return tuple(dict.fromkeys(letter.upper() for letter in re.findall(r"\b[A-Ha-h]\b", marker)))


def split_panels(caption: str) -> list[Panel]:
    """The panels of a caption in order; a caption without panel letters is one panel with no letters."""
    text = " ".join((caption or "").split())
    chunks = _leading_chunks(text)
    if chunks is None:
        chunks = _inline_chunks(text)
    preamble, parts = chunks
    base = classify(preamble) if preamble else None
    panels: list[Panel] = []
    previous = base
    for letters, body in parts:
        own = classify(body)
        modality = own or previous or Modality.OTHER
        panels.append(Panel(letters, body.strip(), modality, own is not None))
        previous = modality
    if not panels:
        own = classify(text)
        panels.append(Panel((), text, own or Modality.OTHER, own is not None))
    return panels


def figure_modality(panels: list[Panel]) -> Modality:
    """One modality for a figure image: the most common among its panels (first panel on a tie), retinal
    modalities before 'other'."""
    retinal = [panel.modality for panel in panels if panel.modality in RETINAL]
    pool = retinal or [panel.modality for panel in panels]
    counts = Counter(pool)
    best = max(counts.values())
    return next(modality for modality in pool if counts[modality] == best)


def _leading_chunks(text: str) -> tuple[str, list[tuple[tuple[str, ...], str]]] | None:
    """Panels introduced at sentence starts: '(A) ... (B) ...', 'A: ... B: ...'; None when there are none."""
    starts: list[tuple[int, int, tuple[str, ...]]] = []  # marker start, text start, letters
    for match in _PAREN_MARK.finditer(text):
        before = text[: match.start()].rstrip()
        after = text[match.end() :].lstrip()
        capitalised = bool(after) and after[0].isupper()
        if not before or before[-1] in ".;:" or before.endswith(("—", "-")) or (capitalised and starts):
            starts.append((match.start(), match.end(), letters_of(match.group(1))))
    position = 0
    for sentence in re.finditer(r"(?:^|(?<=[.;]\s))([^.;]*)", text):
        position = sentence.start(1)
        bare = _LEADING_BARE.match(text[position:])
        if bare and not any(start == position for start, _, _ in starts):
            starts.append((position, position + bare.end(), letters_of(bare.group(1))))
    starts.sort()
    if len(starts) < 2 and not (starts and starts[0][0] == 0):
        return None
    preamble = text[: starts[0][0]].strip() if starts else ""
    parts = []
    for index, (_, body_start, letters) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        parts.append((letters, text[body_start:end].strip(" ;,")))
    return preamble, parts


def _inline_chunks(text: str) -> tuple[str, list[tuple[tuple[str, ...], str]]]:
    """Letters after the noun they label: 'Fundus photograph (A) and OCT (B) of the right eye'. Each panel
    gets the text before its letter; the text after the last letter is shared by all of them."""
    marks = list(_PAREN_MARK.finditer(text))
    letters = {letter for mark in marks for letter in letters_of(mark.group(1))}
    if len(letters) < 2:
        return "", []
    parts = []
    previous_end = 0
    tail_end = text.find(".", marks[-1].end())
    tail = text[marks[-1].end() : tail_end if tail_end >= 0 else len(text)].strip()
    for mark in marks:
        body = text[previous_end : mark.start()].strip(" ,;")
        parts.append((letters_of(mark.group(1)), f"{body} {tail}".strip()))
        previous_end = mark.end()
    return "", parts
