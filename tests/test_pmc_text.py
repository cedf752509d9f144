"""Figure panels and their modalities from captions; the rule-based clinical context of a case text."""

from __future__ import annotations

import pytest

from retinal_reason_data.ingest.casereports.clinical import extract_from_text, map_diagnosis, split_sentences
from retinal_reason_data.ingest.casereports.panels import classify, figure_modality, split_panels
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.schema import Modality

ONTOLOGY = default_ontology()


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("Colour fundus photograph of the right eye", Modality.CFP),
        ("Fundus fluorescein angiography, late phase", Modality.FFA),
        ("Fundus autofluorescence showing a ring", Modality.FAF),
        ("Indocyanine green angiography at 10 min", Modality.ICGA),
        ("OCT angiography of the deep capillary plexus", Modality.OCTA),
        ("Swept-source OCT through the fovea", Modality.OCT),
        ("Slit-lamp photograph of the anterior segment", Modality.SLIT_LAMP),
        ("Humphrey 24-2 visual field", Modality.VISUAL_FIELD),
        ("B-scan ultrasonography shows a mass", Modality.OTHER),
        ("MRI of the orbits", Modality.OTHER),
    ],
)
def test_caption_modality(caption: str, expected: Modality) -> None:
    assert classify(caption) is expected


def test_compound_captions_split_by_panel_letters() -> None:
    panels = split_panels(
        "Multimodal imaging. (a) Colour fundus photograph. (b, c) Fluorescein angiography, early and late (d) ICGA."
    )
    assert [(p.letters, p.modality) for p in panels] == [
        (("A",), Modality.CFP),
        (("B", "C"), Modality.FFA),
        (("D",), Modality.ICGA),
    ]
    ranged = split_panels("(A–C) Late-phase angiograms. (D) SD-OCT.")
    assert [p.letters for p in ranged] == [("A", "B", "C"), ("D",)]
    bare = split_panels("A: Fundus autofluorescence. B: OCT through the fovea.")
    assert [p.modality for p in bare] == [Modality.FAF, Modality.OCT]


def test_letters_after_their_noun_and_inherited_modalities() -> None:
    eyes = split_panels("Fundus photographs of the right (A) and left (B) eyes showing disc swelling.")
    assert [(p.letters, p.modality, p.named) for p in eyes] == [
        (("A",), Modality.CFP, True),
        (("B",), Modality.CFP, False),
    ]
    mixed = split_panels("Fundus photograph (A) and OCT (B) of the right eye.")
    assert [p.modality for p in mixed] == [Modality.CFP, Modality.OCT]
    single = split_panels("Late-phase fluorescein angiogram of the left eye.")
    assert len(single) == 1 and single[0].letters == () and figure_modality(single) is Modality.FFA


def test_sentences_do_not_break_at_abbreviations() -> None:
    text = "She was seen by Dr. Smith (Fig. 1). Visual acuity was 0.5 OD. The IOP was normal."
    assert split_sentences(text) == [
        "She was seen by Dr. Smith (Fig. 1).",
        "Visual acuity was 0.5 OD.",
        "The IOP was normal.",
    ]


CASE = (
    "A 6-month-old girl was referred for leukocoria. "
    "A 58-year-old man presented with a two-week history of blurred vision in the left eye. "
    "He had noticed distortion before the blur. "
    "He had a history of type 2 diabetes and was taking metformin. "
    "On examination, visual acuity was 20/80 in the left eye. "
    "Intraocular pressure was 14 mmHg. "
    "Optical coherence tomography showed subretinal fluid (Figure 1). "
    "A diagnosis of central serous chorioretinopathy (CSC) in the left eye was made. "
    "He was treated with eplerenone."
)


def test_rule_based_extraction_of_a_case_text() -> None:
    found = extract_from_text(CASE.split(". ", 1)[1], "A case report", ONTOLOGY)
    assert (found.age, found.sex) == (58, "M")
    assert (
        found.chief_complaint
        == "A 58-year-old man presented with a two-week history of blurred vision in the left eye."
    )
    assert found.history_of_present_illness == "He had noticed distortion before the blur."
    assert found.past_history == "He had a history of type 2 diabetes and was taking metformin."
    assert (
        found.examination
        == "On examination, visual acuity was 20/80 in the left eye. Intraocular pressure was 14 mmHg."
    )
    assert found.final_diagnosis == "central serous chorioretinopathy" and found.diagnosis_aliases == ["CSC"]
    assert found.diagnosis_source == "case"


def test_a_title_alone_is_never_the_diagnosis_and_names_map_to_the_ontology() -> None:
    found = extract_from_text(
        "A 30-year-old woman presented with floaters.", "Birdshot chorioretinopathy in a woman", ONTOLOGY
    )
    assert found.final_diagnosis is None and "is not used alone" in (found.diagnosis_refusal or "")
    stated = extract_from_text(
        "A 30-year-old woman presented with floaters. She was diagnosed with birdshot chorioretinopathy.",
        "Birdshot chorioretinopathy in a woman",
        ONTOLOGY,
    )
    assert stated.final_diagnosis == "birdshot chorioretinopathy" and stated.diagnosis_source == "case"
    assert extract_from_text("A 6-month-old boy presented with leukocoria.", "x", ONTOLOGY).age == 0
    phrase, entry = map_diagnosis("bilateral Vogt-Koyanagi-Harada disease", ONTOLOGY)
    assert entry is not None and entry.code == "vkh"
    assert map_diagnosis("acute macular neuroretinopathy", ONTOLOGY)[1] is None
    past_only = extract_from_text(
        "A 70-year-old man was diagnosed with glaucoma 10 years ago and presented with pain.", "", ONTOLOGY
    )
    assert past_only.final_diagnosis is None
