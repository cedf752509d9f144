"""DDR (OIA-DDR, Li et al. 2019) DR grading: `DR_grading/{train,valid,test}.txt` with lines
`007-0004-000.jpg 0` and the images in `DR_grading/{split}/`.

Grades 0-4 are ICDR grades and the image is gradable; 5 marks an ungradable image (gradable False, no
grade finding). DDR's file names carry no documented patient id, so each image is its own patient.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.eyepacs import DR_GRADES
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.locate import first_dir
from retinal_reason_data.ingest.sources.text_files import open_text
from retinal_reason_data.schema import Modality, Quarantine

NAME = "ddr"
SPLITS = ("train", "valid", "test")
UNGRADABLE = "5"


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per listed image of each split; the lists are read line by line."""
    base = first_dir([root / "DR_grading", root / "DDR-dataset" / "DR_grading"]) or root
    found = False
    for split in SPLITS:
        table = base / f"{split}.txt"
        if table.is_file():
            found = True
            yield from _read_list(table, base / split, split, source)
    if not found:
        yield quarantine(
            source, base, None, "labels_missing", f"{base}: no DR_grading train.txt, valid.txt or test.txt"
        )


def _read_list(table: Path, folder: Path, split: str, source: str) -> Iterator[RawCase | Quarantine]:
    files = listing(folder)
    with open_text(table) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            parts = text.strip().rsplit(maxsplit=1)
            where = f"{table} line {line}"
            if len(parts) < 2:
                yield quarantine(source, table, line, "row_incomplete", f"{where}: expected '<image> <grade>'")
                continue
            name, grade = parts[0], number_label(parts[1])
            path = find_image(folder, name, files)
            if path is None:
                yield quarantine(source, table, line, "image_missing", f"{where}: no image {name!r} in {folder}")
                continue
            ungradable = grade == UNGRADABLE
            yield RawCase(
                local_id=f"{split}/{Path(name).stem}",
                images=[RawImage(path=path, modality=Modality.CFP)],
                labels=[] if ungradable else [grade],
                gradable=not ungradable,
                file=str(table),
                row=line,
            )


ADAPTER = Adapter(
    name=NAME,
    title="DDR (OIA-DDR) diabetic retinopathy grading",
    layout="DR_grading/{train,valid,test}.txt (lines '<image> <grade 0-4, 5 ungradable>') + DR_grading/{split}/*.jpg",
    licence="DDR (Li et al. 2019, Nankai University): research use; check the terms of the copy you downloaded",
    read=read,
    labels=DR_GRADES,
)
