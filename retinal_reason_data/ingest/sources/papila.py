"""PAPILA: ClinicalData/patient_data_{od,os}.xlsx (header rows, then '#002' rows) and FundusImages/RET002OD.jpg."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import number_label, parse_age
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.schema import Eye, Modality, Quarantine, Sex

SHEETS = {"od": (Eye.RIGHT, "OD"), "os": (Eye.LEFT, "OS")}
GENDER = {"0": Sex.MALE, "1": Sex.FEMALE}  # PAPILA's coding (Kovalyk et al. 2022)
_ID = re.compile(r"^#?\s*(\d+)$")


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per eye: the right eyes from patient_data_od.xlsx, the left from patient_data_os.xlsx."""
    images = root / "FundusImages"
    files = listing(images)
    for sheet, (eye, code) in SHEETS.items():
        path = root / "ClinicalData" / f"patient_data_{sheet}.xlsx"
        if not path.is_file():
            yield quarantine(source, path, None, "labels_missing", f"{path}: PAPILA clinical data not found")
            continue
        try:
            yield from _read_sheet(path, source, eye, code, images, files)
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            yield quarantine(source, path, None, "labels_unreadable", f"{path}: cannot read the workbook: {exc}")


def _read_sheet(
    path: Path, source: str, eye: Eye, code: str, images: Path, files: Mapping[str, Path]
) -> Iterator[RawCase | Quarantine]:
    """Rows above the first patient row are headers (however many); columns are found by name."""
    from openpyxl import load_workbook  # only the xlsx adapters need it

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        names: dict[int, set[str]] = {}
        columns: dict[str, int] | None = None
        for number, values in enumerate(workbook.worksheets[0].iter_rows(values_only=True), start=1):
            texts = [number_label(value) if value is not None else "" for value in values]
            if not any(texts):
                continue
            patient = _ID.match(texts[0]) if texts else None
            if columns is None:
                if patient is None:  # a header row
                    for index, text in enumerate(texts):
                        if text:
                            names.setdefault(index, set()).add(text.strip().lower())
                    continue
                columns = _columns(names)
                if "diagnosis" not in columns:
                    yield quarantine(source, path, number, "labels_unreadable", f"{path}: no Diagnosis column")
                    return
            if patient is None:
                if "diagnosis" in {text.strip().lower() for text in texts}:
                    continue  # a header row repeated below the first patient
                yield quarantine(
                    source, path, number, "row_unparsed", f"{path} row {number}: first cell {texts[0]!r} is not an id"
                )
                continue
            yield _case(path, number, patient[1], texts, columns, source, eye, code, images, files)
    finally:
        workbook.close()


def _columns(names: dict[int, set[str]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, texts in sorted(names.items()):
        for key, aliases in (("diagnosis", {"diagnosis"}), ("age", {"age"}), ("gender", {"gender", "sex"})):
            if texts & aliases:
                found.setdefault(key, index)
    return found


def _case(
    path: Path,
    number: int,
    digits: str,
    texts: list[str],
    columns: dict[str, int],
    source: str,
    eye: Eye,
    code: str,
    images: Path,
    files: Mapping[str, Path],
) -> RawCase | Quarantine:
    def cell(key: str) -> str:
        index = columns.get(key)
        return texts[index] if index is not None and index < len(texts) else ""

    diagnosis = cell("diagnosis")
    if not diagnosis:
        return quarantine(source, path, number, "row_incomplete", f"{path} row {number}: empty Diagnosis")
    stem = f"RET{digits}{code}"
    image = find_image(images, stem, files) or find_image(images, f"RET{int(digits):03d}{code}", files)
    if image is None:
        return quarantine(source, path, number, "image_missing", f"{path} row {number}: no {stem}.jpg in {images}")
    return RawCase(
        local_id=image.stem.upper(),
        raw_patient_id=str(int(digits)),
        eye=eye,
        age=parse_age(cell("age")),
        sex=GENDER.get(cell("gender"), Sex.UNKNOWN),
        images=[RawImage(path=image, modality=Modality.CFP)],
        labels=[diagnosis],
        file=str(path),
        row=number,
    )


ADAPTER = Adapter(
    name="papila",
    title="PAPILA (glaucoma assessment with clinical data of both eyes)",
    layout="ClinicalData/patient_data_{od,os}.xlsx (header rows, then one row per patient: id '#002' in the first "
    "column, Age, Gender 0 male / 1 female, Diagnosis 0 healthy / 1 glaucoma / 2 suspect); "
    "FundusImages/RET002OD.jpg, RET002OS.jpg",
    licence="CC BY 4.0 (Kovalyk et al. 2022, figshare)",
    read=read,
    labels={"0": "glaucoma.none", "1": "glaucoma", "2": "glaucoma.suspect"},
)
