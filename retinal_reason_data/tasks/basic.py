"""Basic questions from an image's labels: true/false, single choice, multiple choice, open."""

from __future__ import annotations

import random
from collections.abc import Iterator

from retinal_reason_data.ontology import Ontology
from retinal_reason_data.recipe import BasicTasks
from retinal_reason_data.schema import Answer, Case, Item, Modality, QuestionType, TaskKind
from retinal_reason_data.tasks.options import lay_out, pick_distractors, seeded_rng
from retinal_reason_data.text import stable_hash

MODALITY_NOUN = {
    Modality.CFP: "colour fundus photograph",
    Modality.OCT: "OCT B-scan",
    Modality.FFA: "fluorescein angiogram",
    Modality.OTHER: "image",
    Modality.ICGA: "indocyanine green angiogram",
    Modality.OCTA: "OCT angiogram",
    Modality.FAF: "fundus autofluorescence image",
    Modality.SLIT_LAMP: "slit-lamp photograph",
    Modality.VISUAL_FIELD: "visual field printout",
}
Built = tuple[str, list[str], Answer]  # question, options, answer

FINDING_NOUN = {Modality.CFP: "finding", Modality.OCT: "finding", Modality.FFA: "angiographic finding"}


def basic_items(case: Case, ontology: Ontology, spec: BasicTasks, seed: int) -> Iterator[Item]:
    """One question per case, of a type chosen deterministically among those that fit its labels."""
    if not case.findings or not case.images or case.context.chief_complaint:
        return
    modality = case.images[0].modality
    rng = seeded_rng(seed, case.case_id, "basic")
    fitting = [qt for qt in spec.types if _fits(qt, case, ontology)]
    if not fitting:
        return
    question_type = fitting[int(stable_hash(seed, case.case_id, "type"), 16) % len(fitting)]
    build = {
        QuestionType.TRUE_FALSE: _true_false,
        QuestionType.SINGLE_CHOICE: _single_choice,
        QuestionType.MULTIPLE_CHOICE: _multiple_choice,
        QuestionType.OPEN: _open,
    }[question_type]
    built = build(case, ontology, modality, spec.options, rng)
    if built is None:
        return
    question, options, answer = built
    yield Item(
        item_id=stable_hash(case.case_id, TaskKind.BASIC, question_type, question, *options),
        case_id=case.case_id,
        task=TaskKind.BASIC,
        question_type=question_type,
        modality=modality,
        question=question,
        options=options,
        answer=answer,
        image_shas=[image.sha256 for image in case.images],
    )


def _fits(question_type: QuestionType, case: Case, ontology: Ontology) -> bool:
    if question_type is QuestionType.MULTIPLE_CHOICE:
        graded = len(case.findings) == 1 and ontology.scale_of(case.findings[0].code) is not None
        return graded or len(case.findings) >= 2
    return True


def _primary(case: Case, rng: random.Random) -> str:
    return sorted(f.code for f in case.findings)[rng.randrange(len(case.findings))]


def _true_false(case: Case, ontology: Ontology, modality: Modality, n_options: int, rng: random.Random) -> Built | None:
    present = [f.code for f in case.findings]
    noun = MODALITY_NOUN[modality]
    if rng.random() < 0.5:
        code, truth = _primary(case, rng), True
    else:
        wrong = pick_distractors(ontology, present, present, [modality], 1, rng)
        if not wrong:
            return None
        code, truth = wrong[0].code, False
    name = ontology.entry(code).name
    question = f"Does this {noun} show {name[0].lower() + name[1:]}?"
    return question, [], Answer(text="True" if truth else "False", code=code)


def _single_choice(
    case: Case, ontology: Ontology, modality: Modality, n_options: int, rng: random.Random
) -> Built | None:
    present = [f.code for f in case.findings]
    code = _primary(case, rng)
    entry = ontology.entry(code)
    wrong = pick_distractors(ontology, [code], present, [modality], n_options - 1, rng)
    if len(wrong) < n_options - 1:
        return None
    options, letters = lay_out([entry.name], [w.name for w in wrong], rng)
    if entry.scale:
        question = f"What is the grade of diabetic retinopathy in this {MODALITY_NOUN[modality]}?"
    elif len(present) > 1:
        finding = FINDING_NOUN.get(modality, "finding")
        question = f"Which of the following {finding}s is present in this {MODALITY_NOUN[modality]}?"
    else:
        question = f"What is the most likely diagnosis for this {MODALITY_NOUN[modality]}?"
    return question, options, Answer(text=letters, code=code)


def _multiple_choice(
    case: Case, ontology: Ontology, modality: Modality, n_options: int, rng: random.Random
) -> Built | None:
    present = sorted(f.code for f in case.findings)
    noun = MODALITY_NOUN[modality]
    if len(present) == 1:
        return _graded_statements(ontology, present[0], noun, n_options, rng)
    correct = present[: max(1, n_options - 1)]
    rng.shuffle(correct)
    correct = correct[: rng.randint(2, min(len(correct), n_options - 1))]
    wrong = pick_distractors(ontology, correct, present, [modality], n_options - len(correct), rng)
    if len(correct) + len(wrong) < n_options:
        return None
    options, letters = lay_out([ontology.entry(c).name for c in correct], [w.name for w in wrong], rng)
    question = (
        f"Which of the following {FINDING_NOUN.get(modality, 'finding')}s are present in this {noun}? "
        "Select all that apply."
    )
    return question, options, Answer(text=letters, code=None)


def _graded_statements(ontology: Ontology, code: str, noun: str, n_options: int, rng: random.Random) -> Built:
    """Statements about an ordered scale ('at least moderate ...') whose truth follows from the grade."""
    scale = ontology.scale_of(code)
    assert scale is not None
    grade = scale.index(code)
    statements = [(f"{ontology.entry(scale[0]).name}", grade == 0)]
    for threshold in range(1, len(scale)):
        name = ontology.entry(scale[threshold]).name
        statements.append((f"{name[0].lower() + name[1:]} or worse", grade >= threshold))
    rng.shuffle(statements)
    chosen = statements[:n_options]
    if not any(truth for _, truth in chosen):
        chosen[-1] = next(s for s in statements if s[1])
    options, letters = lay_out([t for t, ok in chosen if ok], [t for t, ok in chosen if not ok], rng)
    question = f"Which of the following statements about this {noun} are correct? Select all that apply."
    return question, options, Answer(text=letters, code=None)


def _open(case: Case, ontology: Ontology, modality: Modality, n_options: int, rng: random.Random) -> Built | None:
    present = sorted(f.code for f in case.findings)
    noun = MODALITY_NOUN[modality]
    if len(present) == 1:
        entry = ontology.entry(present[0])
        if entry.scale:
            question = f"What is the grade of diabetic retinopathy in this {noun}? Name the grade."
        else:
            question = f"What is the most likely diagnosis for this {noun}?"
        return question, [], Answer(text=entry.name, aliases=list(entry.aliases), code=entry.code)
    primary = ontology.entry(present[0])
    aliases = [*primary.aliases]
    for code in present[1:]:
        other = ontology.entry(code)
        aliases += [other.name, *other.aliases]
    question = f"Name one abnormal {FINDING_NOUN.get(modality, 'finding')} visible in this {noun}."
    return question, [], Answer(text=primary.name, aliases=aliases, code=None)
