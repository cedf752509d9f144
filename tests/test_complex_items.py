"""Complex items from case reports: the leakage guard, distractors, free-text answers, the judge for near
misses and the teacher's second reading, and a build from PMC articles to an export with pmcid and title."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest
from typer.testing import CliRunner

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.cli import app
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.recipe import ComplexTasks
from retinal_reason_data.rewards import compute_score
from retinal_reason_data.schema import Case, ClinicalContext, Finding, Generation, ImageRef, Modality, Provenance
from retinal_reason_data.tasks.complex import LeakError, choose_distractors, complex_items, diagnosis_terms, mentions
from retinal_reason_data.tasks.options import LETTERS, seeded_rng
from tests.conftest import write_recipe
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.slow  # the module's own build of case reports

ONTOLOGY = default_ontology()
runner = CliRunner()


def _image(n: int, modality: Modality, caption: str) -> ImageRef:
    return ImageRef(
        path=f"/x{n}.jpg", sha256=f"{n}" * 64, phash="0" * 64, width=9, height=9, modality=modality, caption=caption
    )


def _case(codes: list[str], diagnosis: str, aliases: list[str] | None = None, **context: Any) -> Case:
    captions = context.pop("captions", ["Fundus photograph of the right eye.", "OCT through the fovea."])
    return Case(
        case_id="t:1",
        source="t",
        patient_id="p-1",
        images=[
            _image(i, m, c)
            for i, (m, c) in enumerate(zip([Modality.CFP, Modality.OCT], captions, strict=True), start=1)
        ],
        findings=[Finding(code=c, raw_label=c) for c in codes],
        context=ClinicalContext(
            chief_complaint=context.pop("chief_complaint", "A 61-year-old man presented with sudden loss of vision."),
            diagnosis=diagnosis,
            diagnosis_aliases=aliases or [],
            **context,
        ),
        provenance=Provenance(file="f", row=1, licence="CC BY 4.0"),
    )


def test_history_and_captions_that_name_the_diagnosis_are_repaired() -> None:
    case = _case(
        ["vasc.crao"],
        "Central retinal artery occlusion",
        history="He was seen elsewhere. A CRAO was suspected there.",
        exam="Visual acuity was hand motion. Findings were those of central retinal arterial occlusion.",
        captions=[
            "Fundus photograph with a cherry-red spot. Typical appearance.",
            "OCT; these findings are typical of it.",
        ],
    )
    items = list(complex_items(case, ONTOLOGY, ComplexTasks(), seed=0))
    assert len(items) == 2
    for item in items:
        assert not mentions(item.question, diagnosis_terms(case, ONTOLOGY))
        assert "He was seen elsewhere." in item.question and "hand motion" in item.question
        assert "CRAO" not in item.question and "arterial occlusion" not in item.question
        assert item.captions == ["Fundus photograph. Typical appearance.", "OCT;"]  # the sign that names it goes
        assert item.image_shas == ["1" * 64, "2" * 64]  # images in their order


def test_a_chief_complaint_that_names_the_diagnosis_drops_the_case() -> None:
    case = _case(["csc"], "Central serous chorioretinopathy", chief_complaint="A man with known CSCR presented.")
    with pytest.raises(LeakError, match="chief complaint"):
        list(complex_items(case, ONTOLOGY, ComplexTasks(), seed=0))


def test_abbreviations_match_with_their_case_and_initials_count() -> None:
    case = _case([], "Acute macular neuroretinopathy", ["AMN"])
    terms = diagnosis_terms(case, ONTOLOGY)
    assert "AMN" in terms
    assert mentions("OCT consistent with AMN.", terms)
    assert not mentions("Seen at 10 am, then amnesia.", terms)
    assert mentions("features of acute macular neuroretinopathy", terms)
    untold = _case([], "Paracentral acute middle maculopathy", ["PAMM"])
    assert "PAMM" in diagnosis_terms(untold, ONTOLOGY)


def test_free_text_diagnosis_keeps_its_aliases_and_gets_ontology_distractors() -> None:
    case = _case([], "acute macular neuroretinopathy", ["AMN"])
    items = {item.question_type: item for item in complex_items(case, ONTOLOGY, ComplexTasks(), seed=0)}
    open_item, choice = items["open"], items["single_choice"]
    assert open_item.answer.text == "Acute macular neuroretinopathy" and open_item.answer.code is None
    assert open_item.answer.aliases == ["AMN"]  # the lower-case form already matches the name
    assert choice.options[LETTERS.index(choice.answer.text)] == "Acute macular neuroretinopathy"
    assert all(ONTOLOGY.lookup(option) for option in choice.options if option != "Acute macular neuroretinopathy")


def test_distractors_are_plausible_and_never_broader_or_narrower() -> None:
    case = _case(["vasc.crao"], "Central retinal artery occlusion")
    terms = diagnosis_terms(case, ONTOLOGY)
    for seed in range(15):
        chosen = choose_distractors(
            ONTOLOGY, ONTOLOGY.entry("vasc.crao"), terms, {Modality.CFP}, 3, seeded_rng(seed, "d")
        )
        codes = {entry.code for entry in chosen}
        assert len(codes) == 3 and all(entry.category == "vascular_occlusion" for entry in chosen)
        assert not codes & {"vasc.crao", "vasc.rao"}  # 'retinal artery occlusion' would also be right
        assert not any(code.startswith("lesion.") for code in codes)


def test_items_are_deterministic_and_ids_stable() -> None:
    case = _case(["vkh"], "Vogt-Koyanagi-Harada disease")
    first = list(complex_items(case, ONTOLOGY, ComplexTasks(), seed=4))
    assert first == list(complex_items(case, ONTOLOGY, ComplexTasks(), seed=4))


PMC_SOURCES = [
    {"adapter": "pmc_oa", "root": "raw/pmc_oa", "phantom": {"cases": 8, "seed": 4}},
    {"adapter": "multicare", "root": "raw/multicare", "phantom": {"cases": 8, "seed": 5}},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = write_recipe(tmp_path_factory.mktemp("complex"), sources=PMC_SOURCES)
    result = runner.invoke(app, ["build", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return recipe


def test_complex_items_flow_to_the_export_with_pmcid_title_and_captions(built: Path) -> None:
    stats = json.loads(runner.invoke(app, ["stats", str(built), "--json"]).output)
    for source, counts in stats["reconciliation"].items():
        assert counts["read"] == counts["cases"] + counts["quarantined"], source
    assert stats["quarantined_by_reason"]["not_ophthalmic"] == 2
    sft = datasets.load_dataset(str(built.parent / "export"), "sft")
    rows = [row for split in sft.values() for row in split]
    assert rows and {row["task"] for row in rows} == {"complex"}
    for row in rows:
        assert row["pmcid"].startswith("PMC") and row["title"]
        assert len(row["captions"]) == len(row["images"]) >= 1
        truth = json.dumps(
            {"question_type": row["question_type"], "answer": row["answer"], "aliases": row["answer_aliases"]}
        )
        assert compute_score("x", row["response"], truth) == pytest.approx(1.0)
    modalities = {row["modality"] for row in rows}
    assert "CFP" in modalities


def test_exported_complex_rows_never_show_the_signs_that_name_their_diagnosis(built: Path) -> None:
    """The phantom captions say 'smokestack leak' (central serous chorioretinopathy) and 'polypoidal lesions'
    (polypoidal choroidal vasculopathy); the export keeps the images' captions without them."""
    sft = datasets.load_dataset(str(built.parent / "export"), "sft")
    seen = set()
    for row in (row for split in sft.values() for row in split if row["question_type"] == "open"):
        entry = ONTOLOGY.lookup(row["answer"])
        if entry is None or not entry.signs:
            continue
        seen.add(entry.code)
        shown = "\n".join([row["question"], *row["captions"]])
        assert not mentions(shown, list(entry.signs)), (row["answer"], shown)
        assert row["captions"] and all(caption for caption in row["captions"])  # scrubbed, not emptied
    assert seen  # the phantom articles include diagnoses with signs
    opened = [row for split in sft.values() for row in split if row["question_type"] == "open"]
    assert not any("smokestack" in row["question"] or "polypoidal" in row["question"].lower() for row in opened)


