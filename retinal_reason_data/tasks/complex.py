"""Complex questions from case reports: a vignette (chief complaint, history, examination) with the images in
their order and their captions; the answer is the final diagnosis.

The leakage guard: the diagnosis, its aliases, every accepted name of its ontology entry, the
abbreviations the article defines, the initials of multi-word names, and the signs that name the diagnosis
by themselves (the entry's `signs`: 'smokestack leak' for central serous chorioretinopathy, 'polypoidal
lesions' for polypoidal choroidal vasculopathy, 'cherry-red spot' for a central retinal artery occlusion)
must not appear in what the model sees. A history, past history or examination sentence that names any of
them is removed (repaired). A caption is scrubbed piece by piece (sentences and panels): a piece that names
one, or interprets the picture ('typical of', 'consistent with'), is cut back to what it shows before its
description ('Fundus photograph of the right eye showing a cherry-red spot' -> 'Fundus photograph of the
right eye') or removed; a caption that still names one is left out. A diagnosis outside the ontology has no
list of signs, so its captions keep only what each picture is ('Computed tomography of the abdomen'), not what
it shows. A chief complaint that names one cannot
be repaired, and the case is dropped with the reason (LeakError). A last check over the finished question and
captions refuses anything that still names one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator

from retinal_reason_data.ingest.casereports.panels import classify
from retinal_reason_data.ontology import Entry, Ontology
from retinal_reason_data.recipe import ComplexTasks
from retinal_reason_data.schema import Answer, Case, Item, Modality, QuestionType, TaskKind
from retinal_reason_data.tasks.basic import MODALITY_NOUN
from retinal_reason_data.tasks.options import lay_out, nested_names, seeded_rng
from retinal_reason_data.text import normalise_term, stable_hash

DIAGNOSIS_CATEGORIES = (
    "macular",
    "vascular_occlusion",
    "vascular",
    "inflammatory",
    "white_dot",
    "hereditary",
    "tumour",
    "optic_disc",
    "retinal_detachment",
    "myopia",
    "glaucoma",
    "dr_disease",
    "oct_disease",
    "congenital",
    "trauma",
    "amd_stage",
)
_SENTENCE = re.compile(r"(?<=[.;])\s+")
_CAPTION_PIECE = re.compile(r"(?<=[.;])\s+|\s+(?=\((?:[A-Ha-h](?:\s*[,\u2013-]\s*[A-Ha-h])*)\)\s)")
# Where a caption piece turns from what the picture is to what it shows.
_DESCRIPTION = re.compile(
    r"[,:]|\s(?:show\w*|demonstrat\w*|reveal\w*|disclos\w*|depict\w*|illustrat\w*|highlight\w*|display\w*|"
    r"confirm\w*|indicat\w*|suggest\w*|consistent|compatible|characteri[sz]\w*|featuring|with|of\s+(?:a|an|the)|"
    r"where|in\s+which|arrows?|arrowheads?|note)\b",
    re.I,
)
_SHORT_PIECE = 8  # words: what a picture is ('Transverse CT image at the level of the carina') fits in these
# Leading words that stage or qualify a diagnosis: 'stage IVB lung adenocarcinoma' is also 'lung adenocarcinoma'.
_STAGING = re.compile(
    r"^(?:(?:stage|grade|type|class|phase)\s+[\w.-]+|bilateral|unilateral|acute|subacute|chronic|primary|secondary|"
    r"recurrent|relapsing|severe|mild|moderate|advanced|early|late|obstructing|obstructive|congenital|idiopathic|"
    r"atypical|typical|isolated|metastatic|localized|localised|diffuse|multifocal|focal|complicated|refractory|"
    r"intractable|progressive|fulminant|massive|giant|rare|unusual)\s+",
    re.I,
)
_STAGE_ONLY = re.compile(r"^(?:stage|grade|class|phase)\s+[\w.-]+\s+", re.I)
_INTERPRETS = re.compile(
    r"\b(?:typical|characteristic|diagnostic|pathognomonic|suggestive|indicative)\s+of\b|"
    r"\b(?:consistent|compatible)\s+with\b|\bconfirm(?:s|ed|ing)?\s+the\s+diagnosis\b",
    re.IGNORECASE,
)
_STOP_WORDS = {"of", "the", "and", "with", "in", "to", "a", "an", "or", "for", "on"}
NOT_DIAGNOSES = {"maculopathy", "retinal_traction", "choroidal_folds", "chorioretinal_atrophy", "tumour.any"}


class LeakError(ValueError):
    """The vignette names the diagnosis and cannot be repaired; the item cannot be asked."""


def diagnosis_terms(case: Case, ontology: Ontology) -> list[str]:
    """Every name the diagnosis goes by: as written, its aliases, its ontology entries' names, synonyms and
    abbreviations, and the initials of multi-word names ('CRAO'); longest first."""
    names = [case.context.diagnosis or "", *case.context.diagnosis_aliases]
    for finding in case.findings:
        entry = ontology.entry(finding.code)
        names += [entry.name, *entry.aliases]
    names = [name for name in names if name.strip()]
    names += [core for name in names if (core := _core(name)) and core != name]
    names += [head for name in names if (head := _distinctive_head(name))]
    terms = set(names) | {initials for name in names if (initials := _initials(name))}
    return sorted(terms, key=lambda term: (-len(term), term))


def sign_terms(case: Case, ontology: Ontology) -> list[str]:
    """The signs that name the case's diagnosis by themselves (its ontology entries' `signs`), longest first."""
    signs = {sign for finding in case.findings for sign in ontology.entry(finding.code).signs if sign.strip()}
    return sorted(signs, key=lambda sign: (-len(sign), sign))


def _core(name: str, staging_only: bool = False) -> str | None:
    """The name without its staging and qualifiers ('stage IVB lung adenocarcinoma' -> 'lung adenocarcinoma'), when
    two words or more remain; with `staging_only`, without 'stage', 'grade', 'type' ... only (an answer may leave
    the stage out, but 'acute' is part of 'acute retinal necrosis')."""
    pattern = _STAGE_ONLY if staging_only else _STAGING
    core = name
    while (shorter := pattern.sub("", core)) != core:
        core = shorter
    return core if len(core.split()) >= 2 and core != name else None


# Head nouns that many diagnoses share: alone they do not name one ('detachment', 'syndrome').
_GENERIC_HEADS = frozenset(
    [
        "disease",
        "syndrome",
        "disorder",
        "condition",
        "retinopathy",
        "maculopathy",
        "neuropathy",
        "detachment",
        "occlusion",
        "hole",
        "membrane",
        "degeneration",
        "dystrophy",
        "oedema",
        "edema",
        "haemorrhage",
        "hemorrhage",
        "tumour",
        "tumor",
        "cancer",
        "lesion",
        "lesions",
        "mass",
        "infection",
        "inflammation",
        "injury",
        "trauma",
        "defect",
        "deficiency",
        "anomaly",
        "malformation",
        "atrophy",
        "neovascularisation",
        "neovascularization",
        "fold",
        "folds",
        "scar",
        "cyst",
        "cysts",
        "opacity",
        "opacities",
        "thickening",
        "thinning",
        "fluid",
        "leakage",
        "obstruction",
        "failure",
        "insufficiency",
        "abnormality",
        "changes",
        "stage",
        "grade",
        "type",
    ]
)


def _distinctive_head(name: str) -> str | None:
    """The last word of a multi-word name when it names the condition by itself ('retinoschisis' of 'acquired
    retinoschisis', 'adenocarcinoma' of 'lung adenocarcinoma'), not a head many diagnoses share ('detachment')."""
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", name)
    if len(words) < 2 or len(words[-1]) < 6 or words[-1].lower() in _GENERIC_HEADS:
        return None
    return words[-1]


def _initials(name: str) -> str | None:
    words = [w for w in re.split(r"[\s-]+", name) if w and w.lower() not in _STOP_WORDS]
    if len(words) < 2 or len(words) > 6:
        return None
    return "".join(word[0].upper() for word in words)


def _is_abbreviation(term: str) -> bool:
    """'CRAO', 'mCNV', 'FTMH': short, one word, two capitals or more (matched with their case)."""
    return " " not in term and len(term) <= 8 and sum(char.isupper() for char in term) >= 2


def mentions(text: str, terms: Iterable[str]) -> bool:
    """Whether `text` names any of `terms`: names as whole words after normalisation, abbreviations
    ('CRAO', 'mCNV') as whole words with their case."""
    padded = f" {normalise_term(text)} "
    for term in terms:
        if _is_abbreviation(term):
            if re.search(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", text):
                return True
        elif (normal := normalise_term(term)) and f" {normal} " in padded:
            return True
    return False


def strip_leaks(text: str, terms: list[str], interpretive: bool = False) -> str:
    """`text` without the sentences that name the diagnosis (and, for captions, that interpret the image)."""
    kept = [
        sentence
        for sentence in _SENTENCE.split(text or "")
        if not mentions(sentence, terms) and not (interpretive and _INTERPRETS.search(sentence))
    ]
    return " ".join(kept).strip()


def scrub_caption(caption: str, terms: list[str], describe: bool = True) -> str:
    """The caption without what names the diagnosis or interprets the picture: each piece (sentence or panel)
    that does is cut back to the words before its description, or removed; '' when it still names it. Without
    `describe`, every piece is cut back to what the picture is ('Transverse CT image'), kept only when it names
    an imaging modality or a stain, never what it shows."""
    kept = []
    for piece in _CAPTION_PIECE.split(caption or ""):
        cut = _DESCRIPTION.search(piece)
        if not describe:
            what = piece[: cut.start()].strip() if cut else piece.strip()
            if what and len(what.split()) <= _SHORT_PIECE and classify(what) and not mentions(what, terms):
                kept.append(what.rstrip(".") + ".")  # what the picture is: 'Transverse CT image.'
            continue
        if describe and not mentions(piece, terms) and not _INTERPRETS.search(piece):
            kept.append(piece)
            continue
        head = piece[: cut.start()].strip() if cut else ""
        if head and not mentions(head, terms) and not _INTERPRETS.search(head):
            kept.append(head.rstrip(".") + ".")
    scrubbed = " ".join(" ".join(kept).split()).strip()
    return "" if mentions(scrubbed, terms) else scrubbed


_CLAUSE = re.compile(r",?\s+(?:and|but|while|whereas|which|where|when)\s+|;\s*|,\s+(?=\w+\s+(?:showed|revealed))", re.I)


def _presenting_clause(complaint: str, terms: list[str]) -> str | None:
    """The chief complaint, or, when a later clause of it names the diagnosis or a sign, its first clause ('A
    45-year-old man complained of blurred vision, and ophthalmoscopy revealed ... an optic disc pit' -> 'A
    45-year-old man complained of blurred vision.'); None when the first clause names one."""
    if not mentions(complaint, terms):
        return complaint
    boundary = _CLAUSE.search(complaint)
    first = complaint[: boundary.start()].strip(" ,;") if boundary else ""
    return f"{first}." if len(first.split()) >= 4 and not mentions(first, terms) else None


def vignette(
    case: Case, terms: list[str], signs: list[str] | None = None, describe: bool = True
) -> tuple[str, list[str]]:
    """The case text the model reads and the cleaned captions; raises LeakError when the chief complaint
    names the diagnosis or one of its signs (a history, past history or examination sentence that does is
    left out; captions are scrubbed, see `scrub_caption`; without `describe` they keep only what each picture
    is: a diagnosis outside the ontology has no list of the signs that would name it)."""
    context = case.context
    terms = [*terms, *(signs or [])]
    complaint = _presenting_clause(context.chief_complaint or "", terms)
    if complaint is None:
        raise LeakError("the chief complaint names the diagnosis or a sign that names it")
    parts = [complaint]
    for label, text in (
        ("History", context.history),
        ("Past history", context.past_history),
        ("Examination", context.exam),
    ):
        cleaned = strip_leaks(text or "", terms)
        if cleaned:
            parts.append(f"{label}: {cleaned}")
    captions, lines = [], []
    for number, image in enumerate(case.images, start=1):
        caption = scrub_caption(image.caption or "", terms, describe)
        captions.append(caption)
        noun = MODALITY_NOUN[image.modality]
        lines.append(f"Image {number} ({noun}): {caption}" if caption else f"Image {number} ({noun}).")
    text = " ".join(part for part in parts if part) + "\n" + "\n".join(lines)
    if mentions(text, terms) or any(mentions(caption, terms) for caption in captions):
        raise LeakError("the vignette still names the diagnosis after repair")
    return text, captions


def choose_distractors(
    ontology: Ontology, entry: Entry | None, terms: list[str], modalities: set[Modality], count: int, rng: random.Random
) -> list[Entry]:
    """Other diagnoses of the ontology: the answer's category first, then those seen in the case's imaging
    modalities; never a synonym of the answer, nor a broader or narrower name of it ('retinal artery
    occlusion' for 'central retinal artery occlusion')."""
    answer_terms = [term for term in terms if " " in term or len(term) > 8]
    excluded = {normalise_term(term) for term in terms}

    def allowed(candidate: Entry) -> bool:
        if candidate.category not in DIAGNOSIS_CATEGORIES or (entry is not None and candidate.code == entry.code):
            return False
        if candidate.code.startswith("lesion.") or candidate.code in NOT_DIAGNOSES:
            return False  # findings, not diagnoses
        if ontology.names(candidate.code) & excluded:
            return False
        if entry is not None and ontology.same_concept(candidate.code, entry.code):
            return False
        return not any(nested_names(candidate.name, term) for term in answer_terms)

    pool = sorted((c for c in ontology.entries.values() if allowed(c)), key=lambda c: c.code)
    category = entry.category if entry is not None else None
    tiers = [
        [c for c in pool if c.category == category],
        [c for c in pool if c.category != category and modalities & set(c.modalities)],
        [c for c in pool if c.category != category and not modalities & set(c.modalities)],
    ]
    chosen: list[Entry] = []
    for tier in tiers:
        rng.shuffle(tier)
        chosen += tier[: count - len(chosen)]
    return chosen[:count]


def _sentence_case(text: str) -> str:
    """'acute macular neuroretinopathy' -> 'Acute macular neuroretinopathy', as the ontology writes names."""
    return text[:1].upper() + text[1:]


def complex_items(case: Case, ontology: Ontology, spec: ComplexTasks, seed: int) -> Iterator[Item]:
    """An open and a single-choice question on the most likely diagnosis of one case report."""
    if not case.context.chief_complaint or not case.context.diagnosis or not case.images:
        return
    terms = diagnosis_terms(case, ontology)
    text, captions = vignette(case, terms, sign_terms(case, ontology), describe=bool(case.findings))
    codes = [f.code for f in case.findings]
    entry = ontology.entry(codes[0]) if codes else None
    name = entry.name if entry else _sentence_case(case.context.diagnosis)
    accepted = [case.context.diagnosis, *case.context.diagnosis_aliases, *(entry.aliases if entry else [])]
    if entry is None:  # free text: 'lung adenocarcinoma' also answers 'stage IVB lung adenocarcinoma'
        accepted += [core for name in accepted if name and (core := _core(name, staging_only=True))]
    aliases = sorted({t for t in accepted if t and normalise_term(t) != normalise_term(name)})
    modalities = {image.modality for image in case.images}
    rng = seeded_rng(seed, case.case_id, "complex")
    for question_type in spec.types:
        if question_type == "open":
            question = f"{text}\nWhat is the most likely diagnosis?"
            options, answer = [], Answer(text=name, aliases=aliases, code=entry.code if entry else None)
        else:
            wrong = choose_distractors(ontology, entry, terms, modalities, spec.options - 1, rng)
            if len(wrong) < spec.options - 1:
                continue
            options, letters = lay_out([name], [w.name for w in wrong], rng)
            question = f"{text}\nWhich of the following is the most likely diagnosis?"
            answer = Answer(text=letters, code=entry.code if entry else None)
        yield Item(
            item_id=stable_hash(case.case_id, TaskKind.COMPLEX, question_type, question, *options),
            case_id=case.case_id,
            task=TaskKind.COMPLEX,
            question_type=QuestionType(question_type),
            modality=case.images[0].modality,
            question=question,
            options=options,
            answer=answer,
            image_shas=[image.sha256 for image in case.images],
            captions=captions,
        )
