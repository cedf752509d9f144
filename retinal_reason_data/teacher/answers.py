"""Reading an answer: its decorations taken off, then letters, a truth value or a name, with hedges refused.

Decorations that are taken off (repeatedly, in any nesting): surrounding whitespace and a final full stop,
markdown emphasis and code marks (`*`, `` ` ``), quotes, `$...$`, `\\(...\\)`, `\\text{}`-style wrappers, one
`\\boxed{...}` whose surroundings are at most a lead-in ("Final answer:", "The answer is", `$`), and such a
lead-in itself ("The diagnosis is ...", "Answer: ..."). Two boxes, or a box beside other words, is no answer.

A hedge earns nothing: several letters for a single-choice question (`B or C`, `A. or B. or C. or D.`, and
`B. Drusen (or C)`: an option letter anywhere beside the one chosen); both truth values (`True or False`,
`yes, no`, `No, it is true`) or a negated one (`not true`); several names for an open question unless every one
of them is accepted (`Glaucoma or cataract` earns nothing, `DME / diabetic macular oedema` is right).

Names are compared after `normalise_term` (case, accents, punctuation, British/American spelling). Besides
the item's answer and aliases, accepted: every name of the ontology entry the answer is (when it is one); a
name without its generic suffix (`disease`, `syndrome`, `disorder`) when no other ontology entry owns the rest
(`Vogt-Koyanagi-Harada`, `Coats`, `Stargardt`); `normal` for the entries that mean a normal eye on their modality
(`normal.*`, `*.normal`); a name followed by its abbreviation in parentheses when the abbreviation is accepted or
is the name's initials (`Diabetic macular oedema (DME)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

from retinal_reason_data.ontology import Ontology, default_ontology
from retinal_reason_data.text import normalise_term

TRUE_WORDS = frozenset({"true", "yes", "correct"})
FALSE_WORDS = frozenset({"false", "no", "incorrect"})
NEGATIONS = frozenset({"not", "never", "neither", "nor", "isn", "aren", "wasn", "doesn", "don", "cannot"})
GENERIC_SUFFIXES = frozenset({"disease", "syndrome", "disorder"})
MIN_STEM_CHARS = 3
_FILLER = frozenset({"of", "the", "and", "with", "in", "on", "to", "a", "an", "due"})
_UNWRAP_ROUNDS = 6
_QUOTES = "\"'“”‘’«»"
_LEAD_IN = re.compile(
    r"^(?:(?:so|thus|therefore|hence)\s*,?\s+)?(?:the\s+|my\s+)?(?:final\s+|correct\s+|best\s+)?"
    r"(?:answer|diagnosis|most\s+likely\s+diagnosis|grade|option|choice)(?:\s+is\b|\s*:|\s*-)\s*",
    re.IGNORECASE,
)
# the words a lead-in around a box may use ("Final answer:", "Therefore, the correct answer is")
_LEAD_IN_WORDS = frozenset(
    [
        "so",
        "thus",
        "therefore",
        "hence",
        "the",
        "my",
        "final",
        "correct",
        "best",
        "answer",
        "diagnosis",
        "most",
        "likely",
        "grade",
        "option",
        "choice",
        "is",
    ]
)
_WRAPPERS = ("\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{", "\\textit{")
_MATH_PAIRS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_OPTION_WORD = re.compile(r"^(?:options?|choices?)\s*:?\s*", re.IGNORECASE)
_LETTER_TOKEN = re.compile(r"[(\[]?([A-Ha-h])[)\].:]?")
_LIST_SEPARATOR = re.compile(r"\s*(?:,|;|/|&|\+|\band\b)\s*|\s+", re.IGNORECASE)
_LEADING_OPTION = re.compile(r"(?:\(([A-H])\)|\[([A-H])\]|([A-H])\s?[.):\-–—])\s*(\S.*)", re.DOTALL)
# an option letter standing alone: not inside a word or a hyphenated term ('B-scan'), and not the article 'A'
_MARKER = re.compile(r"(?<![\w\-'’])(?:A(?!\s+[a-z])|[B-H])(?![\w\-'’])")
_ITEM_SEPARATOR = re.compile(r"\s*[,;\n]\s*")
_CANDIDATE_SEPARATOR = re.compile(r"\s*(?:\band/or\b|\bor\b|\bvs\b\.?|\bversus\b|/|;|,|\(|\))\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Judged:
    """Whether an answer is right, and when not, why ('unreadable_answer', 'several_letters',
    'both_truth_values', 'negated', 'several_candidates', 'wrong_answer')."""

    right: bool
    problem: str | None = None


def unwrap(answer: str) -> str | None:
    """The answer without its decorations (module docstring), or None when it holds several boxed answers or
    a box beside words other than a lead-in."""
    text = answer.strip()
    for _ in range(_UNWRAP_ROUNDS):
        before = text
        boxed = _unbox(text)
        if boxed is None:
            return None
        text = boxed.replace("*", "").replace("`", "").strip()
        text = _strip_pairs(text)
        text = _LEAD_IN.sub("", text, count=1).strip()
        text = text.rstrip(".").strip()
        if text == before:
            break
    return text


def _unbox(text: str) -> str | None:
    count = text.count("\\boxed")
    if count == 0:
        return text
    if count > 1:
        return None
    start = text.index("\\boxed")
    brace = start + len("\\boxed")
    while brace < len(text) and text[brace] == " ":
        brace += 1
    end = _closing_brace(text, brace)
    if end is None:
        return None
    if not set(normalise_term(text[:start] + " " + text[end + 1 :]).split()) <= _LEAD_IN_WORDS:
        return None
    return text[brace + 1 : end].strip()


def _closing_brace(text: str, opening: int) -> int | None:
    """The index of the brace that closes the one at `opening` (one pass; None when unbalanced)."""
    if opening >= len(text) or text[opening] != "{":
        return None
    depth = 0
    for index in range(opening, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _strip_pairs(text: str) -> str:
    """One layer of quotes, math delimiters or a `\\text{}`-style wrapper around the whole text."""
    for opening, closing in _MATH_PAIRS:
        if len(text) >= len(opening) + len(closing) and text.startswith(opening) and text.endswith(closing):
            return text[len(opening) : -len(closing)].strip()
    for wrapper in _WRAPPERS:
        if text.startswith(wrapper) and _closing_brace(text, len(wrapper) - 1) == len(text) - 1:
            return text[len(wrapper) : -1].strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        return text[1:-1].strip()
    return text


def parse_letters(answer: str) -> frozenset[str] | None:
    """The option letters an answer names: 'A', '(b)', 'A, C', 'A and C', 'B. Drusen', 'A. Drusen; C. Exudates',
    '**B**', '\\boxed{B}'. None when it names none, or hedges ('B or C', 'B. Drusen, maybe C.')."""
    core = unwrap(answer)
    if core is None:
        return None
    core = _OPTION_WORD.sub("", core, count=1).strip()
    if not core:
        return None
    tokens = [token for token in _LIST_SEPARATOR.split(core) if token]
    letters = [_LETTER_TOKEN.fullmatch(token) for token in tokens]
    if tokens and all(letters):
        return frozenset(match.group(1).upper() for match in letters if match)
    single = _leading_option(core)
    if single is not None:
        return frozenset(single)
    items = [item for item in _ITEM_SEPARATOR.split(core) if item]
    chosen = [_leading_option(item) or _bare_letter(item) for item in items]
    if len(items) > 1 and all(chosen):
        return frozenset(letter for letter in chosen if letter)
    return None


def _leading_option(text: str) -> str | None:
    """'B' for 'B. Drusen', '(B) Drusen', 'B) Drusen': a leading option letter whose text names no other letter."""
    match = _LEADING_OPTION.fullmatch(text)
    if match is None:
        return None
    letter = match.group(1) or match.group(2) or match.group(3)
    return None if _MARKER.search(match.group(4)) else letter


def _bare_letter(text: str) -> str | None:
    match = _LETTER_TOKEN.fullmatch(text)
    return match.group(1).upper() if match else None


def letters_named(answer: str) -> int:
    """How many distinct option letters stand alone in the answer (a hedge shows several)."""
    return len({match.group(0) for match in _MARKER.finditer(answer)})


def parse_bool(answer: str) -> bool | None:
    """True for 'True', 'yes', 'Correct.', '**True**'; False for 'False', 'no'; None for anything that is not
    one truth value: 'True or False', 'yes, no', 'No, it is true', 'not true', 'maybe'."""
    return _truth(answer)[0]


def _truth(answer: str) -> tuple[bool | None, str | None]:
    core = unwrap(answer)
    words = normalise_term(core).split() if core else []
    if not words or words[0] not in TRUE_WORDS | FALSE_WORDS:
        return None, ("negated" if words and words[0] in NEGATIONS else "unreadable_answer")
    value = words[0] in TRUE_WORDS
    for word in words[1:]:
        if word in NEGATIONS:
            return None, "negated"
        if (word in TRUE_WORDS and not value) or (word in FALSE_WORDS and value):
            return None, "both_truth_values"
    return value, None


def judge_letters(answer: str, expected: frozenset[str], single: bool) -> Judged:
    """A choice answer against the expected letter set; a single-choice answer must name exactly one letter."""
    letters = parse_letters(answer)
    if letters is None:
        several = single and letters_named(unwrap(answer) or answer) > 1
        return Judged(False, "several_letters" if several else "unreadable_answer")
    if single and len(letters) != 1:
        return Judged(False, "several_letters")
    return Judged(letters == expected, None if letters == expected else "wrong_answer")


def judge_truth(answer: str, expected: bool) -> Judged:
    value, problem = _truth(answer)
    if value is None:
        return Judged(False, problem)
    return Judged(value == expected, None if value == expected else "wrong_answer")


def judge_name(answer: str, accepted: Iterable[str], ontology: Ontology | None = None) -> Judged:
    """An open answer against its accepted names (and the forms the ontology adds: module docstring)."""
    core = unwrap(answer)
    if not core:
        return Judged(False, "unreadable_answer")
    forms = accepted_forms(accepted, ontology)
    if _one_name(core, forms):
        return Judged(True)
    parts = [part for part in _CANDIDATE_SEPARATOR.split(core) if part.strip()]
    if len(parts) > 1:
        agreeing = [_one_name(part, forms) for part in parts]
        if all(agreeing):
            return Judged(True)
        return Judged(False, "several_candidates" if any(agreeing) else "wrong_answer")
    return Judged(False, "wrong_answer")


def matches_name(answer: str, accepted: Iterable[str]) -> bool:
    """Whether an open answer names one of the accepted names (see `judge_name`)."""
    return judge_name(answer, accepted).right


def _norm(text: str) -> str:
    """normalise_term, and a possessive 's' dropped ('Stargardt's' -> 'stargardt')."""
    return " ".join(word for word in normalise_term(text).split() if word != "s")


def _one_name(text: str, forms: frozenset[str]) -> bool:
    """One name: accepted as is, or an accepted name followed by its abbreviation in parentheses."""
    if _norm(text) in forms:
        return True
    text = text.strip()
    if not text.endswith(")") or "(" not in text:
        return False
    opening = text.rfind("(")
    name, abbreviation = _norm(text[:opening]), _norm(text[opening + 1 : -1])
    if name not in forms or not abbreviation:
        return False
    return abbreviation in forms or abbreviation.replace(" ", "") in _initials(name)


def _initials(name: str) -> set[str]:
    """A name's initials, with and without filler words and a generic suffix ('dme' for diabetic macular edema)."""
    words = name.split()
    content = [word for word in words if word not in _FILLER]
    variants = {
        "".join(word[0] for word in words),
        "".join(word[0] for word in content),
        "".join(word[0] for word in content if word not in GENERIC_SUFFIXES),
    }
    return {variant for variant in variants if len(variant) >= 2}


def stem(name: str) -> str | None:
    """A normalised name without its generic suffix ('vogt koyanagi harada' from '... disease'), or None."""
    words = name.split()
    if len(words) < 2 or words[-1] not in GENERIC_SUFFIXES:
        return None
    rest = " ".join(word for word in words[:-1] if word != "s")
    return rest if len(rest) >= MIN_STEM_CHARS else None


@dataclass(frozen=True)
class _NameIndex:
    """Normalised name -> codes of the entries that have it; normalised stem -> codes whose names reduce to it."""

    names: dict[str, frozenset[str]]
    stems: dict[str, frozenset[str]]
    normal: frozenset[str]


def _name_index(ontology: Ontology) -> _NameIndex:
    names: dict[str, set[str]] = {}
    stems: dict[str, set[str]] = {}
    for code, entry_names in ontology.names_by_code.items():
        for name in entry_names:
            names.setdefault(_norm(name), set()).add(code)
            short = stem(_norm(name))
            if short:
                stems.setdefault(short, set()).add(code)
    return _NameIndex(
        names={form: frozenset(codes) for form, codes in names.items()},
        stems={form: frozenset(codes) for form, codes in stems.items()},
        normal=normal_codes(ontology),
    )


@cache
def _default_index() -> _NameIndex:
    return _name_index(default_ontology())


def normal_codes(ontology: Ontology) -> frozenset[str]:
    """The entries that mean a normal eye on their modality: `normal.*` and `*.normal`."""
    return frozenset(code for code in ontology.entries if "normal" in code.split("."))


def accepted_forms(accepted: Iterable[str], ontology: Ontology | None = None) -> frozenset[str]:
    """Every normalised form accepted for these names (module docstring), against the shipped ontology unless
    another is given."""
    if ontology is None:
        return _default_forms(tuple(accepted))
    return _forms(tuple(accepted), ontology, _name_index(ontology))


@lru_cache(maxsize=4096)
def _default_forms(accepted: tuple[str, ...]) -> frozenset[str]:
    """Cached: the same ground truth is scored once per sampled reply."""
    return _forms(accepted, default_ontology(), _default_index())


def _forms(accepted: tuple[str, ...], ontology: Ontology, index: _NameIndex) -> frozenset[str]:
    forms = {_norm(name) for name in accepted} - {""}
    codes: frozenset[str] = frozenset().union(*(index.names.get(form, frozenset()) for form in forms))
    for code in codes:
        forms |= {_norm(name) for name in ontology.names(code)}
    for form in list(forms):
        short = stem(form)
        owners = index.names.get(short or "", frozenset()) | index.stems.get(short or "", frozenset())
        if short and owners <= codes:
            forms.add(short)
    if codes & index.normal:
        forms.add("normal")
    return frozenset(forms)
