"""EyePACS (Kaggle Diabetic Retinopathy Detection, 2015): trainLabels.csv with train/, and the test solution
retinopathy_solution.csv (`image,level,Usage`) with test/; `image` is `{patient}_{left|right}`."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.locate import first_dir, option_dir
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ingest.sources.tabular import cell, guarded, read_csv_rows
from retinal_reason_data.schema import Eye, Modality, Quarantine

NAME = "eyepacs"
TABLES = (("trainLabels.csv", "train"), ("retinopathy_solution.csv", "test"))
_IMAGE_NAME = re.compile(r"^(?P<patient>\d+)_(?P<eye>left|right)$", re.IGNORECASE)
DR_GRADES = {"0": "dr.none", "1": "dr.mild", "2": "dr.moderate", "3": "dr.severe", "4": "dr.proliferative"}


class EyePacsOptions(BaseModel):
    """Image folders when they are not train/ and test/ beside the label files (e.g. a resized copy)."""

    model_config = ConfigDict(extra="forbid")

    train_images: str | None = None
    test_images: str | None = None


def parse_image_name(name: str) -> tuple[str, Eye] | None:
    """(patient, eye) from an EyePACS image name such as '10_left' (an extension is ignored); None otherwise."""
    stem = name.strip()
    if Path(stem).suffix.lower() in (".jpeg", ".jpg", ".png", ".tif", ".tiff"):
        stem = Path(stem).stem
    match = _IMAGE_NAME.match(stem)
    if match is None:
        return None
    return match["patient"], Eye.LEFT if match["eye"].lower() == "left" else Eye.RIGHT


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per labelled image; patient and eye come from the image name, so both eyes stay together."""
    chosen = parse_options(EyePacsOptions, options.values, source, NAME)
    found = False
    for table_name, split in TABLES:
        table = root / table_name
        if not table.is_file():
            continue
        found = True
        wanted = option_dir(root, getattr(chosen, f"{split}_images"))
        folder = (
            wanted or first_dir([root / split, root / f"resized_{split}", root / f"{split}_images"]) or root / split
        )
        yield from guarded(source, _read_table(table, folder, source))
    if not found:
        names = " or ".join(name for name, _ in TABLES)
        yield quarantine(source, root, None, "labels_missing", f"{root}: no EyePACS label file ({names})")


def eye_image(
    source: str, table: Path, line: int, name: str, folder: Path, files: Mapping[str, Path]
) -> tuple[Path, str, Eye] | Quarantine:
    """The image named `{patient}_{left|right}` in `folder`, with its patient and eye; or why it is not there."""
    where = f"{table} line {line}"
    parsed = parse_image_name(name)
    if parsed is None:
        return quarantine(
            source, table, line, "name_unparsed", f"{where}: image {name!r} is not {{patient}}_{{left|right}}"
        )
    path = find_image(folder, name, files)
    if path is None:
        return quarantine(source, table, line, "image_missing", f"{where}: no image for {name!r} in {folder}")
    return path, *parsed


def _read_table(table: Path, folder: Path, source: str) -> Iterator[RawCase | Quarantine]:
    files = listing(folder)
    for line, row in read_csv_rows(table, required=("image", "level")):
        name, level = cell(row, "image"), number_label(cell(row, "level"))
        where = f"{table} line {line}"
        if not name or not level:
            yield quarantine(source, table, line, "row_incomplete", f"{where}: empty image or level")
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
            labels=[level],
            file=str(table),
            row=line,
        )


ADAPTER = Adapter(
    name=NAME,
    patient_namespace="eyepacs",
    title="EyePACS (Kaggle Diabetic Retinopathy Detection 2015)",
    layout=(
        "trainLabels.csv (image,level 0-4) + train/{patient}_{left|right}.jpeg; retinopathy_solution.csv "
        "(image,level,Usage Public/Private) + test/; options: train_images, test_images (other image folders)"
    ),
    licence="EyePACS via the Kaggle Diabetic Retinopathy Detection competition: competition rules, research use only",
    read=read,
    labels=DR_GRADES,
)
