"""Rule-based, offline extraction of a case report's clinical context: age, sex, chief complaint, history of
present illness, past history, examination findings and the final diagnosis.

A case presentation reads in a known order: who presented with what ("A 62-year-old woman presented with a
one-month history of sudden painless visual loss"), the history, the examination, the imaging, then the
diagnosis, the treatment and the outcome. The vignette keeps what a clinician knew before the images were
read and the diagnosis made: it stops at the first sentence about imaging findings that follow the
examination, the diagnosis, the treatment or the outcome. The final diagnosis is taken, in this order of
trust, from explicit sentences of the case section ("a diagnosis of X was made", "was diagnosed with X"),
the abstract's 'Diagnosis' heading, explicit sentences of the abstract, the conclusion or discussion, the
keywords and the title; it is then mapped to the ontology where a name, synonym or abbreviation matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.casereports.panels import classify
from retinal_reason_data.jats import Article, Section
from retinal_reason_data.ontology import Entry, Ontology
from retinal_reason_data.schema import Modality
from retinal_reason_data.text import normalise_term


class Extracted(BaseModel):
    """The clinical context of one case, as the rules (or a teacher) read it."""

    model_config = ConfigDict(extra="forbid")

    age: int | None = Field(default=None, description="Age in whole years (0 for infants).")
    sex: str | None = Field(default=None, description="'F', 'M' or null.")
    chief_complaint: str | None = Field(default=None, description="The presenting complaint, one sentence.")
    history_of_present_illness: str | None = None
    past_history: str | None = Field(default=None, description="Past medical, ocular, drug and family history.")
    examination: str | None = Field(default=None, description="Examination findings before imaging.")
    final_diagnosis: str | None = Field(default=None, description="The final diagnosis, as a short noun phrase.")
    diagnosis_aliases: list[str] = Field(default_factory=list, description="Abbreviations the article defines.")
    diagnosis_source: str | None = Field(default=None, description="Where the rules found the diagnosis.")


CASE_TITLE = re.compile(
    r"^\s*(?:[IVX]+\.|\d+(?:\.\d+)*\.?)?\s*(?:"
    r"case\s+(?:presentations?|reports?|histor(?:y|ies)|descriptions?|summar(?:y|ies)|details|series|study|"
    r"\d+|[IVX]+|one|two|three)|cases?|clinical\s+(?:cases?|presentations?|reports?|histor(?:y|ies)|descriptions?|"
    r"findings)|presentation\s+of\s+(?:the\s+)?cases?|report\s+of\s+(?:a\s+|the\s+)?cases?|"
    r"patients?\s+(?:presentation|description|history|and\s+methods)|(?:the\s+)?patient|"
    r"description\s+of\s+(?:the\s+)?cases?|observations?)\s*:?\s*$",
    re.IGNORECASE,
)
SUBCASE_TITLE = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?\s*)?(?:case|patient)\s+(?:\d+|[IVX]+|one|two|three|four)\b", re.I)
CASE_SEC_TYPES = {"cases", "case", "case-report", "case-presentation", "case-description", "case-study"}
_ABBREVIATION_END = re.compile(r"\b(?:Dr|Mr|Ms|Mrs|Fig|Figs|vs|No|approx|ca|St|Prof|al|e\.g|i\.e|cf|resp)\.$", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_AGE = [
    (re.compile(r"\b(\d{1,3})[- ](?:year|yr)s?[- ]old\b", re.I), 1),
    (re.compile(r"\b(\d{1,3})\s*-?\s*(?:years?|yrs?)\s+of\s+age\b", re.I), 1),
    (re.compile(r"\baged\s+(\d{1,3})\b", re.I), 1),
    (re.compile(r"\b(\d{1,2})[- ](?:month|week|day)s?[- ]old\b", re.I), 0),
]
_FEMALE = re.compile(r"\b(?:woman|women|female|lady|girl|mother|wife|Mrs|Ms|she|her)\b", re.I)
_MALE = re.compile(r"\b(?:man|men|male|gentleman|boy|father|husband|Mr|he|his|him)\b", re.I)
_SEX_NOUN_F = re.compile(r"\b(?:woman|female|lady|girl)\b", re.I)
_SEX_NOUN_M = re.compile(r"\b(?:man|male|gentleman|boy)\b", re.I)
_PRESENTING = re.compile(
    r"\b(?:present(?:ed|s|ing)|complain(?:ed|s|ing|t)|referred|came\s+to|attended|visited|noticed|reported|"
    r"admitted|consulted|was\s+seen|sought)\b",
    re.I,
)
_PAST = re.compile(
    r"\b(?:history\s+of|medical\s+history|past\s+(?:medical|ocular|history)|previous(?:ly)?|known\s+case|"
    r"known\s+to|hypertension|hypertensive|diabet(?:es|ic)|medications?|was\s+taking|is\s+taking|family\s+history|"
    r"smok(?:er|ing|ed)|allerg\w*|unremarkable\s+(?:medical|past)|years?\s+ago|no\s+(?:other\s+)?(?:relevant|"
    r"significant|systemic|ocular)\s+(?:medical\s+)?history|underwent|had\s+undergone|treated\s+for)\b",
    re.I,
)
_EXAM = re.compile(
    r"\b(?:visual\s+acuit(?:y|ies)|BCVA|VA\b|intra-?ocular\s+pressures?|IOP|slit-?lamp|anterior\s+segment|"
    r"examination|examined|ophthalmoscop\w*|fundoscop\w*|funduscop\w*|biomicroscop\w*|pupil\w*|RAPD|"
    r"afferent\s+pupillary|ocular\s+motility|colou?r\s+vision|Ishihara|on\s+exam|vital\s+signs|"
    r"blood\s+pressure\s+was|Snellen|logMAR|counting\s+fingers|hand\s+motion|light\s+perception)\b",
    re.I,
)
_AFTER_EXAM_STOP = re.compile(
    r"\b(?:diagnos\w*|consistent\s+with|suggestive\s+of|compatible\s+with|confirm\w*|treat(?:ed|ment)|"
    r"therapy|was\s+(?:started|commenced|initiated|given)|received|underwent|injection|surgery|vitrectomy|"
    r"follow-?up|resolv\w*|improv\w*|recover\w*|managed|prescribed|laboratory|blood\s+tests?|serolog\w*|"
    r"biopsy|genetic\s+testing|was\s+admitted)\b",
    re.I,
)
_DIAGNOSIS_CUE = re.compile(r"\b(?:final|definitive|definite)\s+diagnosis\b|\bdiagnosis\s+of\b|\bdiagnosed\b", re.I)
_FIGURE_REF = re.compile(r"\s*\((?:see\s+)?(?:fig(?:ure)?s?\.?|supplementary)[^()]*\)", re.I)
_DX_PATTERNS = [
    re.compile(
        r"\b(?:(?:final|definitive|definite|clinical|working|presumptive|presumed|confirmed|likely)\s+)?"
        r"diagnosis\s+of\s+(?P<dx>.+)",
        re.I,
    ),
    re.compile(
        r"\b(?:was|were)\s+(?:subsequently\s+|finally\s+|eventually\s+|then\s+|thus\s+|therefore\s+|clinically\s+)?"
        r"diagnosed\s+(?:with|as(?:\s+having)?)\s+(?P<dx>.+)",
        re.I,
    ),
    re.compile(r"\bdiagnosis\s+(?:was|of\s+\w+\s+was)\s+(?:made\s+as\s+|confirmed\s+as\s+)?(?P<dx>.+)", re.I),
    re.compile(r"\b(?:final\s+)?diagnosis\s*:\s*(?P<dx>.+)", re.I),
    re.compile(r"\b(?:findings|features|picture|presentation)\s+(?:were|was)\s+consistent\s+with\s+(?P<dx>.+)", re.I),
]
_DX_END = re.compile(
    r"\s*(?:[.;:,)(\[]|\bwas\b|\bwere\b|\bis\b|\bwas made\b|\bbased\b|\bafter\b|\bfollowing\b|\bsecondary\s+to\b|"
    r"\bdue\s+to\b|\bcaused\s+by\b|\bassociated\s+with\b|\bwith\b|\bwhich\b|\bthat\b|\bin\s+(?:the|both|his|her|"
    r"this|our|a|an)\b|\bof\s+the\s+(?:right|left)\b|\bin\s+(?:OD|OS|OU)\b|\b(?:OD|OS|OU)\b|\bon\s+the\s+basis\b|"
    r"\band\s+(?:the|he|she|treatment|was|were)\b|\bby\b|\bfor\b)"
)
_LEADING = re.compile(r"^(?:an?\s+|the\s+|probable\s+|possible\s+|presumed\s+|suspected\s+)+", re.I)
_QUALIFIERS = re.compile(
    r"^(?:bilateral|unilateral|right|left|atypical|typical|classic|severe|mild|moderate|early|late|"
    r"advanced|idiopathic|isolated|primary|secondary|recurrent|unusual)\s+",
    re.I,
)
_TITLE_SPLIT = re.compile(
    r":|\s+(?:in|presenting|associated|secondary|following|after|with|mimicking|masquerading|as|and|"
    r"caused|due|treated|complicating|revealing|--|—)\s+",
    re.I,
)
_NOT_A_DIAGNOSIS = re.compile(
    r"^(?:a\s+|the\s+)?(?:case|report|rare|unusual|patient|review|literature|novel|new|challenging|diagnostic|"
    r"clinical|image|images)\b",
    re.I,
)


def split_sentences(text: str) -> list[str]:
    """Sentences of prose (abbreviations such as 'Dr.', 'Fig.', 'e.g.' and decimals do not end one)."""
    sentences: list[str] = []
    for paragraph in text.splitlines():
        pieces = [piece.strip() for piece in _SENTENCE_END.split(paragraph) if piece.strip()]
        merged: list[str] = []
        for piece in pieces:
            if merged and _ABBREVIATION_END.search(merged[-1]):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        sentences += merged
    return sentences


def case_sections(article: Article, each_case: bool = True) -> list[Section]:
    """The body's case presentation sections (titles such as 'Case presentation', 'Case report',
    '2. Case presentation', `sec-type="cases"`); the abstract's own 'Case presentation' is not one. With
    `each_case`, a section holding 'Case 1', 'Case 2' subsections gives each of them."""
    found: list[Section] = []

    def visit(section: Section) -> None:
        if section.sec_type in CASE_SEC_TYPES or CASE_TITLE.match(section.title or "x"):
            found.append(section)
            return
        for child in section.sections:
            visit(child)

    for section in article.body:
        visit(section)
    if not each_case:
        return found
    cases: list[Section] = []
    for section in found:
        subcases = [child for child in section.sections if SUBCASE_TITLE.match(child.title)]
        if len(subcases) >= 2:
            shared = Section(title=section.title, paragraphs=section.paragraphs, fig_refs=section.fig_refs)
            for sub in subcases:
                merged = Section(
                    title=sub.title,
                    sec_type=sub.sec_type,
                    paragraphs=[*shared.paragraphs, *sub.paragraphs],
                    fig_refs=[*shared.fig_refs, *sub.fig_refs],
                    sections=sub.sections,
                )
                cases.append(merged)
        else:
            cases.append(section)
    return cases


def parse_age(text: str) -> int | None:
    """Whole years from '62-year-old', '62 years of age', 'aged 62'; 0 for '6-month-old'."""
    for pattern, unit in _AGE:
        match = pattern.search(text)
        if match:
            value = int(match.group(1)) if unit else 0
            return value if 0 <= value <= 120 else None
    return None


def parse_sex(first: str, rest: str = "") -> str | None:
    """'F' or 'M' from the nouns of the first sentence ('woman', 'boy'), else from the pronouns of the text."""
    female, male = _SEX_NOUN_F.search(first), _SEX_NOUN_M.search(first)
    if female and not male:
        return "F"
    if male and not female:
        return "M"
    if female and male:
        return "F" if female.start() < male.start() else "M"
    text = f"{first} {rest}"
    women, men = len(_FEMALE.findall(text)), len(_MALE.findall(text))
    if women > men:
        return "F"
    if men > women:
        return "M"
    return None


def _drop_figure_refs(sentence: str) -> str:
    return " ".join(_FIGURE_REF.sub("", sentence).split())


_IMAGING_WORDS = re.compile(r"\bimaging\s+(?:showed|revealed|demonstrated|disclosed)\b|\bimages?\s+showed\b", re.I)


def _is_imaging(sentence: str) -> bool:
    """A sentence about imaging findings: it cites a figure, or names an imaging modality outside an
    examination sentence."""
    if _FIGURE_REF.search(sentence) or _IMAGING_WORDS.search(sentence):
        return True
    modality = classify(sentence)
    return modality is not None and modality is not Modality.OTHER and not _EXAM.search(sentence)


def vignette_parts(case_text: str, diagnosis_terms: Iterable[str] = ()) -> Extracted:
    """Chief complaint, history, past history and examination from a case section's text: the sentences
    before imaging findings, the diagnosis, the treatment and the outcome."""
    terms = [normalise_term(t) for t in diagnosis_terms if normalise_term(t)]
    sentences = split_sentences(case_text)
    complaint_index = next((i for i, s in enumerate(sentences[:4]) if _PRESENTING.search(s)), 0)
    chief: list[str] = []
    hpi: list[str] = []
    past: list[str] = []
    exam: list[str] = []
    seen_exam = False
    for index, sentence in enumerate(sentences):
        padded = f" {normalise_term(sentence)} "
        if any(f" {term} " in padded for term in terms):
            break
        if _DIAGNOSIS_CUE.search(sentence) and (seen_exam or (index > complaint_index and not _PAST.search(sentence))):
            break
        if seen_exam and (_AFTER_EXAM_STOP.search(sentence) or _is_imaging(sentence)):
            break
        text = _drop_figure_refs(sentence)
        if index < complaint_index:
            past.append(text)
        elif index == complaint_index:
            chief.append(text)
        elif _EXAM.search(sentence):
            exam.append(text)
            seen_exam = True
        elif _is_imaging(sentence):
            if exam:
                break
            continue  # imaging before any examination: left to the images and captions
        elif seen_exam:
            exam.append(text)
        elif _PAST.search(sentence):
            past.append(text)
        else:
            hpi.append(text)
    first = sentences[complaint_index] if sentences else ""
    return Extracted(
        age=parse_age(first) if parse_age(first) is not None else parse_age(case_text[:400]),
        sex=parse_sex(first, " ".join(sentences[:6])),
        chief_complaint=" ".join(chief) or None,
        history_of_present_illness=" ".join(hpi) or None,
        past_history=" ".join(past) or None,
        examination=" ".join(exam) or None,
    )


def _candidate(sentence: str) -> str | None:
    for pattern in _DX_PATTERNS:
        match = pattern.search(sentence)
        if not match:
            continue
        before = sentence[: match.start()].lower()
        if re.search(
            r"\b(?:differential|exclud\w*|ruled?\s+out|no|not|without|unlikely|rather\s+than)\b", before[-60:]
        ):
            continue
        phrase = _trim(match.group("dx"))
        if phrase:
            return phrase
    return None


def _trim(phrase: str) -> str | None:
    phrase = _FIGURE_REF.sub("", phrase)
    end = _DX_END.search(phrase)
    phrase = phrase[: end.start()] if end else phrase
    phrase = _LEADING.sub("", phrase.strip(" \"'“”"))
    phrase = " ".join(phrase.split())
    if not phrase or len(phrase) > 90 or len(phrase.split()) > 9 or _NOT_A_DIAGNOSIS.match(phrase):
        return None
    if re.search(r"\b(?:history|years?|months?|ago|old)\b", phrase, re.I):
        return None
    return phrase


def _sections_named(sections: Iterable[Section], pattern: str) -> list[Section]:
    wanted = re.compile(pattern, re.I)
    return [s for top in sections for s in top.walk() if wanted.search(s.title or "")]


def find_diagnosis(article: Article, case: Section | None, ontology: Ontology) -> tuple[str | None, str | None]:
    """(diagnosis phrase, where it was found): case section, abstract heading, abstract, conclusion,
    discussion, keywords or title."""
    sources: list[tuple[str, str]] = []
    if case is not None:
        sources.append(("case", case.text()))
    for section in _sections_named(article.abstract, r"^\s*(?:final\s+)?diagnos[ie]s\s*:?\s*$"):
        text = section.text().strip()
        first = split_sentences(text)[0] if text else ""
        phrase = _candidate(first) or _trim(re.sub(r"^(?:the\s+)?(?:patient\s+)?(?:was\s+)?", "", first, flags=re.I))
        if phrase:
            return phrase, "abstract_heading"
    sources.append(("abstract", article.abstract_text()))
    for name, pattern in (("conclusion", r"conclusion"), ("discussion", r"discussion")):
        sections = _sections_named([*article.body, *article.back], pattern)
        sources.append((name, "\n".join(s.text() for s in sections)))
    for name, text in sources:
        for sentence in split_sentences(text):
            phrase = _candidate(sentence)
            if phrase:
                return phrase, name
    for keyword in article.keywords:
        entry = map_diagnosis(keyword, ontology)[1]
        if entry is not None and entry.category not in ("normal", "dr_grade", "dr_lesion", "oct_biomarker"):
            return keyword, "keywords"
    return _title_diagnosis(article.title, ontology), "title"


def _title_diagnosis(title: str, ontology: Ontology) -> str | None:
    """The longest ontology name in the title, else the title's head before ':' or 'in a ...'."""
    words = re.findall(r"[\w'’-]+", title)
    best: tuple[int, str] | None = None
    for start in range(len(words)):
        for end in range(min(len(words), start + 8), start, -1):
            phrase = " ".join(words[start:end])
            entry = ontology.lookup(phrase)
            if entry is not None and (best is None or end - start > best[0]):
                best = (end - start, phrase)
                break
    if best is not None:
        return best[1]
    head = _TITLE_SPLIT.split(title, maxsplit=1)[0] if title else ""
    return _trim(head) if head else None


