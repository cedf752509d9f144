"""The MultiCaRe adapter on a phantom copy (parquet, CSV with BOM/CRLF/index column, nested image folders)."""

from __future__ import annotations

from collections import Counter

import pytest

from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ingest.sources.multicare import image_modality
from retinal_reason_data.phantoms.registry import writer_for
from retinal_reason_data.schema import Modality


@pytest.fixture(scope="module")
def read(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[RawCase], list]:
    root = tmp_path_factory.mktemp("multicare")
    writer_for("multicare")(root, 10, 0)
    cases, refused = [], []
    for record in ADAPTERS["multicare"].read(root, "multicare", SourceOptions(work_dir=root / "_work")):
        (cases if isinstance(record, RawCase) else refused).append(record)
    return cases, refused


def test_only_cases_with_ophthalmic_images_are_kept(read: tuple[list[RawCase], list]) -> None:
    cases, refused = read
    reasons = Counter(record.reason for record in refused)
    assert reasons == {"not_ophthalmic": 1, "image_missing": 1, "no_diagnosis": 1}  # see the next test
    assert len(cases) == 7
    missing = next(record for record in refused if record.reason == "image_missing")
    assert "captions_and_labels.csv" in missing.file and "row" in missing.detail


def test_labels_give_the_modality_and_columns_give_age_and_sex(read: tuple[list[RawCase], list]) -> None:
    cases, _ = read
    seen = {image.modality for case in cases for image in case.images}
    assert {Modality.CFP, Modality.OCT, Modality.FFA, Modality.ICGA, Modality.FAF} <= seen
    assert Modality.OTHER not in seen
    for case in cases:
        assert case.age is not None and case.sex in ("F", "M")
        assert case.context.pmcid and case.local_id.startswith(case.context.pmcid)
        assert case.context.chief_complaint and case.context.diagnosis and case.context.title
        assert case.licence == "CC BY 4.0"
        assert all(image.path.is_file() for image in case.images)
    assert any(image.path.suffix == ".JPG" for case in cases for image in case.images)  # CSV says .jpg


def test_a_case_text_that_states_no_diagnosis_is_refused_not_answered_from_its_title(
    read: tuple[list[RawCase], list],
) -> None:
    cases, refused = read
    assert all("diagnos" in (case.context.case_text or "") for case in cases)
    (quiet,) = [record for record in refused if record.reason == "no_diagnosis"]
    assert "no explicit diagnostic statement" in quiet.detail and "is not used alone" in quiet.detail
    assert quiet.row and quiet.row in quiet.detail  # the case is named


def test_image_modality_prefers_the_specific_label() -> None:
    row = {"gt_labels_for_semisupervised_classification": "['ophthalmic_imaging', 'ophthalmic_angiography']"}
    assert image_modality({**row, "caption": "Late-phase fluorescein angiogram"}) is Modality.FFA
    assert image_modality({**row, "caption": "ICGA showing hot spots"}) is Modality.ICGA
    assert image_modality({"ml_labels_for_supervised_classification": "['oct']", "caption": "OCTA of the DCP"}) is (
        Modality.OCTA
    )
    assert image_modality({"image_subtype": "slit_lamp_photograph"}) is Modality.SLIT_LAMP
    assert image_modality({"gt_labels_for_semisupervised_classification": "['ct', 'head']"}) is None
