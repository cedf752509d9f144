"""IDRiD disease grading (Porwal et al. 2018): `B. Disease Grading/2. Groundtruths/{a,b}. IDRiD_Disease
Grading_{Training,Testing} Labels.csv` and `1. Original Images/{a. Training Set,b. Testing Set}/`.

Labels are written `dr:N` (Retinopathy grade 0-4) and `dme:N` (Risk of macular edema 0-2). Image names
restart at IDRiD_001 in each split, so case ids are prefixed with the split (`train/IDRiD_001`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.locate import find_files, first_dir
from retinal_reason_data.ingest.sources.tabular import cell, guarded, read_csv_rows
from retinal_reason_data.schema import Modality, Quarantine

NAME = "idrid"
GRADING = "B. Disease Grading"
SPLITS = (("train", "*Training Labels.csv", "a. Training Set"), ("test", "*Testing Labels.csv", "b. Testing Set"))


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per graded image of each split."""
    base = first_dir([root / GRADING, root / "IDRiD" / GRADING]) or root
    truths = first_dir([base / "2. Groundtruths", base]) or base
    found = False
    for split, pattern, image_folder in SPLITS:
        for table in find_files(truths, pattern):
            found = True
            folder = base / "1. Original Images" / image_folder
            yield from guarded(source, _read_table(table, folder, split, source))
    if not found:
        yield quarantine(
            source,
            truths,
            None,
            "labels_missing",
            f"{truths}: no IDRiD '... Training Labels.csv' / 'Testing Labels.csv'",
        )


def _read_table(table: Path, folder: Path, split: str, source: str) -> Iterator[RawCase | Quarantine]:
    files = listing(folder)
    for line, row in read_csv_rows(table, required=("Image name", "Retinopathy grade")):
        name = cell(row, "Image name")
        grade = number_label(cell(row, "Retinopathy grade"))
        dme = number_label(cell(row, "Risk of macular edema", "Risk of macular oedema"))
        where = f"{table} line {line}"
        if not name or not grade or not dme:
            yield quarantine(
                source,
                table,
                line,
                "row_incomplete",
                f"{where}: empty Image name, Retinopathy grade or macular edema risk",
            )
            continue
        path = find_image(folder, name, files)
        if path is None:
            yield quarantine(source, table, line, "image_missing", f"{where}: no image for {name!r} in {folder}")
            continue
        yield RawCase(
            local_id=f"{split}/{Path(name).stem}",
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=[f"dr:{grade}", f"dme:{dme}"],
            file=str(table),
            row=line,
        )


ADAPTER = Adapter(
    name=NAME,
    title="IDRiD disease grading (Indian Diabetic Retinopathy Image Dataset)",
    layout=(
        "B. Disease Grading/2. Groundtruths/{a. IDRiD_Disease Grading_Training Labels.csv,b. ..._Testing Labels.csv} "
        "(Image name,Retinopathy grade 0-4,Risk of macular edema 0-2) + 1. Original Images/{a. Training Set,"
        "b. Testing Set}/{Image name}.jpg"
    ),
    licence="IDRiD: CC BY 4.0 (Porwal et al. 2018, IEEE DataPort)",
    read=read,
    labels={
        "dr:0": "dr.none",
        "dr:1": "dr.mild",
        "dr:2": "dr.moderate",
        "dr:3": "dr.severe",
        "dr:4": "dr.proliferative",
        "dme:0": "dme.none",
        "dme:1": "dme.risk1",
        "dme:2": "dme.risk2",
    },
)
