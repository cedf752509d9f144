"""Adapters read phantom copies of the real layouts, quirks included."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.phantoms.registry import writer_for


def _read(adapter: str, root: Path, cases: int) -> tuple[list[RawCase], Counter[str]]:
    spec = ADAPTERS[adapter]
    writer_for(adapter)(root, cases, 0)
    read, quarantined = [], Counter()
    options = SourceOptions(work_dir=root / "_work")
    for record in spec.read(root, adapter, options):
        if isinstance(record, RawCase):
            read.append(record)
        else:
            quarantined[record.reason] += 1
            assert record.file and record.detail
    return read, quarantined


def test_aptos_reads_bom_crlf_csv_and_reports_missing_images(tmp_path: Path) -> None:
    cases, quarantined = _read("aptos2019", tmp_path, 12)
    assert quarantined == {"image_missing": 1}  # the corrupt file and unknown label surface at intake
    assert len(cases) == 11
    assert {case.labels[0] for case in cases} <= {"0", "1", "2", "3", "4", "5"}
    assert all(case.row and case.row >= 2 for case in cases)
    assert not any(case.images[0].path.name == "Thumbs.db" for case in cases)


def test_oct2017_takes_patient_from_the_file_name(tmp_path: Path) -> None:
    cases, quarantined = _read("oct2017", tmp_path, 20)
    assert not quarantined and len(cases) == 20
    patients = Counter(case.raw_patient_id for case in cases)
    assert max(patients.values()) > 1, "phantom patients have several scans"
    for case in cases:
        assert case.labels[0] in {"CNV", "DME", "DRUSEN", "NORMAL"}
        assert case.images[0].path.name.split("-")[1] == case.raw_patient_id
    assert any(case.images[0].path.suffix == ".JPEG" for case in cases)


def test_ffa_ir_groups_frames_and_quarantines_a_case_with_a_missing_frame(tmp_path: Path) -> None:
    cases, quarantined = _read("ffa_ir", tmp_path, 7)
    assert quarantined == {"image_missing": 1} and len(cases) == 6
    assert all(len(case.images) == 3 and case.labels and case.context.report for case in cases)


def test_case_reports_carry_the_clinical_context(tmp_path: Path) -> None:
    cases, quarantined = _read("case_reports", tmp_path, 8)
    assert not quarantined and len(cases) == 8
    for case in cases:
        assert case.context.chief_complaint and case.context.diagnosis and case.context.pmcid
        assert len(case.images) >= 2 and all(image.caption for image in case.images)


def test_phantoms_are_deterministic(tmp_path: Path) -> None:
    for name in ("one", "two"):
        writer_for("aptos2019")(tmp_path / name, 6, 5)
    first = sorted((p.name, p.read_bytes()) for p in (tmp_path / "one").rglob("*") if p.is_file())
    second = sorted((p.name, p.read_bytes()) for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert first == second
