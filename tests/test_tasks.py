"""Question builders: every type, sensible distractors, stable ids, leak-free vignettes."""

from __future__ import annotations

from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.recipe import BasicTasks, ComplexTasks
from retinal_reason_data.schema import (
    Case,
    ClinicalContext,
    Finding,
    ImageRef,
    Modality,
    Provenance,
    QuestionType,
)
from retinal_reason_data.tasks.basic import basic_items
from retinal_reason_data.tasks.complex import complex_items, vignette
from retinal_reason_data.tasks.options import LETTERS

ONTOLOGY = default_ontology()


def _case(case_id: str, codes: list[str], modality: Modality = Modality.CFP, **context: object) -> Case:
    return Case(
        case_id=case_id,
        source="test",
        patient_id="p-1",
        images=[
            ImageRef(
                path="/x.png",
                sha256="0" * 64,
                phash="0" * 64,
                width=10,
                height=10,
                modality=modality,
                caption=context.pop("caption", None),
            )
        ],  # type: ignore[arg-type]
        findings=[Finding(code=c, raw_label=c) for c in codes],
        context=ClinicalContext(**context),  # type: ignore[arg-type]
        provenance=Provenance(file="f", row=1, licence="CC0"),
    )


def _items_of(question_type: QuestionType, case: Case) -> list:
    return list(basic_items(case, ONTOLOGY, BasicTasks(types=[question_type]), seed=0))


def test_single_choice_distractors_share_modality_and_are_not_synonyms_or_present() -> None:
    for index in range(30):
        case = _case(f"c{index}", ["oct.dme", "oct.srf"], Modality.OCT)
        (item,) = _items_of(QuestionType.SINGLE_CHOICE, case)
        assert len(item.options) == 4 and len(set(item.options)) == 4
        correct = [item.options[LETTERS.index(letter)] for letter in item.answer.text.split(",")]
        assert len(correct) == 1
        for option in item.options:
            entry = ONTOLOGY.lookup(option)
            assert entry is not None and Modality.OCT in entry.modalities
            if option not in correct:
                assert entry.code not in {"oct.dme", "oct.srf"}
                assert not ONTOLOGY.same_concept(entry.code, "oct.dme")


def test_multiple_choice_from_several_labels_has_several_correct_options() -> None:
    case = _case("m", ["ffa.leakage", "ffa.microaneurysm", "ffa.non_perfusion"], Modality.FFA)
    (item,) = _items_of(QuestionType.MULTIPLE_CHOICE, case)
    letters = item.answer.text.split(",")
    assert len(letters) >= 2 and letters == sorted(letters)
    chosen = {ONTOLOGY.lookup(item.options[LETTERS.index(x)]).code for x in letters}
    assert chosen <= {"ffa.leakage", "ffa.microaneurysm", "ffa.non_perfusion"}


def test_multiple_choice_on_a_graded_scale_follows_the_grade() -> None:
    case = _case("g", ["dr.severe"])
    (item,) = _items_of(QuestionType.MULTIPLE_CHOICE, case)
    for index, option in enumerate(item.options):
        expected = ("or worse" in option and not option.startswith("proliferative")) and "No diabetic" not in option
        assert (LETTERS[index] in item.answer.text.split(",")) == expected, option


def test_true_false_and_open() -> None:
    answers = {
        item.answer.text for i in range(20) for item in _items_of(QuestionType.TRUE_FALSE, _case(f"t{i}", ["dr.mild"]))
    }
    assert answers == {"True", "False"}
    (item,) = _items_of(QuestionType.OPEN, _case("o", ["oct.cnv"], Modality.OCT))
    assert item.answer.text == "Choroidal neovascularisation" and "CNV" in item.answer.aliases
    assert not item.options


def test_items_are_deterministic() -> None:
    case = _case("d", ["dr.moderate"])
    first = list(basic_items(case, ONTOLOGY, BasicTasks(), seed=3))
    assert first == list(basic_items(case, ONTOLOGY, BasicTasks(), seed=3))


def test_complex_items_hide_the_diagnosis_in_captions() -> None:
    case = _case(
        "r",
        ["csc"],
        Modality.OCT,
        chief_complaint="A 40-year-old man presented with blurred vision.",
        history="Steroid use.",
        diagnosis="Central serous chorioretinopathy",
        caption="OCT showing subretinal fluid. Typical of CSC.",
    )
    items = list(complex_items(case, ONTOLOGY, ComplexTasks(), seed=0))
    assert {i.question_type for i in items} == {QuestionType.OPEN, QuestionType.SINGLE_CHOICE}
    for item in items:
        assert "CSC" not in item.question and "serous chorioretinopathy" not in item.question.lower()
        assert item.captions == ["OCT showing subretinal fluid."]
    open_item = next(i for i in items if i.question_type is QuestionType.OPEN)
    assert open_item.answer.text == "Central serous chorioretinopathy" and "CSCR" in open_item.answer.aliases


def test_a_vignette_that_names_the_diagnosis_is_refused() -> None:
    import pytest

    from retinal_reason_data.tasks.complex import LeakError, diagnosis_terms

    case = _case(
        "l",
        ["vasc.crao"],
        chief_complaint="A man with known CRAO presented.",
        diagnosis="Central retinal artery occlusion",
    )
    with pytest.raises(LeakError):
        vignette(case, diagnosis_terms(case, ONTOLOGY))
