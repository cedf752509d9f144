"""The PMC Open Access adapter on phantom article folders, packages and bundles, quirks included."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ingest.sources.options import SourceOptionsError
from retinal_reason_data.phantoms.registry import writer_for
from retinal_reason_data.schema import Modality


def _read(root: Path, **values: object) -> tuple[list[RawCase], list]:
    options = SourceOptions(work_dir=root.parent / "work", values=values)
    cases, refused = [], []
    for record in ADAPTERS["pmc_oa"].read(root, "pmc_oa", options):
        (cases if isinstance(record, RawCase) else refused).append(record)
    return cases, refused


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pmc") / "oa"
    writer_for("pmc_oa")(root, 10, 0)
    return root


def test_cases_and_reasons_reconcile(collection: Path) -> None:
    cases, refused = _read(collection)
    reasons = Counter(record.reason for record in refused)
    assert reasons == {
        "malformed_xml": 1,
        "image_missing": 1,
        "no_case_section": 1,
        "not_ophthalmic": 1,
        "not_case_report": 1,
    }
    assert len(cases) == 12  # 10 phantom cases (one article holds two) + a two-article Europe PMC bundle
    for record in refused:
        assert record.file and record.detail and str(collection) in record.detail
    missing = next(r for r in refused if r.reason == "image_missing")
    assert "q-0002-g002" in missing.detail
    assert len({case.local_id for case in cases}) == len(cases)


def test_each_case_has_context_figures_and_its_article_licence(collection: Path) -> None:
    cases, _ = _read(collection)
    licences = Counter(case.licence for case in cases)
    assert licences["CC BY 4.0"] and licences["CC BY-NC 4.0"]
    for case in cases:
        context = case.context
        assert context.pmcid and context.pmcid.startswith("PMC") and context.title
        assert context.chief_complaint and "presented with" in context.chief_complaint
        assert case.age is not None and case.sex in ("F", "M")
        assert context.diagnosis and case.labels == [context.diagnosis]
        assert context.case_text and context.chief_complaint in context.case_text
        for image in case.images:
            assert image.path.is_file() and image.path.suffix.lower() == ".jpg"
            assert image.caption and image.modality is not Modality.OTHER
        assert "ultrasonography" not in " ".join(image.caption or "" for image in case.images)  # not retinal imaging


def test_packages_are_unpacked_into_the_work_folder_not_the_collection(collection: Path) -> None:
    cases, _ = _read(collection)
    packaged = [case for case in cases if case.file.endswith(".tar.gz")]
    assert packaged
    for case in packaged:
        assert all("work/packages" in str(image.path) for image in case.images)
    before = {path: path.stat().st_mtime_ns for path in (collection.parent / "work").rglob("*.jpg")}
    _read(collection)  # a rerun keeps the unpacked files (their fingerprints stay cached)
    after = {path: path.stat().st_mtime_ns for path in (collection.parent / "work").rglob("*.jpg")}
    assert before == after


def test_two_cases_of_one_article_get_their_own_figures(collection: Path) -> None:
    cases, _ = _read(collection)
    rows = Counter(str(case.row).split(" case ")[0] for case in cases)
    (article,) = [row for row, count in rows.items() if count == 2]
    first, second = [case for case in cases if str(case.row).startswith(article)]
    assert first.local_id.endswith("_01") and second.local_id.endswith("_02")
    assert {image.path for image in first.images}.isdisjoint(image.path for image in second.images)
    assert first.context.diagnosis != second.context.diagnosis


def test_modalities_from_captions(collection: Path) -> None:
    cases, _ = _read(collection)
    seen = {image.modality for case in cases for image in case.images}
    assert {Modality.CFP, Modality.OCT, Modality.FFA, Modality.VISUAL_FIELD} <= seen
    retinitis = next(case for case in cases if case.context.diagnosis == "Retinitis pigmentosa")
    assert [image.modality for image in retinitis.images] == [Modality.CFP, Modality.VISUAL_FIELD, Modality.OCT]


def test_options_widen_or_narrow_the_filter(collection: Path) -> None:
    cases, refused = _read(collection, ophthalmic_only=False, case_reports_only=False)
    reasons = Counter(record.reason for record in refused)
    assert "not_ophthalmic" not in reasons and "not_case_report" not in reasons
    assert len(cases) == 14
    only_oct, _ = _read(collection, modalities=["OCT"])
    assert only_oct and all(image.modality is Modality.OCT for case in only_oct for image in case.images)
    first_only, _ = _read(collection, cases="first")
    assert len(first_only) == 11
    licensed, refused = _read(collection, licences=["CC BY 4.0"])
    assert all(case.licence == "CC BY 4.0" for case in licensed)
    assert any(record.reason == "licence_excluded" for record in refused)
    with pytest.raises(SourceOptionsError, match="cases"):
        _read(collection, cases="some")


def test_a_single_package_or_file_as_root(collection: Path) -> None:
    package = next(collection.glob("*.tar.gz"))
    cases, refused = _read(package)
    assert len(cases) == 1 and not refused
    broken = next(collection.rglob("broken.nxml"))
    cases, refused = _read(broken)
    assert not cases and refused[0].reason == "malformed_xml"
    truncated = collection.parent / "truncated.tar.gz"
    truncated.write_bytes(package.read_bytes()[:200])
    cases, refused = _read(truncated)
    assert not cases and refused[0].reason == "package_unreadable"
