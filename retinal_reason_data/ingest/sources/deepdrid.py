"""DeepDRiD regular fundus images (Liu et al. 2022): one label table per split folder
(`patient_id,image_id,image_path,...,left_eye_DR_Level,right_eye_DR_Level,patient_DR_Level,...`) and
`Images/{patient}/{patient}_{l|r}{n}.jpg`.

The eye comes from the image id (`347_l1`: patient 347, left eye, first image) and the grade from that
eye's column. Level 5 marks an ungradable image: gradable False, no grade finding. The ultra-widefield
images are another modality and are not read; any other table with an `image_id` column but no per-eye
levels is reported (labels_unrecognised) rather than skipped in silence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.eyepacs import DR_GRADES
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.locate import find_files
from retinal_reason_data.ingest.sources.tabular import cell, guarded, read_csv_rows
from retinal_reason_data.ingest.sources.text_files import open_text
from retinal_reason_data.schema import Eye, Modality, Quarantine

NAME = "deepdrid"
UNGRADABLE = "5"
LEVELS = {Eye.LEFT: "left_eye_DR_Level", Eye.RIGHT: "right_eye_DR_Level"}
_IMAGE_ID = re.compile(r"^(?P<patient>\d+)_(?P<eye>[lr])(?P<index>\d+)$", re.IGNORECASE)


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per image row of every regular-fundus label table under `root`."""
    tables = [path for path in find_files(root, "*.csv") if "ultra-widefield" not in path.as_posix().lower()]
    found = False
    for table in tables:
        with open_text(table) as handle:
            header = {name.strip() for name in handle.readline().split(",")}
        if "image_id" not in header:
            continue
        if not set(LEVELS.values()) <= header:
            detail = f"{table}: has image_id but no left_eye_DR_Level/right_eye_DR_Level columns; not read"
            yield quarantine(source, table, 1, "labels_unrecognised", detail)
            continue
        found = True
        yield from guarded(source, _read_table(table, source))
    if not found:
        yield quarantine(source, root, None, "labels_missing", f"{root}: no DeepDRiD regular-fundus label table")


def _read_table(table: Path, source: str) -> Iterator[RawCase | Quarantine]:
    split = table.parent.name
    for line, row in read_csv_rows(table, required=("image_id",)):
        image_id = Path(cell(row, "image_id")).stem
        where = f"{table} line {line}"
        match = _IMAGE_ID.match(image_id)
        if match is None:
            detail = f"{where}: image_id {image_id!r} is not {{patient}}_{{l|r}}{{n}}"
            yield quarantine(source, table, line, "name_unparsed", detail)
            continue
        eye = Eye.LEFT if match["eye"].lower() == "l" else Eye.RIGHT
        patient = number_label(cell(row, "patient_id")) or match["patient"]
        level = number_label(cell(row, LEVELS[eye]))
        if not level:
            yield quarantine(source, table, line, "row_incomplete", f"{where}: {LEVELS[eye]} is empty for {image_id}")
            continue
        path = _image(table, patient, image_id, cell(row, "image_path"))
        if path is None:
            yield quarantine(source, table, line, "image_missing", f"{where}: no image for {image_id!r}")
            continue
        ungradable = level == UNGRADABLE
        yield RawCase(
            local_id=f"{split}/{image_id}",
            raw_patient_id=patient,
            eye=eye,
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=[] if ungradable else [level],
            gradable=not ungradable,
            file=str(table),
            row=line,
        )


def _image(table: Path, patient: str, image_id: str, image_path: str) -> Path | None:
    """Images/{patient}/{image_id}.jpg beside the table, else the table's own (Windows) image_path."""
    folder = table.parent / "Images" / patient
    found = find_image(folder, image_id, listing(folder))
    if found is None and image_path:
        parts = PureWindowsPath(image_path).parts
        if table.parent.name in parts:
            candidate = table.parent.joinpath(*parts[parts.index(table.parent.name) + 1 :])
            found = find_image(candidate.parent, candidate.name, listing(candidate.parent))
    return found


ADAPTER = Adapter(
    name=NAME,
    title="DeepDRiD regular fundus images (Deep Diabetic Retinopathy Image Dataset)",
    layout=(
        "regular_fundus_images/{regular-fundus-training,regular-fundus-validation,...}/*.csv (patient_id,image_id,"
        "left_eye_DR_Level,right_eye_DR_Level,patient_DR_Level; 5 ungradable) + Images/{patient}/{patient}_{l|r}{n}.jpg"
    ),
    licence="DeepDRiD: CC BY 4.0 (Liu et al. 2022, Patterns)",
    read=read,
    labels=DR_GRADES,
)
