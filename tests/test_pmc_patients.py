"""PMC-Patients: text-only notes whose images come from the user's PMC OA folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.phantoms.registry import writer_for


def _read(root: Path, **values: object) -> tuple[list[RawCase], Counter[str]]:
    cases, reasons = [], Counter()
    for record in ADAPTERS["pmc_patients"].read(
        root, "pmc_patients", SourceOptions(work_dir=root / "_w", values=values)
    ):
        if isinstance(record, RawCase):
            cases.append(record)
        else:
            reasons[record.reason] += 1
    return cases, reasons


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pmc_patients")
    writer_for("pmc_patients")(folder, 7, 0)
    return folder


def test_without_the_pmc_folder_every_patient_is_skipped_with_a_reason(root: Path) -> None:
    cases, reasons = _read(root)
    assert not cases and reasons == {"images_unavailable": 6, "not_ophthalmic": 1}


def test_with_the_pmc_folder_notes_get_their_articles_figures(root: Path) -> None:
    cases, reasons = _read(root, pmc_root="PMC_OA")
    assert reasons == {"images_unavailable": 1, "not_ophthalmic": 1} and len(cases) == 5
    for case in cases:
        assert case.images and all(image.path.is_file() for image in case.images)
        assert case.context.case_text and case.context.chief_complaint in case.context.case_text
        assert case.context.pmcid and case.context.pmcid in str(case.images[0].path)
        assert case.age is not None and case.sex in ("F", "M") and case.context.diagnosis
    from_packages = [case for case in cases if "_w/packages" in str(case.images[0].path)]
    assert from_packages  # figures of an OA package are unpacked into the source's work folder


def test_articles_in_the_bulk_package_layout_are_found(tmp_path: Path) -> None:
    import shutil

    writer_for("pmc_patients")(tmp_path, 3, 1)
    package = next((tmp_path / "PMC_OA").glob("*.tar.gz"))
    nested = tmp_path / "PMC_OA" / "oa_package" / "08" / "e0"
    nested.mkdir(parents=True)
    shutil.move(package, nested / package.name)
    cases, reasons = _read(tmp_path, pmc_root="PMC_OA")
    assert len(cases) == 3 and not reasons
