"""Basic questions from an image's labels: true/false, single choice, multiple choice, open.

A case's labels are split into facets: one per ordered scale it is graded on (DR grade, DME risk, AMD stage...)
and one for its other findings. Each facet gets its own question, worded as its scale says (the ontology's
`scales`), with options of its own kind only: the grades of that scale, or findings that are not grades.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from retinal_reason_data.ontology import Ontology, Scale
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
# Categories of signs and lesions, not diagnoses: one of them alone is asked as a finding ("Which angiographic
# finding is seen ...?"), never as "the most likely diagnosis" (a leakage pattern is not a diagnosis).
FINDING_CATEGORIES = frozenset({"ffa_pattern", "oct_biomarker", "dr_lesion"})


def _one_stem(entry_category: str, modality: Modality, open_question: bool) -> str:
    """The stem of a question about a case's one label: a diagnosis, or a finding when the label is a sign."""
    noun = MODALITY_NOUN[modality]
    if entry_category in FINDING_CATEGORIES:
        finding = FINDING_NOUN.get(modality, "finding")
        return (
            f"Name the main {finding} visible in this {noun}."
            if open_question
            else (f"Which {finding} is seen in this {noun}?")
        )
    return f"What is the most likely diagnosis for this {noun}?"


@dataclass(frozen=True)
class Facet:
    """What one question is about: a grade on one scale (`scale_key` set), or the case's findings that are not
    grades. `codes` are the facet's codes, sorted; `present` every code of the case (never a distractor)."""

    codes: tuple[str, ...]
    present: tuple[str, ...]
    scale_key: str | None = None

    @property
    def seed_parts(self) -> tuple[str, ...]:
        """What sets this facet's seeds and item id apart from the case's other facets (nothing for the
        findings facet, whose questions are those the case had before scales had facets of their own)."""
        return (self.scale_key,) if self.scale_key else ()


def facets(case: Case, ontology: Ontology) -> list[Facet]:
    """The case's scales in the ontology's order, then its other findings. A scale on which the case has two
    different grades (contradictory labels) gets no question."""
    present = tuple(sorted({f.code for f in case.findings}))
    graded: dict[str, list[str]] = {}
    ungraded: list[str] = []
    for code in present:
        scale_key = ontology.entry(code).scale
        if scale_key is None:
            ungraded.append(code)
        else:
            graded.setdefault(scale_key, []).append(code)
    found = [Facet((graded[key][0],), present, key) for key in ontology.scales if len(graded.get(key, ())) == 1]
    if ungraded:
        found.append(Facet(tuple(ungraded), present))
    return found


def basic_items(case: Case, ontology: Ontology, spec: BasicTasks, seed: int) -> Iterator[Item]:
    """A question per facet of the case (see `facets`), each of a type chosen deterministically among those
    that fit it."""
    if not case.findings or not case.images or case.context.chief_complaint:
        return
    for facet in facets(case, ontology):
        item = _facet_item(case, facet, ontology, spec, seed)
        if item is not None:
            yield item


def _facet_item(case: Case, facet: Facet, ontology: Ontology, spec: BasicTasks, seed: int) -> Item | None:
    modality = case.images[0].modality
    scale = ontology.scales[facet.scale_key] if facet.scale_key else None
    rng = seeded_rng(seed, case.case_id, "basic", *facet.seed_parts)
    fitting = [qt for qt in spec.types if _fits(qt, facet, scale)]
    if not fitting:
        return None
    question_type = fitting[int(stable_hash(seed, case.case_id, "type", *facet.seed_parts), 16) % len(fitting)]
    noun = MODALITY_NOUN[modality]
    if scale is not None:
        built = GRADED[question_type](ontology, scale, facet.codes[0], noun, spec.options, rng)
    else:
        built = FINDINGS[question_type](ontology, facet, modality, spec.options, rng)
    if built is None:
        return None
    question, options, answer = built
    return Item(
        item_id=stable_hash(case.case_id, TaskKind.BASIC, *facet.seed_parts, question_type, question, *options),
        case_id=case.case_id,
        task=TaskKind.BASIC,
        question_type=question_type,
        modality=modality,
        question=question,
        options=options,
        answer=answer,
        image_shas=[image.sha256 for image in case.images],
    )


def _fits(question_type: QuestionType, facet: Facet, scale: Scale | None) -> bool:
    if question_type is not QuestionType.MULTIPLE_CHOICE:
        return True
    if scale is not None:
        return len(scale.grades) >= 3  # on two grades the statements are the two grades: a single choice
    return len(facet.codes) >= 2


# --- a grade on one scale: every option, wrong statement and alternative is a grade of that scale ---------------


def _graded_true_false(
    ontology: Ontology, scale: Scale, code: str, noun: str, n_options: int, rng: random.Random
) -> Built:
    if rng.random() < 0.5:
        asked, truth = code, True
    else:
        asked, truth = rng.choice([g for g in scale.grades if g != code]), False
    question = scale.true_false.format(image=noun, grade=ontology.entry(asked).name)
    return question, [], Answer(text="True" if truth else "False", code=asked)


