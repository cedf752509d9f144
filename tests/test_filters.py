"""Trace, item and image filters: each reason fires on what it names and not on good material."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter

from retinal_reason_data.curation.filters import image_problem, item_problem, trace_problem
from retinal_reason_data.curation.trace_checks import english_ratio
from retinal_reason_data.ingest.imaging import fingerprint
from retinal_reason_data.phantoms.images import fundus_photo, oct_bscan
from retinal_reason_data.recipe import FiltersSpec, ImageFilters
from retinal_reason_data.schema import Answer, Item, Modality, QuestionType, TaskKind

SPEC = FiltersSpec()
GOOD_THINK = (
    "Step 1: This is a colour fundus photograph of the posterior pole.\n"
    "Step 2: There are dot and blot haemorrhages with hard exudates in all quadrants, and venous beading.\n"
    "Step 3: These findings meet the 4-2-1 rule, which defines severe non-proliferative disease.\n"
    "Step 4: Therefore the answer is B."
)


def _trace(think: str = GOOD_THINK, answer: str = "B") -> str:
    return f"<think>\n{think}\n</think>\n<answer>{answer}</answer>"


def _item(question: str, answer: str, kind: QuestionType = QuestionType.OPEN, aliases: list[str] | None = None) -> Item:
    return Item(
        item_id="i1",
        case_id="c1",
        task=TaskKind.COMPLEX,
        question_type=kind,
        modality=Modality.CFP,
        question=question,
        answer=Answer(text=answer, aliases=aliases or []),
        image_shas=["0" * 64],
    )


def test_a_good_trace_passes() -> None:
    assert trace_problem(_trace(), SPEC) is None
    terse = "Findings: microaneurysms, blot haemorrhages, hard exudates, cotton wool spots.\nGrade: moderate NPDR."
    assert trace_problem(_trace(terse, "Moderate NPDR"), SPEC) is None


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("<answer>B</answer>", "malformed_tags"),
        ("<think>a</think><think>b</think><answer>B</answer>", "malformed_tags"),
        (_trace("Short."), "think_too_short"),
        (_trace(GOOD_THINK * 60), "think_too_long"),
        (_trace(answer="B. " + "Because of many reasons " * 30), "answer_too_long"),
        (_trace("\n".join(["The disc looks normal."] * 8)), "repetitive"),
        (_trace("the vessels are tortuous and " * 40), "repetitive"),
        (
            _trace("这是一张彩色眼底照片。可见视网膜出血和硬性渗出，符合重度非增殖性糖尿病视网膜病变。因此答案是B。"),
            "non_english",
        ),
        (
            _trace(
                "Se observa una fotografía del fondo de ojo con hemorragias en los cuatro cuadrantes y exudados "
                "duros, lo que es compatible con la retinopatía diabética severa. Por lo tanto la respuesta es B."
            ),
            "non_english",
        ),
        (_trace("I'm sorry, but I cannot provide a medical diagnosis from this image. " + GOOD_THINK), "refusal"),
        (_trace(GOOD_THINK + "\nPlease consult an ophthalmologist for a definitive assessment."), "refusal"),
        (
            _trace(
                "I'm not sure what this shows. It is difficult to say whether these are haemorrhages. " + GOOD_THINK
            ),
            "hedging",
        ),
        (_trace(GOOD_THINK + "\nSince the given answer is B, the features must fit severe NPDR."), "given_answer"),
        (_trace("I was told the answer is B, so I will explain why. " + GOOD_THINK), "given_answer"),
        (_trace("According to the provided answer key, B is right. " + GOOD_THINK), "given_answer"),
    ],
)
def test_each_trace_reason(response: str, reason: str) -> None:
    assert trace_problem(response, SPEC) == reason


def test_thresholds_come_from_the_recipe() -> None:
    hedged = _trace("It is hard to say for certain, but " + GOOD_THINK)
    assert trace_problem(hedged, SPEC) is None  # one hedge is allowed by default
    assert trace_problem(hedged, FiltersSpec(max_hedges=0)) == "hedging"
    refusing = _trace(GOOD_THINK + "\nConsult a doctor.")
    assert trace_problem(refusing, FiltersSpec(refusals=False)) is None
    assert trace_problem(_trace("Short."), FiltersSpec(min_think_chars=3)) is None


def test_english_ratio() -> None:
    assert english_ratio(GOOD_THINK) == pytest.approx(1.0)
    assert english_ratio("眼底照片显示出血") == 0.0
    assert english_ratio("Le fond d'oeil montre des hémorragies et des exsudats dans les quatre quadrants.") < 0.85


def test_answer_in_question() -> None:
    leaky = _item(
        "A 60-year-old with central retinal vein occlusion. What is the diagnosis?",
        "CRVO",
        aliases=["central retinal vein occlusion"],
    )
    assert item_problem(leaky, SPEC) == "answer_in_question"
    fine = _item("A 60-year-old with sudden painless loss of vision. What is the diagnosis?", "CRVO")
    assert item_problem(fine, SPEC) is None
    choice = _item("Which of these is central retinal vein occlusion?", "A", QuestionType.SINGLE_CHOICE)
    assert item_problem(choice, SPEC) is None  # options name answers by design
    assert item_problem(leaky, FiltersSpec(answer_in_question=False)) is None


@pytest.fixture(scope="module")
def photographs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("quality")
    photo = fundus_photo(31, "right", ["dr.mild"], image_seed=3, size=448)
    images = {
        "good": photo,
        "dark": ImageEnhance.Brightness(photo).enhance(0.25),
        "overexposed": ImageEnhance.Brightness(photo).enhance(2.5),
        # the gate, fitted on graders' labels, lets a blur of 3 px on this 448 px frame pass (real photographs are
        # that soft); one of 6 px (about 1/50 of the field's diameter) hides the small vessels
        "blurred": photo.filter(ImageFilter.GaussianBlur(6)),
        "blank": Image.new("RGB", (448, 448), (90, 40, 20)),
        "no_field": Image.new("RGB", (448, 448), (0, 0, 0)),
        "oct": oct_bscan(5, "right", ["oct.cnv"], size=(384, 288)),
    }
    images["no_field"].paste((200, 90, 40), (200, 200, 240, 240))  # a lit patch, no fundus
    paths = {}
    for name, image in images.items():
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    return paths


def test_ungradable_photographs_by_measure(photographs: dict[str, Path]) -> None:
    spec = ImageFilters()
    expected = {
        "good": None,
        "dark": "image_too_dark",
        "overexposed": "image_overexposed",
        "blank": "image_blank",
        "no_field": "image_no_field",
    }
    for name, reason in expected.items():
        assert image_problem(fingerprint(photographs[name], Modality.CFP), None, spec) == reason, name
    # the gate names a blur by the measure that weighed most: fine detail (blurred) or the vessels lost (hazy)
    assert image_problem(fingerprint(photographs["blurred"], Modality.CFP), None, spec) in (
        "image_blurred",
        "image_hazy",
    )
    oct_ref = fingerprint(photographs["oct"], Modality.OCT)
    assert image_problem(oct_ref, None, spec) is None  # the photograph filters apply to CFP only
    assert image_problem(oct_ref, None, ImageFilters(enabled=False)) is None


def test_collection_gradability_labels_are_honoured(photographs: dict[str, Path]) -> None:
    spec = ImageFilters()
    good, dark = (fingerprint(photographs[name], Modality.CFP) for name in ("good", "dark"))
    assert image_problem(good, False, spec) == "ungradable_label"
    assert image_problem(dark, True, spec) is None  # the graders saw it and said gradable
    assert image_problem(dark, True, ImageFilters(trust_source_labels=False)) == "image_too_dark"
