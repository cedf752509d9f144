"""Questions right for every scale and category: each ordered scale is asked in its own words with its own grades
as options, findings that are not grades never get a grade as an option, and a case graded on two scales gets a
question per scale. The walks cover every entry of the shipped ontology, in every modality it allows."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from retinal_reason_data.ontology import Entry, Ontology, default_ontology
from retinal_reason_data.recipe import BasicTasks
from retinal_reason_data.schema import Case, Finding, ImageRef, Item, Modality, Provenance, QuestionType, TaskKind
from retinal_reason_data.tasks.basic import basic_items, facets
from retinal_reason_data.tasks.options import nested_names
from retinal_reason_data.teacher.offline import draft
from tests.helpers.questions import check_findings, check_graded, correct_options, grade_names, scales_named

ONTOLOGY = default_ontology()
GRADED = [entry for entry in ONTOLOGY.entries.values() if entry.scale]
UNGRADED = [entry for entry in ONTOLOGY.entries.values() if not entry.scale]
SEEDS = range(3)


def _case(case_id: str, codes: list[str], modality: Modality = Modality.CFP) -> Case:
    image = ImageRef(path="/x.png", sha256="0" * 64, phash="0" * 64, width=10, height=10, modality=modality)
    return Case(
        case_id=case_id,
        source="test",
        patient_id="p-1",
        images=[image],
        findings=[Finding(code=c, raw_label=c) for c in codes],
        provenance=Provenance(file="f", row=1, licence="CC0"),
    )


def _items(case: Case, types: list[QuestionType] | None = None, seed: int = 0, options: int = 4) -> list[Item]:
    spec = BasicTasks(types=types or list(QuestionType), options=options)
    return list(basic_items(case, ONTOLOGY, spec, seed))


@pytest.mark.parametrize("entry", GRADED, ids=lambda e: e.code)
def test_every_grade_of_every_scale_is_asked_in_its_own_words(entry: Entry) -> None:
    for modality in entry.modalities:
        for question_type in QuestionType:
            if question_type is QuestionType.MULTIPLE_CHOICE and len(ONTOLOGY.scales[entry.scale].grades) < 3:
                assert not _items(_case("g", [entry.code], modality), [question_type]), "two grades: no statements"
                continue
            for seed in SEEDS:
                (item,) = _items(_case(f"g-{entry.code}", [entry.code], modality), [question_type], seed)
                assert item.question_type is question_type and item.modality is modality
                check_graded(item, entry.scale, entry.code)


@pytest.mark.parametrize("entry", UNGRADED, ids=lambda e: e.code)
def test_every_finding_that_is_not_a_grade_gets_options_of_its_kind(entry: Entry) -> None:
    for modality in entry.modalities:
        for question_type in (QuestionType.TRUE_FALSE, QuestionType.SINGLE_CHOICE, QuestionType.OPEN):
            for seed in SEEDS:
                items = _items(_case(f"f-{entry.code}", [entry.code], modality), [question_type], seed)
                for item in items:
                    check_findings(item, {entry.code}, {entry.code})


def test_distractors_come_from_the_answers_category_while_it_has_enough() -> None:
    for entry in UNGRADED:
        for modality in entry.modalities:
            same = [
                e
                for e in ONTOLOGY.candidates(modality, entry.category)
                if not e.scale
                and not ONTOLOGY.same_concept(e.code, entry.code)
                and not nested_names(e.name, entry.name)
            ]
            items = _items(_case(f"c-{entry.code}", [entry.code], modality), [QuestionType.SINGLE_CHOICE])
            for item in items:
                wrong = [ONTOLOGY.lookup(o) for o in item.options if o not in correct_options(item)]
                in_category = sum(w.category == entry.category for w in wrong)
                assert in_category == min(len(wrong), len(same)), (entry.code, modality, item.options)


def test_a_case_graded_on_two_scales_gets_a_question_per_scale() -> None:
    """IDRiD_004 (DR 4, DME risk 1) and a Messidor-2 exam (DR 4, referable DME): never a mixed question."""
    for codes in (["dr.proliferative", "dme.risk1"], ["dr.proliferative", "dme.not_referable"]):
        for question_type in QuestionType:
            for seed in SEEDS:
                items = _items(_case("idrid:train/IDRiD_004", codes), [question_type], seed)
                by_scale = {next(iter(scales_named(item.question))): item for item in items}
                expected = {
                    ONTOLOGY.entry(c).scale
                    for c in codes
                    if question_type is not QuestionType.MULTIPLE_CHOICE or len(ONTOLOGY.scale_of(c).grades) >= 3
                }
                assert set(by_scale) == expected and len({item.item_id for item in items}) == len(items)
                for scale_key, item in by_scale.items():
                    (code,) = [c for c in codes if ONTOLOGY.entry(c).scale == scale_key]
                    check_graded(item, scale_key, code)
                assert items == _items(_case("idrid:train/IDRiD_004", codes), [question_type], seed)


def test_grades_never_mix_into_a_question_about_other_findings() -> None:
    """An ODIR eye with a DR grade and other diagnoses: a DR question, and a findings question without grades."""
    codes = ["dr.moderate", "vasc.hypertensive", "lesion.drusen"]
    for question_type in QuestionType:
        for seed in SEEDS:
            items = _items(_case("odir:1_left", codes), [question_type], seed)
            graded = [i for i in items if scales_named(i.question)]
            others = [i for i in items if not scales_named(i.question)]
            assert len(graded) == 1 and len(others) == 1
            check_graded(graded[0], "icdr", "dr.moderate")
            check_findings(others[0], {"vasc.hypertensive", "lesion.drusen"}, set(codes))


def test_contradictory_grades_on_one_scale_ask_nothing_about_it() -> None:
    assert [f.scale_key for f in facets(_case("x", ["dr.mild", "dr.severe", "dme.none"]), ONTOLOGY)] == ["dme_risk"]


def test_a_scale_with_fewer_grades_than_options_offers_all_its_grades() -> None:
    (item,) = _items(_case("r", ["dme.referable"]), [QuestionType.SINGLE_CHOICE], options=4)
    assert sorted(item.options) == ["No referable diabetic macular oedema", "Referable diabetic macular oedema"]
    (item,) = _items(_case("d", ["dr.mild"]), [QuestionType.SINGLE_CHOICE], options=3)
    assert len(item.options) == 3 and set(item.options) <= set(grade_names(ONTOLOGY.scales["icdr"]))


def test_items_of_findings_only_are_those_asked_before_scales_had_facets() -> None:
    """A case without grades keeps its item ids and questions (a rebuild reuses its teacher replies)."""
    (item,) = _items(_case("o", ["oct.cnv"], Modality.OCT), [QuestionType.OPEN])
    assert item.question == "What is the most likely diagnosis for this OCT B-scan?"
    from retinal_reason_data.text import stable_hash

    assert item.item_id == stable_hash("o", TaskKind.BASIC, QuestionType.OPEN, item.question)


def test_the_offline_drafter_reasons_about_the_questions_scale_only() -> None:
    items = _items(_case("i", ["dr.proliferative", "dme.risk2"]), [QuestionType.OPEN])
    case = _case("i", ["dr.proliferative", "dme.risk2"])
    dme = next(item for item in items if "oedema" in item.question)
    dr = next(item for item in items if "retinopathy grade" in item.question)
    assert "macular centre" in draft(dme, case, ONTOLOGY, 1, 0.0, 0) and "neovascular" not in draft(
        dme, case, ONTOLOGY, 1, 0.0, 0
    )
    assert "neovascularisation" in draft(dr, case, ONTOLOGY, 1, 0.0, 0)
    wrong = {draft(dme, case, ONTOLOGY, attempt, 1.0, 0).split("<answer>")[1] for attempt in range(12)}
    assert wrong and {w.removesuffix("</answer>") for w in wrong} <= set(grade_names(ONTOLOGY.scales["dme_risk"]))


# --- the ontology refuses a scale it cannot word ------------------------------------------------------------------


def _raw_scales() -> dict[str, dict]:
    return {key: scale.model_dump() for key, scale in ONTOLOGY.scales.items()}


def test_a_scale_without_wording_is_refused_naming_it() -> None:
    scales = _raw_scales()
    scales["icdr"] = list(ONTOLOGY.scales["icdr"].grades)
    with pytest.raises(ValidationError, match="icdr without wording"):
        Ontology(entries=ONTOLOGY.entries, scales=scales)
    scales = _raw_scales()
    del scales["amd_severity"]["true_false"]
    with pytest.raises(ValidationError, match=r"amd_severity\.true_false"):
        Ontology(entries=ONTOLOGY.entries, scales=scales)


def test_a_stem_that_does_not_name_its_scale_or_names_another_is_refused() -> None:
    scales = _raw_scales()
    scales["dme_risk"]["question"] = "What is the grade of diabetic retinopathy in this {image}?"
    with pytest.raises(ValidationError, match="does not name the scale"):
        Ontology(entries=ONTOLOGY.entries, scales=scales)
    scales = _raw_scales()
    scales["dme_risk"]["open_question"] += " Not the diabetic retinopathy grade."
    with pytest.raises(ValidationError, match="dme_risk': open_question names scale 'icdr'"):
        Ontology(entries=ONTOLOGY.entries, scales=scales)
    scales = _raw_scales()
    scales["icdr"]["true_false"] = "Is the diabetic retinopathy grade of this {image} mild?"
    with pytest.raises(ValidationError, match=r"true_false .* must use exactly \{image\}, \{grade\}"):
        Ontology(entries=ONTOLOGY.entries, scales=scales)


def test_grades_and_entries_must_agree() -> None:
    with pytest.raises(ValidationError, match="entry 'dr.very_severe' names scale 'icdr', which does not list it"):
        ONTOLOGY.extend(
            [Entry(code="dr.very_severe", name="Very severe", modalities=[Modality.CFP], category="x", scale="icdr")]
        )
    with pytest.raises(ValidationError, match="names scale 'hypertension'"):
        ONTOLOGY.extend([Entry(code="h1", name="H1", modalities=[Modality.CFP], category="x", scale="hypertension")])
    swapped = {**ONTOLOGY.entries, "dr.mild": ONTOLOGY.entry("dr.mild").model_copy(update={"grade": 2})}
    with pytest.raises(ValidationError, match="lists 'dr.mild' as grade 1"):
        Ontology(entries=swapped, scales=ONTOLOGY.scales)


def test_grade_names_are_distinct_concepts() -> None:
    for key, scale in ONTOLOGY.scales.items():
        for a in scale.grades:
            for b in scale.grades:
                assert a == b or not ONTOLOGY.same_concept(a, b), (key, a, b)
