"""EyeQ (Fu et al., MICCAI 2019): Label_EyeQ_{train,test}.csv (`,image,quality,DR_grade`) over EyePACS images.

Quality 0 good and 1 usable are gradable, 2 reject is not (Case.gradable); the EyePACS DR grade is kept
as a finding either way (the collection states it; filters decide what to do with ungradable images).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.eyepacs import DR_GRADES, eye_image
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.locate import first_dir, first_file, option_dir
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ingest.sources.tabular import cell, guarded, read_csv_rows
from retinal_reason_data.schema import Modality, Quarantine

NAME = "eyeq"
SPLITS = ("train", "test")
QUALITY = {"0": True, "1": True, "2": False}  # good, usable, reject -> gradable


class EyeQOptions(BaseModel):
    """Where the EyePACS images are when not in train/ and test/ beside the label files."""

    model_config = ConfigDict(extra="forbid")

    train_images: str | None = None
    test_images: str | None = None


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per labelled image, with patient and eye from the EyePACS image name."""
    chosen = parse_options(EyeQOptions, options.values, source, NAME)
    found = False
    for split in SPLITS:
        name = f"Label_EyeQ_{split}.csv"
        table = first_file([root / name, root / "data" / name])
        if table is None:
            continue
        found = True
        wanted = option_dir(root, getattr(chosen, f"{split}_images"))
        folder = wanted or first_dir([root / split, root / "images" / split, root / "images"]) or root / split
        yield from guarded(source, _read_table(table, folder, source))
    if not found:
        yield quarantine(
            source, root, None, "labels_missing", f"{root}: no Label_EyeQ_train.csv or Label_EyeQ_test.csv"
        )


def _read_table(table: Path, folder: Path, source: str) -> Iterator[RawCase | Quarantine]:
    files = listing(folder)
    for line, row in read_csv_rows(table, required=("image", "quality")):
        name, quality, grade = (
            cell(row, "image"),
            number_label(cell(row, "quality")),
            number_label(cell(row, "DR_grade")),
        )
        where = f"{table} line {line}"
        if not name or not quality:
            yield quarantine(source, table, line, "row_incomplete", f"{where}: empty image or quality")
            continue
        if quality not in QUALITY:
            yield quarantine(source, table, line, "cell_unparsed", f"{where}: quality {quality!r} is not 0, 1 or 2")
            continue
        found = eye_image(source, table, line, name, folder, files)
        if isinstance(found, Quarantine):
            yield found
            continue
        path, patient, eye = found
        yield RawCase(
            local_id=Path(name).stem,
            raw_patient_id=patient,
            eye=eye,
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=[grade] if grade else [],
            gradable=QUALITY[quality],
            file=str(table),
            row=line,
        )


ADAPTER = Adapter(
    name=NAME,
    patient_namespace="eyepacs",
    title="EyeQ (Eye-Quality assessment over EyePACS)",
    layout=(
        "Label_EyeQ_{train,test}.csv (,image,quality 0 good/1 usable/2 reject,DR_grade) + EyePACS images in "
        "train/ and test/; options: train_images, test_images"
    ),
    licence="EyeQ labels: research use (Fu et al. 2019); images: EyePACS Kaggle competition rules",
    read=read,
    labels=DR_GRADES,
)
