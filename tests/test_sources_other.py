"""Glaucoma, OCT, atlas, release and generic adapters read phantom copies of their layouts, quirks included."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ingest.sources.caption_terms import caption_findings
from retinal_reason_data.ingest.sources.options import SourceOptionsError
from retinal_reason_data.ontology import UnmappedLabel, default_ontology
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.phantoms.registry import writer_for
from retinal_reason_data.schema import Eye, Modality, Quarantine, Sex
from tests.conftest import write_recipe


def _read(
    adapter: str, root: Path, cases: int | None = None, values: dict[str, Any] | None = None
) -> tuple[list[RawCase], list[Quarantine]]:
    spec = ADAPTERS[adapter]
    if cases is not None:
        writer_for(adapter)(root, cases, 0)
    read, refused = [], []
    for record in spec.read(
        root, adapter, SourceOptions(work_dir=root.parent / f"{root.name}_work", values=values or {})
    ):
        if isinstance(record, RawCase):
            read.append(record)
        else:
            assert record.file and record.detail and record.source == adapter
            refused.append(record)
    return read, refused


def _codes(adapter: str, case: RawCase) -> set[str]:
    return {default_ontology().map_label(label, ADAPTERS[adapter].labels).code for label in case.labels}


def _reasons(refused: list[Quarantine]) -> Counter[str]:
    return Counter(q.reason for q in refused)


def test_refuge_labels_from_index_json_and_prefixes_and_refuses_contradictions(tmp_path: Path) -> None:
    cases, refused = _read("refuge", tmp_path / "refuge", 12)
    assert _reasons(refused) == {"label_conflict": 1, "image_missing": 1}
    assert len(cases) == 10
    conflict = next(q for q in refused if q.reason == "label_conflict")
    assert conflict.file.endswith("train/index.json") and conflict.row is not None
    by_id = {case.local_id: case for case in cases}
    for case in cases:
        codes = _codes("refuge", case)
        assert codes in ({"glaucoma"}, {"glaucoma.none"})
        if case.local_id.startswith("train/"):  # g = glaucoma, n = not
            assert codes == ({"glaucoma"} if case.local_id[6] == "g" else {"glaucoma.none"})
    unlisted = [case for case in cases if case.row is None]
    assert len(unlisted) == 1 and unlisted[0].labels[0] in ("g", "n")
    assert any(case.images[0].path.suffix == ".JPG" for case in cases)
    assert {"val/V0002", "test/T0001"} <= set(by_id), "val/index.json carries a byte-order mark"
    assert all(case.raw_patient_id is None and case.images[0].modality is Modality.CFP for case in cases)


def test_origa_reads_padded_list_with_eyes(tmp_path: Path) -> None:
    cases, refused = _read("origa", tmp_path / "origa", 10)
    assert _reasons(refused) == {"image_missing": 1} and refused[0].row == 6
    assert len(cases) == 9
    assert {case.eye for case in cases} == {Eye.LEFT, Eye.RIGHT}
    assert Counter(code for case in cases for code in _codes("origa", case)) == {"glaucoma": 2, "glaucoma.none": 7}
    assert [case.row for case in cases][:2] == [2, 3]


def test_papila_reads_both_workbooks_with_patient_eye_age_and_sex(tmp_path: Path) -> None:
    cases, refused = _read("papila", tmp_path / "papila", 10)
    assert _reasons(refused) == {"row_incomplete": 1, "image_missing": 1}
    assert all(q.file.endswith(".xlsx") and isinstance(q.row, int) for q in refused)
    assert len(cases) == 8
    for case in cases:
        assert case.eye is (Eye.RIGHT if case.local_id.endswith("OD") else Eye.LEFT)
        assert case.local_id == f"RET{int(case.raw_patient_id or 0):03d}{case.local_id[-2:]}"
        assert case.age and case.sex in (Sex.FEMALE, Sex.MALE) and case.row and case.row >= 3
    patients = Counter(case.raw_patient_id for case in cases)
    assert max(patients.values()) == 2, "both eyes of a patient share the patient id"
    assert {code for case in cases for code in _codes("papila", case)} == {
        "glaucoma",
        "glaucoma.none",
        "glaucoma.suspect",
    }


def test_papila_tolerates_a_third_header_row_and_numeric_ids(tmp_path: Path) -> None:
    from openpyxl import Workbook

    root = tmp_path / "papila"
    writer_for("papila")(root, 2, 0)
    workbook = Workbook()
    for row in (
        [None, "Age", "Gender", "Diagnosis"],
        ["ID", None, None, None],
        [None, "Age", "Gender", "Diagnosis"],
        [2, 50, 1, 1.0],
        ["notes: see paper", None, None, None],
    ):
        workbook.active.append(row)
    workbook.save(root / "ClinicalData" / "patient_data_od.xlsx")
    cases, refused = _read("papila", root)
    right = [case for case in cases if case.eye is Eye.RIGHT]
    assert len(right) == 1 and right[0].labels == ["1"] and right[0].sex is Sex.FEMALE and right[0].row == 4
    assert _reasons(refused) == {"row_unparsed": 1} and refused[0].row == 5


def test_g1020_reports_missing_images_and_leaves_unknown_labels_to_intake(tmp_path: Path) -> None:
    cases, refused = _read("g1020", tmp_path / "g1020", 10)
    assert _reasons(refused) == {"image_missing": 1} and len(cases) == 9
    unknown = [case for case in cases if case.labels == ["2"]]
    assert len(unknown) == 1
    with pytest.raises(UnmappedLabel):
        _codes("g1020", unknown[0])
    assert all(case.images[0].path.suffix.lower() == ".jpg" for case in cases), "annotation .json files skipped"


def test_chaksu_reads_each_device_and_both_decision_columns(tmp_path: Path) -> None:
    cases, refused = _read("chaksu", tmp_path / "chaksu", 12)
    assert _reasons(refused) == {"image_missing": 1} and len(cases) == 11
    devices = {case.local_id.split("/")[1] for case in cases}
    assert devices == {"Bosch", "Forus", "Remidio"}
    assert {case.images[0].path.suffix for case in cases} == {".JPG", ".png", ".jpg"}
    assert any(case.local_id.startswith("Test/Forus/") for case in cases), "'Glaucoma Decision' column read"
    codes = Counter(code for case in cases for code in _codes("chaksu", case))
    assert codes == {"glaucoma.none": 8, "glaucoma.suspect": 3}


def test_octdl_keeps_patient_eye_and_sex_and_validates_options(tmp_path: Path) -> None:
    root = tmp_path / "octdl"
    cases, refused = _read("octdl", root, 12)
    assert _reasons(refused) == {"image_missing": 1, "row_incomplete": 1} and len(cases) == 10
    assert max(Counter(case.raw_patient_id for case in cases).values()) >= 2
    assert all(case.eye in (Eye.LEFT, Eye.RIGHT) and case.sex in (Sex.FEMALE, Sex.MALE) for case in cases)
    assert all(case.images[0].path.parent.name == case.labels[0] for case in cases)
    assert all(len(_codes("octdl", case)) == 1 for case in cases)
    with_sub, _ = _read("octdl", root, values={"subcategory": True})
    assert any(len(case.labels) == 2 for case in with_sub)
    with pytest.raises(SourceOptionsError, match="option 'subcategroy': unknown option"):
        _read("octdl", root, values={"subcategroy": True})


def test_octid_maps_class_folders_and_skips_stray_files(tmp_path: Path) -> None:
    cases, refused = _read("octid", tmp_path / "octid", 10)
    assert not refused and len(cases) == 10
    assert {code for case in cases for code in _codes("octid", case)} == {
        "oct.normal",
        "amd.any",
        "csc",
        "dr.any",
        "mh.full_thickness",
    }
    assert all(
        not case.images[0].path.name.startswith("._") and "__MACOSX" not in str(case.images[0].path) for case in cases
    )
    assert all(case.images[0].modality is Modality.OCT for case in cases)


def test_caption_findings_take_exact_names_only() -> None:
    ontology = default_ontology()
    assert caption_findings("Central retinal vein occlusion with haemorrhages.", ontology, Modality.CFP) == [
        "Central retinal vein occlusion"
    ]
    assert caption_findings("No signs of diabetic retinopathy.", ontology, Modality.CFP) == []
    assert caption_findings("Subretinal fluid; PED nasally, ped not.", ontology, Modality.OCT) == [
        "Subretinal fluid",
        "PED",
    ]
    assert caption_findings("Subretinal fluid.", ontology, Modality.CFP) == [], "an OCT concept in a fundus caption"
    assert caption_findings("AMD without CNV.", ontology, Modality.OCT) == ["AMD"]


def test_mm_retinal_v1_keeps_captions_and_derives_findings_from_them(tmp_path: Path) -> None:
    cases, refused = _read("mm_retinal_v1", tmp_path / "mm", 12)
    assert _reasons(refused) == {"image_missing": 1} and len(cases) == 11
    assert {case.images[0].modality for case in cases} == {Modality.CFP, Modality.FFA, Modality.OCT}
    assert all(case.images[0].caption for case in cases)
    by_id = {case.local_id: case for case in cases}
    assert _codes("mm_retinal_v1", by_id["CFP/figure01-01A"]) == {"vasc.crvo"}
    assert by_id["CFP/figure01-02A"].labels == [], "a negated finding is not a finding"
    assert by_id["CFP/figure01-01A"].raw_patient_id == by_id["CFP/figure01-01B"].raw_patient_id
    assert by_id["CFP/figure01-01A"].raw_patient_id != by_id["CFP/figure01-02A"].raw_patient_id


def test_mm_retinal_reason_decodes_images_into_the_work_folder_and_keeps_the_release(tmp_path: Path) -> None:
    root = tmp_path / "release"
    cases, refused = _read("mm_retinal_reason", root, 12)
    assert _reasons(refused) == {"image_undecodable": 1, "record_invalid": 1}
    assert all(isinstance(q.row, int) for q in refused)
    assert len(cases) == 10
    work = tmp_path / "release_work"
    for case in cases:
        assert all(image.path.is_file() and work in image.path.parents for image in case.images)
        assert case.context.question and case.context.answer and case.context.reference_trace
        assert "<image>" not in case.context.question
    assert not list(root.rglob("*.jpg")), "nothing is written into the collection"
    lettered = [case for case in cases if "A. Cataract" in (case.context.question or "")]
    assert lettered and all(case.labels in (["Glaucoma"], ["Cataract"]) for case in lettered)
    complex_ = [case for case in cases if case.local_id.startswith("complex/")]
    assert complex_ and all(len(case.images) == 2 and case.raw_patient_id == case.context.pmcid for case in complex_)
    assert all(_codes("mm_retinal_reason", case) == {"vasc.crvo"} for case in complex_)
    mtimes = {image.path: image.path.stat().st_mtime_ns for case in cases for image in case.images}
    again, _ = _read("mm_retinal_reason", root)
    assert [case.local_id for case in again] == [case.local_id for case in cases]
    assert all(image.path.stat().st_mtime_ns == mtimes[image.path] for case in again for image in case.images)


def test_mm_retinal_reason_reads_json_lines_and_reports_broken_json(tmp_path: Path) -> None:
    root = tmp_path / "release"
    root.mkdir()
    image = base64.b64encode(b"\xff\xd8\xff\xe0 not really a jpeg").decode()
    record = {
        "image": image,
        "conversations": [{"from": "human", "value": "<image>\nOCT?"}, {"from": "gpt", "value": "DME"}],
    }
    (root / "basic_reasoning.json").write_text(json.dumps(record) + "\n" + json.dumps(record | {"reason": "r"}) + "\n")
    (root / "complex_reasoning.json").write_text('[{"image": ["' + image + '"], "conversations": [')
    cases, refused = _read("mm_retinal_reason", root)
    assert len(cases) == 2 and cases[0].images[0].modality is Modality.OCT and cases[0].labels == ["DME"]
    assert _reasons(refused) == {"labels_unreadable": 1}


def test_image_folder_reads_split_and_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "folders"
    cases, refused = _read("image_folder", root, 10, {"modality": "fundus"})
    assert not refused and len(cases) == 10
    assert {case.local_id.split("/")[0] for case in cases} == {"train", "val", "test"}
    assert {case.labels[0] for case in cases} == {"glaucoma", "normal", "cataract", "pathologic_myopia"}
    normal = next(case for case in cases if case.labels == ["normal"])
    with pytest.raises(UnmappedLabel):  # reported at intake, not guessed
        default_ontology().map_label("normal", {})
    assert default_ontology().map_label(normal.labels[0], {"normal": "normal.fundus"}).code == "normal.fundus"
    assert all(case.images[0].modality is Modality.CFP for case in cases)
    only_train, refused = _read("image_folder", root, values={"modality": "CFP", "splits": ["train", "holdout"]})
    assert {case.local_id.split("/")[0] for case in only_train} == {"train"}
    assert _reasons(refused) == {"folder_missing": 1}
    named, _ = _read("image_folder", root, values={"modality": "CFP", "patient_pattern": r"_(?P<patient>\d{3})"})
    assert all(case.raw_patient_id and len(case.raw_patient_id) == 3 for case in named)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "option 'modality': required option is missing"),
        ({"modality": "X-ray"}, "option 'modality'"),
        ({"modality": "CFP", "patient_pattern": "(unclosed"}, "option 'patient_pattern'"),
        ({"modality": "CFP", "patient_pattern": r"\d+"}, "(?P<patient>"),
    ],
)
def test_image_folder_options_errors_name_the_option(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceOptionsError) as caught:
        _read("image_folder", tmp_path, values=values)
    assert message in str(caught.value) and "image_folder" in str(caught.value)


MANIFEST_OPTIONS = {
    "file": "manifest.csv",
    "image_column": "path",
    "label_columns": "findings",
    "label_separator": ";",
    "patient_column": "patient",
    "eye_column": "eye",
    "modality_column": "modality",
    "split_column": "split",
}


def test_manifest_maps_columns_from_the_options(tmp_path: Path) -> None:
    root = tmp_path / "manifest"
    cases, refused = _read("manifest", root, 10, MANIFEST_OPTIONS)
    assert _reasons(refused) == {"image_missing": 1, "row_incomplete": 1} and len(cases) == 8
    assert {case.images[0].modality for case in cases} == {Modality.CFP, Modality.OCT, Modality.FFA}
    assert all(case.eye in (Eye.LEFT, Eye.RIGHT) and case.raw_patient_id for case in cases)
    assert max(Counter(case.raw_patient_id for case in cases).values()) == 2
    multi = next(case for case in cases if len(case.labels) == 2)
    assert _codes("manifest", multi) in ({"dr.moderate", "lesion.hard_exudate"}, {"ffa.leakage", "ffa.non_perfusion"})
    assert all(case.local_id.split("/")[0] in {"train", "val", "test"} for case in cases)
    unknown = [case for case in cases if "suspicious lesion" in case.labels]
    assert len(unknown) == 1
    with pytest.raises(UnmappedLabel):
        _codes("manifest", unknown[0])
    held_out, _ = _read("manifest", root, values=MANIFEST_OPTIONS | {"split_values": ["test"]})
    assert held_out and {case.local_id.split("/")[0] for case in held_out} == {"test"}
    with pytest.raises(SourceOptionsError, match="option 'patient_column': no column 'subject'"):
        _read("manifest", root, values=MANIFEST_OPTIONS | {"patient_column": "subject"})


def test_manifest_presets_read_flair_and_eyeclip_tables(tmp_path: Path) -> None:
    root = tmp_path / "presets"
    (root / "09_PAPILA" / "FundusImages").mkdir(parents=True)
    for name in ("RET002OD.jpg", "RET002OS.jpg", "RET004OD.jpg"):
        fundus_photo(2, "right", [], size=96).save(root / "09_PAPILA" / "FundusImages" / name)
    (root / "09_PAPILA.csv").write_text(
        ",image,atributes,categories\n"
        "0,09_PAPILA/FundusImages/RET002OD.jpg,[],['glaucoma']\n"
        "1,09_PAPILA/FundusImages/RET002OS.jpg,[],\"['no glaucoma']\"\n"
        "2,09_PAPILA/FundusImages/RET004OD.jpg,[],glaucoma]\n"
    )
    cases, refused = _read("manifest", root, values={"preset": "flair", "file": "09_PAPILA.csv"})
    assert [case.labels for case in cases] == [["glaucoma"], ["no glaucoma"]]
    assert _reasons(refused) == {"cell_unparsed": 1} and refused[0].row == 4
    assert [_codes("manifest", case) for case in cases] == [{"glaucoma"}, {"glaucoma.none"}]
    (root / "labels.csv").write_text("impath,class\n09_PAPILA/FundusImages/RET004OD.jpg,cataract\n")
    cases, refused = _read("manifest", root, values={"preset": "eyeclip", "modality": "CFP"})
    assert not refused and [case.labels for case in cases] == [["cataract"]]
    with pytest.raises(SourceOptionsError, match="modality"):
        _read("manifest", root, values={"preset": "eyeclip"})


def test_manifest_reads_json_lines_and_flag_columns(tmp_path: Path) -> None:
    root = tmp_path / "jsonl"
    root.mkdir()
    fundus_photo(3, "left", [], size=96).save(root / "a.png")
    lines = [
        {"file": "a.png", "labels": ["Glaucoma", "cataract"], "age": 71, "sex": "female"},
        {"file": "missing.png", "labels": ["Glaucoma"]},
        "not an object",
    ]
    (root / "m.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n{broken\n")
    values = {"file": "m.jsonl", "image_column": "file", "label_columns": ["labels"], "modality": "CFP"}
    cases, refused = _read("manifest", root, values=values | {"age_column": "age", "sex_column": "sex"})
    assert [case.labels for case in cases] == [["Glaucoma", "cataract"]]
    assert cases[0].age == 71 and cases[0].sex is Sex.FEMALE
    assert _reasons(refused) == {"image_missing": 1, "record_invalid": 2}
    (root / "flags.csv").write_text("ID,DR,ARMD\na.png,1,0\na.png,0,0\na.png,1,maybe\n")
    flags = {"file": "flags.csv", "image_column": "ID", "label_columns": ["DR", "ARMD"], "label_format": "flags"}
    cases, refused = _read("manifest", root, values=flags | {"modality": "CFP"})
    assert [case.labels for case in cases] == [["DR"]]
    assert _reasons(refused) == {"label_missing": 1, "cell_unparsed": 1}


def test_every_mapped_code_is_in_the_ontology() -> None:
    ontology = default_ontology()
    for name in ("refuge", "origa", "papila", "g1020", "chaksu", "octdl", "octid"):
        assert set(ADAPTERS[name].labels.values()) <= set(ontology.entries), name


def test_phantoms_of_these_layouts_are_deterministic(tmp_path: Path) -> None:
    for adapter in ("papila", "mm_retinal_reason", "chaksu"):
        for name in ("one", "two"):
            writer_for(adapter)(tmp_path / name / adapter, 8, 5)
    first = sorted(
        (p.relative_to(tmp_path / "one"), p.read_bytes()) for p in (tmp_path / "one").rglob("*") if p.is_file()
    )
    second = sorted(
        (p.relative_to(tmp_path / "two"), p.read_bytes()) for p in (tmp_path / "two").rglob("*") if p.is_file()
    )
    assert first == second


@pytest.mark.slow
def test_generic_adapters_build_from_a_recipe_via_the_cli(tmp_path: Path) -> None:
    sources = [
        {
            "adapter": "image_folder",
            "root": "raw/folders",
            "options": {"modality": "CFP"},
            "labels": {"normal": "normal.fundus", "pathologic_myopia": "myopia.pathologic"},
            "licence": "CC BY 4.0",
            "phantom": {"cases": 10, "seed": 1},
        },
        {
            "adapter": "manifest",
            "root": "raw/manifest",
            "options": MANIFEST_OPTIONS,
            "phantom": {"cases": 10, "seed": 2},
        },
    ]
    recipe = write_recipe(tmp_path, sources=sources)
    runner = CliRunner()
    result = runner.invoke(app, ["build", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    stats = json.loads(runner.invoke(app, ["stats", str(recipe), "--json"], catch_exceptions=False).output)
    assert stats["cases_by_source"] == {"image_folder": 10, "manifest": 7}
    assert stats["findings_by_source"]["image_folder"]["Normal fundus"] >= 1
    assert stats["quarantined_by_reason"] == {"image_missing": 1, "row_incomplete": 1, "unknown_label": 1}
    reconciled = stats["reconciliation"]["manifest"]
    assert (reconciled["read"], reconciled["cases"], reconciled["quarantined"]) == (10, 7, 3)
    assert sum(stats["exported"]["rl"].values()) > 0

    bad = write_recipe(tmp_path / "bad", sources=[sources[1] | {"options": {"file": "manifest.csv"}}])
    result = runner.invoke(app, ["ingest", str(bad)])
    assert result.exit_code == 2
    assert "option 'image_column': required option is missing" in result.output


def test_rrd_sources_lists_these_adapters_with_their_options() -> None:
    result = CliRunner().invoke(app, ["sources", "--json"])
    assert result.exit_code == 0
    rows = {row["adapter"]: row for row in json.loads(result.output)}
    names = {"refuge", "origa", "papila", "g1020", "chaksu", "octdl", "octid", "mm_retinal_v1", "mm_retinal_reason"}
    assert names | {"image_folder", "manifest"} <= set(rows)
    assert all(rows[name]["licence"] for name in names)
    for option in ("image_column", "label_columns", "preset", "modality_column", "split_column"):
        assert option in rows["manifest"]["layout"]
    assert "modality" in rows["image_folder"]["layout"] and "caption-derived" in rows["mm_retinal_v1"]["layout"]
