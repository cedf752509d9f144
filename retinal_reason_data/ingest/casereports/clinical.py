"""Rule-based, offline extraction of a case report's clinical context: age, sex, chief complaint, history of
present illness, past history, examination findings and the final diagnosis.

A case presentation reads in a known order: who presented with what ("A 62-year-old woman presented with a
one-month history of sudden painless visual loss"), the history, the examination, the imaging, then the
diagnosis, the treatment, the pathology and the outcome. The vignette keeps what a clinician knew before the
images were read and the diagnosis made: it stops at the first sentence that makes or names the diagnosis,
that tells of treatment given (surgery, stenting, injections, drugs started), of pathology (biopsy,
histopathology, immunohistochemistry) or of the course afterwards (follow-up, outcome), and, once the
examination is told, at imaging findings and investigations. Earlier events keep their place in the history
("she had undergone cataract surgery in 2015", "treated for conjunctivitis by her doctor without improvement").
The final diagnosis comes from explicit diagnostic statements only (`casereports.diagnosis`).

Text is read with typographic characters normalised first ('7\u2010year\u2010old', non-breaking and thin spaces).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.ingest.casereports.diagnosis import DiagnosisReading, map_diagnosis, read_diagnosis
from retinal_reason_data.ingest.casereports.jats import Article, Section, normalise_characters
from retinal_reason_data.ingest.casereports.panels import classify
from retinal_reason_data.ingest.casereports.sentences import abbreviation_definitions, split_sentences
from retinal_reason_data.ontology import Ontology
from retinal_reason_data.schema import Modality
from retinal_reason_data.text import normalise_term

__all__ = [
    "Extracted",
    "case_sections",
    "defined_abbreviations",
    "extract",
    "extract_from_text",
    "find_diagnosis",
    "map_diagnosis",
    "parse_age",
    "parse_sex",
    "split_sentences",
    "vignette_parts",
]


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
    diagnosis_refusal: str | None = Field(default=None, description="Why the rules trust no diagnosis statement.")


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
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
_UNITS += ["thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER_WORDS = {word: value for value, word in enumerate(_UNITS)} | {w: 10 * (i + 2) for i, w in enumerate(_TENS)}
_NUMBER = rf"\b(\d{{1,3}}|(?:{'|'.join(_NUMBER_WORDS)})(?:[- ](?:{'|'.join(_UNITS[1:10])}))?)"
_AGE = [
    (re.compile(_NUMBER + r"[- ]?(?:year|yr)s?[- ]old\b", re.I), 1),
    (re.compile(_NUMBER + r"\s*-?\s*(?:years?|yrs?)\s+(?:of\s+age|old)\b", re.I), 1),
    (re.compile(_NUMBER + r"[- ](?:month|week|day)s?[- ]old\b", re.I), 0),
    (re.compile(r"\baged?\s+(?:of\s+)?" + _NUMBER + r"\s*(?:months?|weeks?|days?)\b", re.I), 0),
    (re.compile(r"\baged?\s+(?:of\s+)?" + _NUMBER + r"\b", re.I), 1),
    (re.compile(r"\b(\d{1,3})\s*-?\s*(?:yo|y/o|y\.o\.)(?![A-Za-z])", re.I), 1),
    (re.compile(r"\b(?:newborn|neonate|infant)\b", re.I), 0),
]
_FEMALE = re.compile(r"\b(?:woman|women|female|lady|girl|mother|wife|Mrs|Ms|she|her|daughter)\b", re.I)
_MALE = re.compile(r"\b(?:man|men|male|gentleman|boy|father|husband|Mr|he|his|him|son)\b", re.I)
_SEX_NOUN_F = re.compile(r"\b(?:woman|female|lady|girl)\b", re.I)
_SEX_NOUN_M = re.compile(r"\b(?:man|male|gentleman|boy)\b", re.I)
# The sentence that brings the patient in, strongest phrasings first.
_PRESENTING = re.compile(
    r"\b(?:present(?:ed|s|ing)?\s+(?:\w+\s+){0,6}?(?:with|to|at|for|in|because|due|after|complaining)|"
    r"complain(?:ed|s|ing|ts?)|chief\s+complaints?|presenting\s+(?:complaints?|symptoms?)|referred|"
    r"(?:came|come|comes|coming)\s+to|attended|visited|admitted|hospitali[sz]ed|consulted|sought|"
    r"(?:was|were)\s+(?:seen|brought|evaluated|transferred)|brought\s+to|evaluation\s+(?:of|for)|"
    r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|several|a)[- ](?:hours?|days?|weeks?|months?|years?)"
    r"(?:[- ]long)?\s+history\s+of|history\s+of\s+(?:\w+\s+){1,6}?(?:for|since)\s+(?:the\s+)?(?:past\s+|last\s+)?"
    r"(?:\d+|one|two|three|several|a\s+few)|present(?:ed|s|ing))\b",
    re.I,
)
_ONSET = re.compile(r"\b(?:noticed|reported|developed|experienced|suffer(?:ed|ing)|onset)\b", re.I)
_INTRODUCES = re.compile(r"\b(?:year|yr|month|week|day)s?[- ]old\b|\baged?\s+\d", re.I)
_PAST = re.compile(
    r"\b(?:history\s+of|medical\s+history|past\s+(?:medical|ocular|history)|previous(?:ly)?|known\s+case|"
    r"known\s+to|hypertension|hypertensive|diabet(?:es|ic)|medications?|was\s+taking|is\s+taking|family\s+history|"
    r"smok(?:er|ing|ed)|allerg\w*|unremarkable\s+(?:medical|past)|years?\s+ago|no\s+(?:other\s+)?(?:relevant|"
    r"significant|systemic|ocular)\s+(?:medical\s+)?history|underwent|had\s+undergone|treated\s+for)\b",
    re.I,
)
# Events before this presentation: a sentence that carries one of these keeps its place in the history even
# when it tells of surgery or treatment.
_EARLIER_EVENT = re.compile(
    r"\b(?:history\s+of|previous(?:ly)?|initial(?:ly)?|original(?:ly)?|misdiagnos\w*|prior\s+to|in\s+the\s+past|"
    r"years?\s+(?:ago|before|earlier|prior)|"
    r"months?\s+(?:ago|before|earlier|prior)|had\s+(?:been|undergone|received|had|taken|used)|"
    r"in\s+(?:19|20)\d\d|at\s+(?:the\s+)?age\s+of|as\s+a\s+child|in\s+childhood|elsewhere|"
    r"before\s+(?:presentation|referral|admission|the\s+onset|coming)|"
    r"(?:by|from)\s+(?:his|her|their|a|the)\s+(?:local\s+|family\s+|primary\s+care\s+)?(?:doctor|physician|"
    r"ophthalmologist|optometrist|general\s+practitioner|GP|p(?:a)?ediatrician|dermatologist|neurologist)|"
    r"without\s+(?:any\s+)?(?:improvement|relief|benefit|response|success)|(?:did|had)\s+not\s+(?:improve|"
    r"resolve|respond|help)|no\s+(?:improvement|response|relief))\b",
    re.I,
)
# Treatment given, pathology and the course afterwards: the vignette ends before them.
_MANAGEMENT = re.compile(
    r"\b(?:surg(?:ery|eries|ical(?:ly)?)|operat(?:ed|ion|ions|ive)|resect(?:ed|ion)|excis(?:ed|ion|ional)|"
    r"laparotom\w*|laparoscop\w*|thoracotom\w*|craniotom\w*|endoscopic(?:ally)?\s+(?:removal|removed|retriev\w*|"
    r"extract\w*|treatment|intervention)|stent(?:s|ed|ing)?|(?:was|were)\s+(?:then\s+)?(?:treated|managed|started|"
    r"commenced|initiated|administered|prescribed|put\s+on|switched)|treat(?:ed|ment)\s+(?:with|was|consisted|"
    r"included)|(?:he|she|they|the\s+patient)\s+(?:then\s+)?(?:received|was\s+given)|"
    r"(?:underwent|undergo(?:ing)?)(?!\s+(?:[\w-]+\s+){0,4}?(?:examination|evaluation|assessment|work-?up|imaging|"
    r"investigations?|tests?|testing|scans?|photograph\w*|tomograph\w*|angiograph\w*|ultrasonograph\w*))|inject(?:ed|ion|ions)|intravitreal|vitrectomy|photocoagulation|photodynamic\s+therapy|"
    r"chemotherap\w*|radiotherap\w*|radiation\s+therapy|brachytherap\w*|enucleat\w*|transplant\w*|dialysis|"
    r"plasmapheresis|immunohistochem\w*|histopatholog\w*|histolog\w*|patholog(?:y|ical)\s+(?:examination|"
    r"report|findings?|showed|revealed|analysis)|specimens?|biops(?:y|ies|ied)|cytolog\w*|"
    r"post-?operative(?:ly)?|follow-?up|discharged|recover(?:ed|y)|resolv(?:ed|ution)|improv(?:ed|ement)|"
    r"outcome|prognosis|died|death|at\s+(?:the\s+)?(?:last|final|latest)\s+(?:visit|review|follow)|"
    r"(?:days?|weeks?|months?|years?)\s+(?:later|after\s+(?:the\s+)?(?:surgery|treatment|operation|discharge)))\b",
    re.I,
)
_EXAM = re.compile(
    r"\b(?:visual\s+acuit(?:y|ies)|BCVA|VA\b|intra-?ocular\s+pressures?|IOP|slit-?lamp|anterior\s+segment|"
    r"examination|examined|ophthalmoscop\w*|fundoscop\w*|funduscop\w*|biomicroscop\w*|pupil\w*|RAPD|"
    r"afferent\s+pupillary|ocular\s+motility|colou?r\s+vision|Ishihara|on\s+exam|vital\s+signs|"
    r"blood\s+pressure\s+was|Snellen|logMAR|counting\s+fingers|hand\s+motion|light\s+perception|"
    r"physical\s+exam|exam\s+(?:was|revealed|showed)|auscultation|palpation)\b",
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
    """Whole years from '62-year-old', '62 years of age', 'aged 62', 'seven-year-old', '7\u2010year\u2010old'; 0 for
    '6-month-old' and 'infant'."""
    text = normalise_characters(text)
    for pattern, unit in _AGE:
        match = pattern.search(text)
        if match:
            value = _number(match.group(1)) if unit and match.groups() else 0
            return value if value is not None and 0 <= value <= 120 else None
    return None


def _number(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    words = re.split(r"[- ]", text.lower())
    values = [_NUMBER_WORDS.get(word) for word in words]
    return None if None in values else sum(v for v in values if v is not None)


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
# Results of other investigations (radiology, endoscopy, scans): a test and what it found.
_INVESTIGATION = re.compile(
    r"\b(?:CT|MRI|PET|computed\s+tomograph\w*|magnetic\s+resonance|radiograph\w*|x-?rays?|ultrasound|ultrasonograph\w*|"
    r"sonograph\w*|echocardiogra\w*|scintigra\w*|angiogra\w*|endoscop\w*|enteroscop\w*|colonoscop\w*|"
    r"gastroscop\w*|bronchoscop\w*|scans?)\b.*\b(?:showed|shows|revealed|reveals|demonstrated|disclosed|confirmed|"
    r"detected|identified|found|noted|visuali[sz]ed)\b",
    re.I,
)
# Laboratory and microbiology results (and the sampling for them): they point at the diagnosis.
_LABORATORY = re.compile(
    r"\b(?:PCR|polymerase\s+chain\s+reaction|paracentesis|vitreous\s+(?:tap|sample|biopsy)|aqueous\s+(?:humou?r\s+)?"
    r"(?:sample|tap|analysis)|serolog\w*|cultures?|antibod(?:y|ies)|titers?|titres?|assays?|cytolog\w*|"
    r"flow\s+cytometry|immunofixation|karyotyp\w*|genetic\s+(?:testing|analysis)|sequencing|laboratory|"
    r"blood\s+(?:tests?|count|work|smear)|cerebrospinal\s+fluid|lumbar\s+puncture|urinalysis|urine\s+analysis)\b",
    re.I,
)
# A sentence that draws a conclusion from findings: the diagnosis is being made.
_INTERPRETIVE = re.compile(
    r"\b(?:consistent|compatible)\s+with\b|\b(?:suggestive|indicative|typical|characteristic|diagnostic|"
    r"pathognomonic)\s+(?:of|for)\b|\bsuspect(?:ed|ing)?\s+(?:for|of)\b|\bhighly\s+suspicious\b",
    re.I,
)
# Statements about the report itself (consent, ethics approval), not about the patient.
_BOILERPLATE = re.compile(
    r"\b(?:informed\s+consent|written\s+consent|consent\s+(?:was|has\s+been)\s+obtained|ethic(?:s|al)\s+committee|"
    r"institutional\s+review\s+board|\bIRB\b|approved\s+by\s+the|declaration\s+of\s+helsinki|publication\s+of\s+"
    r"this\s+(?:case|report))",
    re.I,
)


def _is_imaging(sentence: str) -> bool:
    """A sentence about imaging or investigation findings: it cites a figure, names an ophthalmic imaging
    modality outside an examination sentence, or tells what a scan, radiograph or endoscopy found."""
    if _FIGURE_REF.search(sentence) or _IMAGING_WORDS.search(sentence) or _INVESTIGATION.search(sentence):
        return True
    modality = classify(sentence)
    return modality is not None and modality is not Modality.OTHER and not _EXAM.search(sentence)


def presentation_index(sentences: list[str]) -> int | None:
    """The sentence that brings the patient in: the first of the opening sentences that says how they presented
    ('presented to our clinic with', 'complaining of', 'was referred for', 'with a 2-week history of'), else one
    that tells of the onset ('noticed', 'developed'), else the one that introduces the patient by age; None
    when there is none."""
    opening = sentences[:8]
    for pattern, reach in ((_PRESENTING, 8), (_ONSET, 4), (_INTRODUCES, 3)):
        found = next((i for i, s in enumerate(opening[:reach]) if pattern.search(s)), None)
        if found is not None:
            return found
    return None


def _names(sentence: str, terms: list[str]) -> bool:
    padded = f" {normalise_term(sentence)} "
    return any(f" {term} " in padded for term in terms)


def vignette_parts(case_text: str, diagnosis_terms: Iterable[str] = ()) -> Extracted:
    """Chief complaint, history, past history and examination from a case section's text: the sentences
    before the diagnosis, the treatment, the pathology and the outcome (and, after the examination, before
    imaging findings and investigations)."""
    terms = [normalise_term(t) for t in diagnosis_terms if normalise_term(t)]
    sentences = split_sentences(case_text)
    sentences = [sentence for sentence in sentences if not _BOILERPLATE.search(sentence)]
    complaint_index = presentation_index(sentences)
    chief: list[str] = []
    hpi: list[str] = []
    past: list[str] = []
    exam: list[str] = []
    seen_exam = False
    for index, sentence in enumerate(sentences):
        text = _drop_figure_refs(sentence)
        if complaint_index is None or index < complaint_index:
            if not _names(sentence, terms) and not _is_imaging(sentence):
                past.append(text)  # background told before the presentation
            continue
        if index == complaint_index:
            chief.append(text)
            continue
        earlier = bool(_EARLIER_EVENT.search(sentence))
        if _names(sentence, terms) or (
            _DIAGNOSIS_CUE.search(sentence) and (seen_exam or not (_PAST.search(sentence) or earlier))
        ):
            break
        if (
            _MANAGEMENT.search(sentence) or _INTERPRETIVE.search(sentence) or _LABORATORY.search(sentence)
        ) and not earlier:
            break
        if seen_exam and (_AFTER_EXAM_STOP.search(sentence) and not earlier or _is_imaging(sentence)):
            break
        if _EXAM.search(sentence):
            exam.append(text)
            seen_exam = True
        elif _is_imaging(sentence):
            if exam:
                break
            continue  # imaging before any examination: left to the images and captions
        elif seen_exam:
            exam.append(text)
        elif _PAST.search(sentence) or earlier:
            past.append(text)
        else:
            hpi.append(text)
    first = sentences[complaint_index] if complaint_index is not None else (sentences[0] if sentences else "")
    age = parse_age(first)
    return Extracted(
        age=age if age is not None else parse_age(" ".join(sentences[:3])),
        sex=parse_sex(first, " ".join(sentences[:6])),
        chief_complaint=" ".join(chief) or None,
        history_of_present_illness=" ".join(hpi) or None,
        past_history=" ".join(past) or None,
        examination=" ".join(exam) or None,
    )


def find_diagnosis(
    article: Article, case: Section | None, ontology: Ontology, several_cases: bool = False
) -> tuple[str | None, str | None]:
    """(diagnosis phrase, where it was stated), or (None, None): see `casereports.diagnosis.read_diagnosis`."""
    reading = read_diagnosis(article, case, ontology, several_cases)
    return reading.phrase, reading.where


def defined_abbreviations(phrase: str, text: str) -> list[str]:
    """Abbreviations the article defines for the phrase: 'central retinal artery occlusion (CRAO)'."""
    if not phrase:
        return []
    wanted = normalise_term(phrase)
    return [short for short, long_form in abbreviation_definitions(text).items() if normalise_term(long_form) == wanted]


def extract(article: Article, case: Section, ontology: Ontology, several_cases: bool = False) -> Extracted:
    """Every field of one case of an article, by rule."""
    reading: DiagnosisReading = read_diagnosis(article, case, ontology, several_cases)
    terms = [reading.phrase, *reading.aliases] if reading.phrase else []
    parts = vignette_parts(case.text(), terms)
    if (parts.age is None or parts.sex is None) and not several_cases and article.abstract:
        # a case section that starts after the introduction ('The patient was diagnosed with ...'): the abstract
        # of a one-patient report introduces the same patient
        summary = vignette_parts(article.abstract_text())
        parts = parts.model_copy(
            update={"age": parts.age if parts.age is not None else summary.age, "sex": parts.sex or summary.sex}
        )
    return parts.model_copy(
        update={
            "final_diagnosis": reading.phrase,
            "diagnosis_aliases": reading.aliases,
            "diagnosis_source": reading.where,
            "diagnosis_refusal": reading.refusal,
        }
    )


def extract_from_text(text: str, title: str, ontology: Ontology) -> Extracted:
    """The same fields from a plain case text (MultiCaRe, PMC-Patients) and its article title."""
    text = normalise_characters(text)
    article = Article(title=title, body=[Section(title="Case presentation", paragraphs=text.splitlines())])
    return extract(article, article.body[0], ontology)