def _judge_and_extract(request: dict[str, Any]) -> str:
    system = request["messages"][0]["content"]
    user = request["messages"][-1]["content"]
    if "check answers" in system:
        return "equivalent" if "left eye" in user else "different"
    if "extract facts" in system:
        return '{"age": 40, "sex": "F", "chief_complaint": "recurrent headaches", "final_diagnosis": "something else"}'
    raise AssertionError("unexpected request")


def test_near_misses_are_judged_once_and_recorded(built: Path) -> None:
    from retinal_reason_data.recipe import load_recipe
    from retinal_reason_data.teacher.judge import judge_near_misses

    recipe = load_recipe(built)
    catalog = Catalog(recipe.catalog_path)
    try:
        item_id, answer = catalog.query(
            "SELECT item_id, json_extract_string(data, '$.answer.text') FROM items WHERE question_type = 'open' LIMIT 1"
        )[0]
        for attempt, candidate in ((7, f"{answer} of the left eye"), (8, f"{answer} mimic")):
            catalog.add_generations(
                [
                    Generation(
                        fingerprint=f"near-{attempt}",
                        item_id=item_id,
                        attempt=attempt,
                        model="m",
                        prompt_version="v1",
                        response=f"<think>t</think><answer>{candidate}</answer>",
                        extracted_answer=candidate,
                        failure="wrong_answer",
                    )
                ]
            )
        with FakeOpenAI(_judge_and_extract) as server:
            recipe.teacher = recipe.teacher.model_copy(update={"kind": "openai", "base_url": server.base_url})
            report = judge_near_misses(recipe, catalog)
            assert (report.near_misses, report.asked, report.equivalent, report.different) == (2, 2, 1, 1)
            again = judge_near_misses(recipe, catalog)
            assert again.asked == 0 and len(server.requests) == 2
        rows = dict(catalog.query("SELECT fingerprint, data FROM generations WHERE fingerprint LIKE 'near-%'"))
        judged = {key: Generation.model_validate_json(value) for key, value in rows.items()}
        assert judged["near-7"].verified and judged["near-7"].judge == "equivalent"
        assert not judged["near-8"].verified and judged["near-8"].judge == "different"
        from retinal_reason_data.stats import collect

        stats = collect(recipe, catalog, ONTOLOGY)
        assert stats["generations"]["judged"] == {"different": 1, "equivalent": 1}
    finally:
        catalog.close()


def test_teacher_extraction_is_compared_with_the_rules(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(_judge_and_extract) as server:
        import yaml

        data = yaml.safe_load(built.read_text())
        data["teacher"] = {"kind": "openai", "base_url": server.base_url, "model": "reader", "concurrency": 4}
        other = built.parent / "extract.yaml"
        other.write_text(yaml.safe_dump(data))
        result = runner.invoke(app, ["extract", str(other), "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["asked"] == report["cases"] > 0
        assert report["disagreements"]["final_diagnosis"] == report["cases"]
        assert report["disagreements"]["chief_complaint"] == report["cases"]
        rerun = json.loads(runner.invoke(app, ["extract", str(other), "--json"]).output)
        assert rerun["asked"] == 0 and rerun["cached"] == report["cases"]
        assert len(server.requests) == report["cases"]
