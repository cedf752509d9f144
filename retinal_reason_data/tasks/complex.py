"""Complex questions from case reports: a vignette with the images, answer the final diagnosis."""

from __future__ import annotations

import re
from collections.abc import Iterator

from retinal_reason_data.ontology import Ontology
from retinal_reason_data.recipe import ComplexTasks
from retinal_reason_data.schema import Answer, Case, Item, QuestionType, TaskKind
from retinal_reason_data.tasks.basic import MODALITY_NOUN
from retinal_reason_data.tasks.options import lay_out, pick_distractors, seeded_rng
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
)
_SENTENCE = re.compile(r"(?<=[.;])\s+")


class LeakError(ValueError):
    """The vignette itself names the diagnosis; the item cannot be asked."""


def diagnosis_terms(case: Case, ontology: Ontology) -> list[str]:
    """The diagnosis as written, its aliases, and every accepted name of its ontology entry."""
    terms = [case.context.diagnosis or "", *case.context.diagnosis_aliases]
    for finding in case.findings:
        entry = ontology.entry(finding.code)
        terms += [entry.name, *entry.aliases]
    return sorted({t for t in terms if t.strip()}, key=len, reverse=True)


def mentions(text: str, terms: list[str]) -> bool:
    """Whether `text` names any of `terms` as whole words (after normalisation)."""
    padded = f" {normalise_term(text)} "
    return any(f" {normalise_term(term)} " in padded for term in terms if normalise_term(term))


def strip_leaks(caption: str, terms: list[str]) -> str:
    """Drop the sentences of a caption that name the diagnosis."""
    kept = [sentence for sentence in _SENTENCE.split(caption) if not mentions(sentence, terms)]
    return " ".join(kept).strip()


def vignette(case: Case, terms: list[str]) -> tuple[str, list[str]]:
    """The case text a reader sees and the cleaned captions; raises LeakError if the history names it."""
    context = case.context
    parts = [context.chief_complaint or ""]
    if context.history:
        parts.append(f"History: {context.history}")
    if context.exam:
        parts.append(f"Examination: {context.exam}")
    text = " ".join(p for p in parts if p)
    if mentions(text, terms):
        raise LeakError("the chief complaint, history or examination names the diagnosis")
    captions, lines = [], []
    for number, image in enumerate(case.images, start=1):
        caption = strip_leaks(image.caption or "", terms)
        captions.append(caption)
        noun = MODALITY_NOUN[image.modality]
        lines.append(f"Image {number} ({noun}): {caption}" if caption else f"Image {number} ({noun}).")
    return text + "\n" + "\n".join(lines), captions


def complex_items(case: Case, ontology: Ontology, spec: ComplexTasks, seed: int) -> Iterator[Item]:
    """An open and a single-choice question on the most likely diagnosis of one case report."""
    if not case.context.chief_complaint or not case.context.diagnosis:
        return
    terms = diagnosis_terms(case, ontology)
    text, captions = vignette(case, terms)
    codes = [f.code for f in case.findings]
    entry = ontology.entry(codes[0]) if codes else None
    name = entry.name if entry else case.context.diagnosis
    aliases = sorted({t for t in terms if normalise_term(t) != normalise_term(name)})
    modalities = sorted({image.modality for image in case.images})
    rng = seeded_rng(seed, case.case_id, "complex")
    for question_type in spec.types:
        if question_type == "open":
            question = f"{text}\nWhat is the most likely diagnosis?"
            options, answer = [], Answer(text=name, aliases=aliases, code=entry.code if entry else None)
        else:
            wrong = pick_distractors(
                ontology,
                codes,
                codes,
                modalities,
                spec.options - 1,
                rng,
                categories=DIAGNOSIS_CATEGORIES,
                exclude_names=terms,
            )
            wrong = [w for w in wrong if w.category in DIAGNOSIS_CATEGORIES]
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
