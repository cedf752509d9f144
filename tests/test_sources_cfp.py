"""Colour fundus adapters read phantom copies of the real layouts, quirks included: cases, findings (mapped
through each adapter's table and the ontology), patients, eyes, gradability and quarantine reasons."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ingest.sources.jsiec import CLASSES
from retinal_reason_data.ingest.sources.odir5k import KEYWORDS, split_keywords
from retinal_reason_data.ingest.sources.rfmid import COLUMNS
from retinal_reason_data.ingest.sources.tabular import read_xlsx_rows
from retinal_reason_data.ontology import UnmappedLabel, default_ontology
from retinal_reason_data.phantoms.layouts_cfp import ODIR_UNKNOWN_KEYWORD, messidor2_exam_ids
from retinal_reason_data.phantoms.registry import writer_for
from retinal_reason_data.schema import Eye, Quarantine
from retinal_reason_data.text import normalise_term
from tests.conftest import write_recipe

CFP_ADAPTERS = ("eyepacs", "eyeq", "messidor2", "idrid", "odir5k", "rfmid", "jsiec", "ddr", "deepdrid")
DR_CODES = {"dr.none", "dr.mild", "dr.moderate", "dr.severe", "dr.proliferative"}


def _read(
    adapter: str, root: Path, cases: int | None = None, seed: int = 0, **options: object
) -> tuple[list[RawCase], list[Quarantine]]:
    """Write a phantom (when `cases` is given) and read it back, splitting cases from quarantine records."""
    spec = ADAPTERS[adapter]
    if cases is not None:
        writer_for(adapter)(root, cases, seed)
    read, refused = [], []
    for record in spec.read(root, adapter, SourceOptions(work_dir=root.parent / "_work", values=options)):
        if isinstance(record, RawCase):
            read.append(record)
        else:
            assert record.file and record.detail and record.source == adapter
            refused.append(record)
    assert len({case.local_id for case in read}) == len(read), "case ids are unique"
    return read, refused


def _reasons(refused: list[Quarantine]) -> Counter[str]:
    return Counter(record.reason for record in refused)


def _codes(adapter: str, case: RawCase) -> set[str]:
    return {default_ontology().map_label(label, ADAPTERS[adapter].labels).code for label in case.labels}


def test_every_mapping_lands_on_an_ontology_code_and_terms_stay_unique() -> None:
    ontology = default_ontology()
    for name in CFP_ADAPTERS:
        unknown = {code for code in ADAPTERS[name].labels.values() if code not in ontology.entries}
        assert not unknown, f"{name} maps to codes the ontology lacks: {unknown}"
    assert len(COLUMNS) == 45 and len(CLASSES) == 39
    owners: dict[str, str] = {}
    for entry in ontology.entries.values():
        for term in [entry.name, *entry.aliases]:
            owner = owners.setdefault(normalise_term(term), entry.code)
            assert owner == entry.code, f"{term!r} names both {owner} and {entry.code}"


def test_eyepacs_takes_patient_and_eye_from_the_image_name(tmp_path: Path) -> None:
    cases, refused = _read("eyepacs", tmp_path, 10)
    assert _reasons(refused) == {"image_missing": 1, "name_unparsed": 1, "row_incomplete": 1}
    assert len(cases) == 7
    for case in cases:
        assert case.images[0].path.stem == f"{case.raw_patient_id}_{case.eye.value}" == case.local_id
        assert len(_codes("eyepacs", case) & DR_CODES) == 1
        assert Path(case.file).name in {"trainLabels.csv", "retinopathy_solution.csv"} and case.row >= 2
    assert {case.images[0].path.parent.name for case in cases} == {"train", "test"}
    assert any(case.images[0].path.suffix == ".JPEG" for case in cases), "an upper-case extension is found"
    by_patient: dict[str | None, set[str]] = {}
    for case in cases:
        by_patient.setdefault(case.raw_patient_id, set()).add(case.images[0].path.parent.name)
    assert all(len(splits) == 1 for splits in by_patient.values()), "both eyes of a patient sit in one split"
    unparsed = next(record for record in refused if record.reason == "name_unparsed")
    assert unparsed.row == 6 and "24-left" in unparsed.detail


def test_eyeq_sets_gradable_from_quality_and_keeps_the_grade(tmp_path: Path) -> None:
    cases, refused = _read("eyeq", tmp_path, 10)
    assert _reasons(refused) == {"image_missing": 1, "cell_unparsed": 1}
    assert len(cases) == 8
    assert Counter(case.gradable for case in cases) == {True: 6, False: 2}
    assert {case.eye for case in cases} == {Eye.LEFT, Eye.RIGHT}
    assert all(case.raw_patient_id and len(_codes("eyeq", case) & DR_CODES) == 1 for case in cases)
    assert {Path(case.file).name for case in cases} == {"Label_EyeQ_train.csv", "Label_EyeQ_test.csv"}


def test_messidor2_pairs_exams_keeps_ungradable_images_and_finds_upper_case_files(tmp_path: Path) -> None:
    cases, refused = _read("messidor2", tmp_path, 10)
    assert _reasons(refused) == {"image_missing": 1, "row_incomplete": 1}
    assert len(cases) == 8
    by_id = {case.local_id: case for case in cases}
    for exam in range(5):
        first, second = (Path(image_id).stem for image_id in messidor2_exam_ids(exam))
        if first in by_id and second in by_id:
            assert by_id[first].raw_patient_id == by_id[second].raw_patient_id == first
    ungradable = [case for case in cases if case.gradable is False]
    assert len(ungradable) == 1 and ungradable[0].labels == []
    for case in cases:
        if case.gradable:
            codes = _codes("messidor2", case)
            assert len(codes & DR_CODES) == 1 and len(codes & {"dme.not_referable", "dme.referable"}) == 1
    assert any(case.images[0].path.suffix == ".JPG" for case in cases)
    unpaired, _ = _read("messidor2", tmp_path, pair_exams=False)
    assert all(case.raw_patient_id is None for case in unpaired)


def test_idrid_prefixes_split_ids_and_reads_both_grades(tmp_path: Path) -> None:
    cases, refused = _read("idrid", tmp_path, 9)
    assert _reasons(refused) == {"image_missing": 1}, "the trailing row of empty cells is skipped, not refused"
    assert len(cases) == 8
    ids = {case.local_id for case in cases}
    assert {"train/IDRiD_001", "test/IDRiD_001"} <= ids
    for case in cases:
        codes = _codes("idrid", case)
        assert len(codes & DR_CODES) == 1 and len(codes & {"dme.none", "dme.risk1", "dme.risk2"}) == 1
    assert any(case.images[0].path.suffix == ".JPG" for case in cases)
    inner, _ = _read("idrid", tmp_path / "B. Disease Grading")
    assert {case.local_id for case in inner} == ids, "the grading folder itself is also a valid root"


def test_odir5k_reads_per_eye_keywords_from_the_workbook(tmp_path: Path) -> None:
    cases, refused = _read("odir5k", tmp_path, 10)
    assert _reasons(refused) == {"image_missing": 1}
    assert len(cases) == 9
    by_id = {case.local_id: case for case in cases}
    assert by_id["0_left"].eye == Eye.LEFT and by_id["0_right"].eye == Eye.RIGHT
    assert by_id["0_left"].raw_patient_id == by_id["0_right"].raw_patient_id == "0"
    assert all(case.age and case.sex.value in {"F", "M"} for case in cases)
    assert _codes("odir5k", by_id["3_left"]) == {"dr.mild", "vasc.hypertensive"}, "an ASCII comma also separates"
    assert by_id["12_left"].labels == ["normal fundus"] and by_id["12_left"].gradable is None  # lens dust ignored
    assert by_id["12_right"].labels == [] and by_id["12_right"].gradable is False  # low image quality
    with pytest.raises(UnmappedLabel, match=ODIR_UNKNOWN_KEYWORD):
        default_ontology().map_label(ODIR_UNKNOWN_KEYWORD, ADAPTERS["odir5k"].labels)
    for case in cases:
        if ODIR_UNKNOWN_KEYWORD not in case.labels:
            _codes("odir5k", case)  # every other keyword maps
    assert all(Path(case.file).name == "data.xlsx" for case in cases)


def test_odir5k_per_eye_csv_gives_the_same_cases(tmp_path: Path) -> None:
    from_workbook, _ = _read("odir5k", tmp_path, 10)
    from_csv, refused = _read("odir5k", tmp_path, table="csv")
    assert _reasons(refused) == {"image_missing": 1}
    assert {c.local_id: (c.labels, c.eye, c.gradable) for c in from_csv} == {
        c.local_id: (c.labels, c.eye, c.gradable) for c in from_workbook
    }
    assert all(case.images[0].path.parent.name == "preprocessed_images" for case in from_csv)


def test_odir5k_keywords_split_on_both_commas_and_every_mapped_keyword_is_known() -> None:
    assert split_keywords(' "hypertensive retinopathy,diabetic retinopathy"，lens  dust ') == [
        "hypertensive retinopathy",
        "diabetic retinopathy",
        "lens dust",
    ]
    ontology = default_ontology()
    for keyword, code in KEYWORDS.items():
        assert ontology.map_label(keyword.upper(), KEYWORDS).code == code


def test_rfmid_maps_columns_and_reads_all_zero_rows_as_normal(tmp_path: Path) -> None:
    cases, refused = _read("rfmid", tmp_path, 10)
    assert _reasons(refused) == {"image_missing": 1, "labels_inconsistent": 1, "cell_unparsed": 1}
    assert len(cases) == 7
    assert {case.local_id.split("/")[0] for case in cases} == {"train", "validation", "test"}
    normal = [case for case in cases if case.labels == ["NORMAL"]]
    assert normal and all(_codes("rfmid", case) == {"normal.fundus"} for case in normal)
    diseased = [case for case in cases if case.labels != ["NORMAL"]]
    assert diseased and all(set(case.labels) <= set(COLUMNS) and _codes("rfmid", case) for case in diseased)
    assert default_ontology().map_label("MH", ADAPTERS["rfmid"].labels).code == "media_haze"


def test_rfmid_reads_the_kaggle_copy_layout_too(tmp_path: Path) -> None:
    original, _ = _read("rfmid", tmp_path / "original", 10)
    kaggle = tmp_path / "kaggle"
    moves = (
        ("Training", "a. Training Set", "a. RFMiD_Training_Labels.csv", "Training_Set"),
        ("Validation", "b. Validation Set", "b. RFMiD_Validation_Labels.csv", "Evaluation_Set"),
        ("Test", "c. Testing Set", "c. RFMiD_Testing_Labels.csv", "Test_Set"),
    )
    for images, folder, table, top in moves:
        target = kaggle / top / top
        target.mkdir(parents=True)
        (tmp_path / "original" / "1. Original Images" / folder).rename(target / images)
        (tmp_path / "original" / "2. Groundtruths" / table).rename(target / table.split(". ", 1)[1])
    moved, refused = _read("rfmid", kaggle)
    assert _reasons(refused) == {"image_missing": 1, "labels_inconsistent": 1, "cell_unparsed": 1}
    assert {case.local_id: case.labels for case in moved} == {case.local_id: case.labels for case in original}


def test_jsiec_labels_come_from_class_folders(tmp_path: Path) -> None:
    cases, refused = _read("jsiec", tmp_path, 12)
    assert _reasons(refused) == {"name_unparsed": 1}
    assert len(cases) == 11
    for case in cases:
        assert case.labels == [case.images[0].path.parent.name] and case.labels[0] in CLASSES
        assert _codes("jsiec", case) == {CLASSES[case.labels[0]]}
    assert not any("__MACOSX" in str(case.images[0].path) for case in cases)
    assert any(case.images[0].path.suffix == ".JPG" for case in cases)
    inner, _ = _read("jsiec", tmp_path / "1000images")
    assert len(inner) == 11
    ontology = default_ontology()
    assert ontology.map_label("1.1.DR3", CLASSES).code == "dr.severe_or_proliferative"
    assert ontology.map_label("27.Laser spots", CLASSES).code == "lesion.laser_scars"  # case differs on some disks


def test_ddr_reads_the_lists_and_marks_grade_5_ungradable(tmp_path: Path) -> None:
    cases, refused = _read("ddr", tmp_path, 10)
    assert _reasons(refused) == {"image_missing": 1, "row_incomplete": 1}
    assert len(cases) == 8
    assert Counter(case.gradable for case in cases) == {True: 7, False: 1}
    for case in cases:
        assert (case.labels == []) is (case.gradable is False)
        assert case.gradable is False or len(_codes("ddr", case) & DR_CODES) == 1
        assert case.local_id.split("/")[0] in {"train", "valid", "test"} and case.row >= 1


def test_deepdrid_takes_eye_from_the_image_id_and_grade_from_that_eye(tmp_path: Path) -> None:
    cases, refused = _read("deepdrid", tmp_path, 10)
    assert _reasons(refused) == {"image_missing": 1, "row_incomplete": 1}
    assert len(cases) == 8
    for case in cases:
        image_id = case.local_id.split("/")[1]
        assert case.raw_patient_id == image_id.split("_")[0]
        assert case.eye == (Eye.LEFT if "_l" in image_id else Eye.RIGHT)
        assert case.images[0].path.parent.name == case.raw_patient_id
    ungradable = [case for case in cases if case.gradable is False]
    assert len(ungradable) == 1 and ungradable[0].labels == []
    assert {case.local_id.split("/")[0] for case in cases} == {"regular-fundus-training", "regular-fundus-validation"}


def test_a_missing_label_file_is_reported_not_silent(tmp_path: Path) -> None:
    for name in CFP_ADAPTERS:
        (tmp_path / name).mkdir()
        cases, refused = _read(name, tmp_path / name)
        assert not cases and _reasons(refused) == {"labels_missing": 1}, name


def test_xlsx_rows_skip_title_rows_and_join_two_header_rows(tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in (["Clinical data"], ["ID", "Refraction", None, "Diagnosis "], [None, "sphere", "cylinder", None]):
        sheet.append(row)
    sheet.append(["#002", -1.5, 0.25, 1.0])
    sheet.append([])
    sheet.append(["#004", 0, None, 2])
    workbook.save(tmp_path / "table.xlsx")
    rows = list(read_xlsx_rows(tmp_path / "table.xlsx", required=("ID", "Diagnosis"), header_rows=2))
    assert rows == [
        (4, {"ID": "#002", "Refraction sphere": "-1.5", "Refraction cylinder": "0.25", "Diagnosis": "1"}),
        (6, {"ID": "#004", "Refraction sphere": "0", "Refraction cylinder": "", "Diagnosis": "2"}),
    ]
    with pytest.raises(ValueError, match="table.xlsx"):
        list(read_xlsx_rows(tmp_path / "table.xlsx", required=("Patient",)))


def test_workbook_phantoms_are_byte_identical_for_a_seed(tmp_path: Path) -> None:
    for name in ("one", "two"):
        writer_for("odir5k")(tmp_path / name, 4, 7)
    first = sorted((p.name, p.read_bytes()) for p in (tmp_path / "one").rglob("*") if p.is_file())
    second = sorted((p.name, p.read_bytes()) for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert first == second


def test_rrd_sources_lists_the_fundus_adapters() -> None:
    result = CliRunner().invoke(app, ["sources", "--json"])
    assert result.exit_code == 0
    listed = {row["adapter"]: row for row in json.loads(result.output)}
    for name in CFP_ADAPTERS:
        assert listed[name]["title"] and listed[name]["layout"] and listed[name]["licence"], name
    assert "trainLabels.csv" in listed["eyepacs"]["layout"] and "data.xlsx" in listed["odir5k"]["layout"]


def test_odir5k_ingest_quarantines_the_eye_with_an_unknown_keyword_and_names_it(tmp_path: Path) -> None:
    import duckdb

    source = {"adapter": "odir5k", "root": "raw/odir", "phantom": {"cases": 10, "seed": 0}}
    recipe = write_recipe(tmp_path, sources=[source])
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(recipe)], catch_exceptions=False).exit_code == 0
    stats = json.loads(runner.invoke(app, ["stats", str(recipe), "--json"], catch_exceptions=False).output)
    assert stats["reconciliation"]["odir5k"] == {"read": 10, "cases": 8, "quarantined": 2}
    assert stats["quarantined_by_reason"] == {"image_missing": 1, "unknown_label": 1}
    db = duckdb.connect(str(tmp_path / "small.duckdb"), read_only=True)
    file, row, detail = db.execute(
        "SELECT file, row_ref, detail FROM quarantine WHERE reason = 'unknown_label'"
    ).fetchone()
    stored = [json.loads(data) for (data,) in db.execute("SELECT data FROM cases WHERE source = 'odir5k'").fetchall()]
    db.close()
    assert file.endswith("data.xlsx") and row is not None and ODIR_UNKNOWN_KEYWORD in detail
    assert [case["case_id"] for case in stored if case["gradable"] is False] == ["odir5k:12_right"]
    assert all(case["age"] and case["eye"] in {"left", "right"} for case in stored)


def test_a_recipe_with_eyepacs_phantoms_builds_end_to_end(tmp_path: Path) -> None:
    source = {"adapter": "eyepacs", "root": "raw/eyepacs", "phantom": {"cases": 10, "seed": 1}}
    recipe = write_recipe(tmp_path, sources=[source])
    runner = CliRunner()
    built = runner.invoke(app, ["build", str(recipe)], catch_exceptions=False)
    assert built.exit_code == 0, built.output
    stats = json.loads(runner.invoke(app, ["stats", str(recipe), "--json"], catch_exceptions=False).output)
    assert stats["cases_by_source"]["eyepacs"] == 7
    assert sum(stats["quarantined_by_reason"].values()) == 3
    icdr = {default_ontology().entry(code).name for code in DR_CODES}
    assert stats["findings_by_source"]["eyepacs"].keys() <= icdr
    assert sum(stats["exported"]["sft"].values()) > 0


def test_eyeq_and_eyepacs_give_one_patient_one_pseudonym(tmp_path: Path) -> None:
    from retinal_reason_data.ingest.privacy import DEVELOPMENT_KEY, pseudonymise
    from retinal_reason_data.ingest.sources import ADAPTERS

    assert ADAPTERS["eyeq"].patient_namespace == ADAPTERS["eyepacs"].patient_namespace == "eyepacs"
    assert pseudonymise("eyepacs", "10", DEVELOPMENT_KEY) != pseudonymise("aptos2019", "10", DEVELOPMENT_KEY)
