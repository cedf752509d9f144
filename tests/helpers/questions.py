"""Checks of a generated question against its case's findings: a grade question names its scale and offers
only its grades; a findings question names no scale and offers findings of the answer's kind."""

from __future__ import annotations

from retinal_reason_data.curation.filters import item_problem
from retinal_reason_data.ontology import Scale, default_ontology
from retinal_reason_data.recipe import FiltersSpec
from retinal_reason_data.schema import Item, QuestionType
from retinal_reason_data.tasks.basic import FINDING_CATEGORIES
from retinal_reason_data.tasks.options import LETTERS, nested_names

ONTOLOGY = default_ontology()
GRADED_NAMES = {entry.name for entry in ONTOLOGY.entries.values() if entry.scale}


def correct_options(item: Item) -> list[str]:
    return [item.options[LETTERS.index(letter)] for letter in item.answer.text.split(",")]


def scales_named(question: str) -> set[str]:
    return {key for key, scale in ONTOLOGY.scales.items() if scale.name.lower() in question.lower()}


def grade_names(scale: Scale) -> list[str]:
    return [ONTOLOGY.entry(code).name for code in scale.grades]


def check_choice_layout(item: Item) -> None:
    """No option equals another, and the answer's letters are among the options."""
    assert len(set(item.options)) == len(item.options) >= 2, item.options
    letters = item.answer.text.split(",")
    assert letters == sorted(set(letters)) and all(LETTERS.index(x) < len(item.options) for x in letters), item


def check_graded(item: Item, scale_key: str, code: str) -> None:
    """A question about a grade: it names its scale (and no other), and everything it offers is of that scale."""
    scale = ONTOLOGY.scales[scale_key]
    assert scales_named(item.question) == {scale_key}, item.question
    assert item_problem(item, FiltersSpec()) is None, f"the question states its answer: {item.question}"
    names = grade_names(scale)
    if item.question_type is QuestionType.SINGLE_CHOICE:
        check_choice_layout(item)
        assert set(item.options) <= set(names), item.options
        assert len(item.options) == min(4, len(names)) and correct_options(item) == [ONTOLOGY.entry(code).name]
    elif item.question_type is QuestionType.MULTIPLE_CHOICE:
        check_choice_layout(item)
        for statement in item.options:
            assert [n for n in names if n.lower() in statement.lower()], f"{statement!r} is not about {scale_key}"
        assert item.answer.code == code
    elif item.question_type is QuestionType.TRUE_FALSE:
        asked = item.answer.code
        assert asked in scale.grades and f'"{ONTOLOGY.entry(asked).name}"' in item.question, item.question
        assert item.answer.text == ("True" if asked == code else "False")
    else:
        assert not item.options and item.answer.text == ONTOLOGY.entry(code).name and item.answer.code == code


def check_findings(item: Item, codes: set[str], present: set[str]) -> None:
    """A question about findings that are not grades: no scale named, no grade offered, the answer's kind first."""
    assert scales_named(item.question) == set(), item.question
    assert item_problem(item, FiltersSpec()) is None, f"the question states its answer: {item.question}"
    if len(codes) == 1 and ONTOLOGY.entry(next(iter(codes))).category in FINDING_CATEGORIES:
        assert "diagnosis" not in item.question, f"a sign asked as a diagnosis: {item.question}"
    if item.question_type in (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE):
        check_choice_layout(item)
        correct = correct_options(item)
        for option in item.options:
            entry = ONTOLOGY.lookup(option)
            assert entry is not None and entry.scale is None, f"{option!r} offered for {sorted(codes)}"
            assert item.modality in entry.modalities
            assert (entry.code in codes) == (option in correct), (option, item)
            if option not in correct:
                assert entry.code not in present and not any(ONTOLOGY.same_concept(entry.code, c) for c in present)
                broader_or_narrower = [c for c in present if nested_names(entry.name, ONTOLOGY.entry(c).name)]
                assert not broader_or_narrower, f"{option!r} is also right for {broader_or_narrower}"
    elif item.question_type is QuestionType.TRUE_FALSE:
        asked = ONTOLOGY.entry(item.answer.code)
        assert asked.scale is None and (asked.code in codes) == (item.answer.text == "True")
        if item.answer.text == "False":  # a broader or narrower form of a present finding would be true
            assert not [c for c in present if nested_names(asked.name, ONTOLOGY.entry(c).name)], item.question
    else:
        accepted = {item.answer.text, *item.answer.aliases}
        assert item.answer.text in {ONTOLOGY.entry(c).name for c in codes}
        assert not accepted & GRADED_NAMES, accepted