def map_diagnosis(phrase: str, ontology: Ontology) -> tuple[str, Entry | None]:
    """The phrase, or a shorter form of it without qualifiers, mapped to an ontology entry where a name,
    synonym or abbreviation matches; (cleaned phrase, None) when none does."""
    cleaned = " ".join(phrase.split()).strip(" .")
    variants = [cleaned]
    stripped = cleaned
    while True:
        shorter = _QUALIFIERS.sub("", stripped)
        if shorter == stripped:
            break
        variants.append(shorter)
        stripped = shorter
    for variant in variants:
        entry = ontology.lookup(variant)
        if entry is not None:
            return cleaned, entry
    return cleaned, None


def defined_abbreviations(phrase: str, text: str) -> list[str]:
    """Abbreviations the article defines for the phrase: 'central retinal artery occlusion (CRAO)'."""
    if not phrase:
        return []
    pattern = re.compile(re.escape(phrase) + r"\s*\(([A-Z][A-Za-z0-9-]{1,9})\)", re.I)
    return list(dict.fromkeys(match.group(1) for match in pattern.finditer(text)))


def extract(article: Article, case: Section, ontology: Ontology) -> Extracted:
    """Every field of one case of an article, by rule."""
    phrase, where = find_diagnosis(article, case, ontology)
    terms = [phrase] if phrase else []
    full_text = "\n".join([article.title, article.abstract_text(), *(s.text() for s in article.body)])
    aliases = defined_abbreviations(phrase or "", full_text)
    parts = vignette_parts(case.text(), [*terms, *aliases])
    return parts.model_copy(
        update={"final_diagnosis": phrase, "diagnosis_aliases": aliases, "diagnosis_source": where if phrase else None}
    )


def extract_from_text(text: str, title: str, ontology: Ontology) -> Extracted:
    """The same fields from a plain case text (MultiCaRe, PMC-Patients) and its article title."""
    article = Article(title=title, body=[Section(title="Case presentation", paragraphs=text.splitlines())])
    return extract(article, article.body[0], ontology)
