"""Case-report answers that are true: small JATS reproductions of what went wrong on real PMC articles (a title
fragment as the answer, a condition the text rules out, an earlier misdiagnosis, a bare abbreviation, typographic
hyphens, presentations not found, vignettes that carry the treatment and the pathology)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from retinal_reason_data.ingest.casereports.clinical import case_sections, extract, vignette_parts
from retinal_reason_data.ingest.casereports.diagnosis import read_diagnosis, ruled_out_phrases
from retinal_reason_data.ingest.casereports.jats import Article, read_articles
from retinal_reason_data.ingest.casereports.sentences import abbreviation_definitions
from retinal_reason_data.ingest.sources.base import RawCase
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.schema import Modality, Quarantine

ONTOLOGY = default_ontology()


def jats(
    title: str,
    case: list[str],
    abstract: str = "",
    discussion: list[str] = (),
    conclusion: list[str] = (),
    keywords: list[str] = (),
    introduction: list[str] = (),
    caption: str = "Colour fundus photograph of the right eye.",
) -> str:
    """A minimal PMC article: title, keywords, abstract, introduction, case with one cited figure, discussion,
    conclusion (paragraphs as given, figure cited from the first case paragraph)."""

    def paragraphs(items: list[str]) -> str:
        return "".join(f"<p>{text}</p>" for text in items)

    cited = [case[0] + ' (<xref ref-type="fig" rid="F1">Figure 1</xref>).', *case[1:]] if case else []
    kwds = "".join(f"<kwd>{k}</kwd>" for k in keywords)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><article xmlns:xlink="http://www.w3.org/1999/xlink" '
        'article-type="case-report"><front><journal-meta><journal-title>Case Reports</journal-title></journal-meta>'
        '<article-meta><article-id pub-id-type="pmc">9000001</article-id>'
        f"<title-group><article-title>{title}</article-title></title-group>"
        '<permissions><license xlink:href="https://creativecommons.org/licenses/by/4.0/"/></permissions>'
        f"<abstract><p>{abstract}</p></abstract><kwd-group>{kwds}</kwd-group></article-meta></front><body>"
        f"<sec><title>Introduction</title>{paragraphs(introduction)}</sec>"
        f"<sec><title>Case presentation</title>{paragraphs(cited)}</sec>"
        f"<sec><title>Discussion</title>{paragraphs(discussion)}</sec>"
        f"<sec><title>Conclusion</title>{paragraphs(conclusion)}</sec>"
        f'<fig id="F1"><label>Figure 1</label><caption><p>{caption}</p></caption>'
        '<graphic xlink:href="fig1"/></fig></body></article>'
    )


def read(xml: str) -> Article:
    (article,) = read_articles(io.BytesIO(xml.encode("utf-8")), "test.nxml")
    return article


def extracted(xml: str):  # noqa: ANN201 - Extracted
    article = read(xml)
    return extract(article, case_sections(article)[0], ONTOLOGY)


def test_a_title_fragment_is_never_the_answer() -> None:
    title = "Endoscopic versus Surgical Intervention for Jejunal Bezoar: A Case Report"
    case = ["A 62-year-old man presented to the emergency department with abdominal pain and vomiting."]
    silent = extracted(jats(title, case))
    assert silent.final_diagnosis is None
    assert "no explicit diagnostic statement" in (silent.diagnosis_refusal or "")
    stated = extracted(jats(title, [*case, "Computed tomography revealed an obstructing mass; a diagnosis of "
                                    "jejunal bezoar was made."]))  # fmt: skip
    assert stated.final_diagnosis == "jejunal bezoar"


def test_what_the_text_rules_out_is_never_the_answer() -> None:
    case = [
        "A 3-year-old boy was referred for evaluation of jaundice and pruritus.",
        "He did not meet the diagnostic criteria for HI.",
        "A diagnosis of HI was considered but excluded.",
    ]
    found = extracted(jats("Cholestasis in a child", case, keywords=["cholestasis"]))
    assert found.final_diagnosis is None  # 'HI' is ruled out, nothing else is stated
    article = read(jats("Cholestasis in a child", case))
    assert "HI" in ruled_out_phrases([s.text() for s in article.body])
    negative = extracted(jats("A child", ["A 4-year-old girl presented with fever.", "Serology was negative for "
                                          "toxoplasmosis.", "Toxoplasmosis was ruled out."]))  # fmt: skip
    assert negative.final_diagnosis is None


def test_two_diagnoses_in_one_statement_are_not_one_answer() -> None:
    case = [
        "A 3-year-old boy was referred for evaluation of jaundice.",
        "Genetic testing led to a final diagnosis of HSD3B7 deficiency and PNH.",
    ]
    found = extracted(jats("A rare association", case))
    assert found.final_diagnosis is None and "several diagnoses" in (found.diagnosis_refusal or "")


def test_an_earlier_misdiagnosis_is_never_the_answer() -> None:
    case = [
        "A 9-year-old boy presented with chronic diarrhoea and weight loss.",
        "He was initially diagnosed with celiac disease and started on a gluten-free diet without improvement.",
        "Duodenal biopsy showed villous atrophy with apoptotic crypt cells.",
        "A diagnosis of autoimmune enteropathy was made.",
    ]
    found = extracted(jats("Refractory diarrhoea in a child", case))
    assert found.final_diagnosis == "autoimmune enteropathy"
    # the misdiagnosis stated alone in the case, the true diagnosis only in the conclusion
    other = [
        "A 9-year-old boy presented with chronic diarrhoea.",
        "He was diagnosed with celiac disease at another hospital.",
    ]
    misled = extracted(
        jats(
            "Autoimmune enteropathy misdiagnosed as celiac disease",
            other,
            conclusion=[
                "Our patient was misdiagnosed as celiac disease for two years; he was finally diagnosed "
                "with autoimmune enteropathy."
            ],  # fmt: skip
        )
    )
    assert misled.final_diagnosis == "autoimmune enteropathy" and misled.diagnosis_source == "conclusion"


def test_a_bare_abbreviation_is_expanded_from_the_articles_own_definition() -> None:
    introduction = ["Pulmonary hypertension syndrome (PHS) is a metabolic disorder of fast-growing broilers."]
    case = ["A 6-week-old broiler was presented with abdominal distension.", "The bird was diagnosed with PHS."]
    found = extracted(jats("Ascites in a broiler flock", case, introduction=introduction))
    assert found.final_diagnosis == "Pulmonary hypertension syndrome" and found.diagnosis_aliases == ["PHS"]
    undefined = extracted(jats("Ascites in a broiler flock", case))
    assert undefined.final_diagnosis is None and "not defined" in (undefined.diagnosis_refusal or "")
    assert abbreviation_definitions("Vogt-Koyanagi-Harada (VKH) disease and visual acuity (VA), (n = 3)") == {
        "VKH": "Vogt-Koyanagi-Harada",
        "VA": "visual acuity",
    }


def test_ophthalmic_statements_map_to_the_ontology_with_their_short_forms() -> None:
    case = [
        "A 45-year-old man presented with blurred vision in the right eye for 2 weeks.",
        "Visual acuity was 20/40.",
        "Fluorescein angiography showed a smokestack leak (Figure 2).",
        "He was diagnosed with central serous chorioretinopathy (CSC).",
    ]
    found = extracted(jats("Chorioretinopathy after corticosteroids", case, keywords=["CSC"]))
    assert found.final_diagnosis == "central serous chorioretinopathy" and found.diagnosis_aliases == ["CSC"]
    assert found.chief_complaint and "smokestack" not in (found.examination or "")


def test_typographic_hyphens_and_spaces_give_the_age() -> None:
    case = ["A 7\u2010year\u2010old girl was referred to our clinic for evaluation of reduced vision."]
    found = extracted(jats("x", [*case, "She was diagnosed with Stargardt disease."]))
    assert (found.age, found.sex) == (7, "F")
    assert vignette_parts("A 54\u00a0year\u2011old man presented with floaters.").age == 54
    assert vignette_parts("A seven-year-old boy presented with a squint.").age == 7


@pytest.mark.parametrize(
    "opening",
    [
        "A 41-year-old woman with a history of migraine presented to our clinic with blurred vision.",
        "A 41-year-old woman complaining of blurred vision for 3 days attended the eye casualty.",
        "A 41-year-old woman was referred for assessment of blurred vision.",
        "A 41-year-old woman with a 2-week history of blurred vision came to our department.",
        "A 41-year-old woman, known to have type 2 diabetes diagnosed 10 years ago, presented with blurred vision.",
        "Our patient is a 41-year-old woman who noticed blurred vision in the left eye on waking.",
    ],
)
def test_the_presentation_is_found_in_real_phrasings(opening: str) -> None:
    text = f"The patient gave written consent. {opening} Visual acuity was 20/60 in the left eye."
    parts = vignette_parts(text)
    assert parts.chief_complaint == opening and (parts.age, parts.sex) == (41, "F")
    assert parts.examination == "Visual acuity was 20/60 in the left eye."


def test_the_vignette_stops_before_treatment_pathology_and_outcome() -> None:
    text = (
        "A 62-year-old man presented with abdominal pain and vomiting for 3 days. "
        "He had undergone gastric surgery 10 years ago. "
        "He had been treated for gastritis by his general practitioner without improvement. "
        "On examination, the abdomen was distended and tender. "
        "He underwent laparotomy and the mass was removed. "
        "Immunohistochemistry showed CD117 positivity. "
        "At the 6-month follow-up he was well."
    )
    parts = vignette_parts(text)
    kept = " ".join(filter(None, [parts.chief_complaint, parts.history_of_present_illness, parts.past_history,
                                  parts.examination]))  # fmt: skip
    assert "gastric surgery 10 years ago" in kept and "without improvement" in kept  # earlier events stay
    assert "distended" in kept
    for later in ("laparotomy", "Immunohistochemistry", "follow-up"):
        assert later not in kept
    for stop in (
        "A stent was placed in the common bile duct.",
        "Histopathology of the specimen revealed a spindle cell tumour.",
        "She received three intravitreal injections of ranibizumab.",
        "The symptoms resolved two weeks later.",
    ):
        parts = vignette_parts(f"A 50-year-old woman presented with pain. She had fever. {stop} She was well.")
        assert parts.history_of_present_illness == "She had fever." and parts.examination is None, stop


def _adapter(tmp_path: Path, xml: str) -> list[RawCase | Quarantine]:
    # imported here: casereports.articles and the adapters import each other (the adapters must load first)
    from retinal_reason_data.ingest.casereports.articles import ArticleOptions, article_cases

    folder = tmp_path / "PMC9000001"
    folder.mkdir()
    (folder / "article.nxml").write_text(xml, encoding="utf-8")
    Image.new("RGB", (64, 64), (120, 40, 20)).save(folder / "fig1.jpg")
    options = ArticleOptions(ophthalmic_only=False)
    return list(article_cases(read(xml), options, ONTOLOGY, "pmc_oa", str(folder / "article.nxml"), [folder]))


def test_articles_that_state_a_presentation_are_not_quarantined_for_it(tmp_path: Path) -> None:
    xml = jats(
        "Central retinal artery occlusion in a young man",
        [
            "A 28\u2010year\u2010old man, previously diagnosed with migraine, was referred to our clinic with sudden "
            "painless loss of vision in the right eye",
            "Visual acuity was counting fingers.",
            "He was diagnosed with central retinal artery occlusion (CRAO).",
        ],
    )
    (record,) = _adapter(tmp_path, xml)
    assert isinstance(record, RawCase), record
    assert record.age == 28 and record.context.diagnosis == "Central retinal artery occlusion"
    assert record.context.diagnosis_aliases == ["central retinal artery occlusion", "CRAO"]
    assert record.images[0].modality is Modality.CFP


def test_a_case_without_a_trustworthy_diagnosis_is_quarantined_with_a_reason(tmp_path: Path) -> None:
    xml = jats("Endoscopic versus Surgical Intervention for Jejunal Bezoar", ["A 62-year-old man presented with "
               "abdominal pain and a fundus photograph was taken"])  # fmt: skip
    (record,) = _adapter(tmp_path, xml)
    assert isinstance(record, Quarantine) and record.reason == "no_diagnosis"
    assert "PMC9000001" in record.detail and "Endoscopic versus Surgical Intervention" in record.detail


def test_several_cases_take_their_diagnosis_from_their_own_section() -> None:
    xml = jats(
        "Two cases",
        ["A 30-year-old man presented with floaters."],
        abstract="We describe two patients; one was diagnosed with birdshot chorioretinopathy.",
    )
    article = read(xml)
    reading = read_diagnosis(article, case_sections(article)[0], ONTOLOGY, several_cases=True)
    assert reading.phrase is None  # the abstract's statement may be the other patient's
    single = read_diagnosis(article, case_sections(article)[0], ONTOLOGY)
    assert single.phrase == "birdshot chorioretinopathy" and single.where == "abstract"


def test_weak_statements_need_support_and_symptoms_or_outside_labels_are_not_diagnoses() -> None:
    case = [
        "A 42-year-old man presented complaining of floaters in his left eye.",
        'He was diagnosed with "floaters" at a community hospital.',
        "Fundoscopy revealed a retinal detachment.",
    ]
    abstract = "We report a case of rhegmatogenous retinal detachment caused by an occult foreign body."
    found = extracted(jats("An occult foreign body", case, abstract=abstract))
    assert found.final_diagnosis == "rhegmatogenous retinal detachment"  # an ontology disease: trusted
    unsupported = extracted(jats("An unusual course", case[:1], abstract="We present a case of spontaneous closure."))
    assert unsupported.final_diagnosis is None  # weak, unsupported, not an ontology disease
    supported = extracted(jats("Acquired retinoschisis in microphthalmos", case[:1],
                               abstract="This report presents a case of acquired retinoschisis."))  # fmt: skip
    assert supported.final_diagnosis == "acquired retinoschisis"  # the title supports it
    symptom = extracted(jats("x", [*case[:1], "He was diagnosed with sudden visual loss."]))
    assert symptom.final_diagnosis is None and "symptom" in (symptom.diagnosis_refusal or "")
    combined = extracted(jats("x", [*case[:1], "The diagnosis was given as pterygium combined with corneal "
                                   "perforation."]))  # fmt: skip
    assert combined.final_diagnosis is None and "several diagnoses" in (combined.diagnosis_refusal or "")