def _graded_single_choice(
    ontology: Ontology, scale: Scale, code: str, noun: str, n_options: int, rng: random.Random
) -> Built:
    """The grade among other grades of its scale (all of them when the scale has no more than `n_options`)."""
    others = [g for g in scale.grades if g != code]
    rng.shuffle(others)
    wrong = others[: max(1, n_options - 1)]
    options, letters = lay_out([ontology.entry(code).name], [ontology.entry(g).name for g in wrong], rng)
    return scale.question.format(image=noun), options, Answer(text=letters, code=code)


def _graded_statements(
    ontology: Ontology, scale: Scale, code: str, noun: str, n_options: int, rng: random.Random
) -> Built:
    """Statements about the grade whose truth follows from it: the lowest grade, 'X or worse' for the grades
    between, and the highest grade."""
    grade = scale.index(code)
    top = len(scale.grades) - 1
    statements = [(ontology.entry(scale.grades[0]).name, grade == 0)]
    for threshold in range(1, top):
        at_least = scale.at_least.format(grade=ontology.entry(scale.grades[threshold]).name)
        statements.append((at_least, grade >= threshold))
    statements.append((ontology.entry(scale.grades[top]).name, grade == top))
    rng.shuffle(statements)
    chosen = statements[:n_options]
    if not any(truth for _, truth in chosen):
        chosen[-1] = next(s for s in statements if s[1])
    options, letters = lay_out([t for t, ok in chosen if ok], [t for t, ok in chosen if not ok], rng)
    return scale.statements.format(image=noun), options, Answer(text=letters, code=code)


def _graded_open(ontology: Ontology, scale: Scale, code: str, noun: str, n_options: int, rng: random.Random) -> Built:
    entry = ontology.entry(code)
    return scale.open_question.format(image=noun), [], Answer(text=entry.name, aliases=list(entry.aliases), code=code)


GRADED = {
    QuestionType.TRUE_FALSE: _graded_true_false,
    QuestionType.SINGLE_CHOICE: _graded_single_choice,
    QuestionType.MULTIPLE_CHOICE: _graded_statements,
    QuestionType.OPEN: _graded_open,
}


# --- findings that are not grades: distractors of the answer's category, never a grade ---------------------------


def _primary(codes: Sequence[str], rng: random.Random) -> str:
    return sorted(codes)[rng.randrange(len(codes))]


def _true_false(
    ontology: Ontology, facet: Facet, modality: Modality, n_options: int, rng: random.Random
) -> Built | None:
    noun = MODALITY_NOUN[modality]
    if rng.random() < 0.5:
        code, truth = _primary(facet.codes, rng), True
    else:
        wrong = pick_distractors(ontology, facet.codes, facet.present, [modality], 1, rng)
        if not wrong:
            return None
        code, truth = wrong[0].code, False
    name = ontology.entry(code).name
    question = f"Does this {noun} show {name[0].lower() + name[1:]}?"
    return question, [], Answer(text="True" if truth else "False", code=code)


def _single_choice(
    ontology: Ontology, facet: Facet, modality: Modality, n_options: int, rng: random.Random
) -> Built | None:
    code = _primary(facet.codes, rng)
    wrong = pick_distractors(ontology, [code], facet.present, [modality], n_options - 1, rng)
    if len(wrong) < n_options - 1:
        return None
    options, letters = lay_out([ontology.entry(code).name], [w.name for w in wrong], rng)
    noun = MODALITY_NOUN[modality]
    if len(facet.codes) > 1:
        question = f"Which of the following {FINDING_NOUN.get(modality, 'finding')}s is present in this {noun}?"
    else:
        question = _one_stem(ontology.entry(code).category, modality, open_question=False)
    return question, options, Answer(text=letters, code=code)


def _multiple_choice(
    ontology: Ontology, facet: Facet, modality: Modality, n_options: int, rng: random.Random
) -> Built | None:
    correct = list(facet.codes[: max(1, n_options - 1)])
    rng.shuffle(correct)
    correct = correct[: rng.randint(2, min(len(correct), n_options - 1))]
    wrong = pick_distractors(ontology, correct, facet.present, [modality], n_options - len(correct), rng)
    if len(correct) + len(wrong) < n_options:
        return None
    options, letters = lay_out([ontology.entry(c).name for c in correct], [w.name for w in wrong], rng)
    question = (
        f"Which of the following {FINDING_NOUN.get(modality, 'finding')}s are present in this "
        f"{MODALITY_NOUN[modality]}? Select all that apply."
    )
    return question, options, Answer(text=letters, code=None)


def _open(ontology: Ontology, facet: Facet, modality: Modality, n_options: int, rng: random.Random) -> Built | None:
    noun = MODALITY_NOUN[modality]
    if len(facet.codes) == 1:
        entry = ontology.entry(facet.codes[0])
        question = _one_stem(entry.category, modality, open_question=True)
        return question, [], Answer(text=entry.name, aliases=list(entry.aliases), code=entry.code)
    primary = ontology.entry(facet.codes[0])
    aliases = [*primary.aliases]
    for code in facet.codes[1:]:
        other = ontology.entry(code)
        aliases += [other.name, *other.aliases]
    question = f"Name one abnormal {FINDING_NOUN.get(modality, 'finding')} visible in this {noun}."
    return question, [], Answer(text=primary.name, aliases=aliases, code=None)


FINDINGS = {
    QuestionType.TRUE_FALSE: _true_false,
    QuestionType.SINGLE_CHOICE: _single_choice,
    QuestionType.MULTIPLE_CHOICE: _multiple_choice,
    QuestionType.OPEN: _open,
}
