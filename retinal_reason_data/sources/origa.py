"""ORIGA: OrigaList.csv (Filename, Glaucoma 0/1, often Eye OD/OS) and Images/001.jpg."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.phantoms.layouts_other import write_origa
from retinal_reason_data.schema import Modality, Quarantine
from retinal_reason_data.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.sources.fields import number_label, parse_eye
from retinal_reason_data.sources.folders import listing
from retinal_reason_data.sources.tabular import read_csv_rows


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per listed image; ORIGA has no patient ids, so each image is its own patient."""
    labels = root / "OrigaList.csv"
    if not labels.is_file():
        yield quarantine(source, labels, None, "labels_missing", f"{labels}: ORIGA list not found")
        return
    images = root / "Images"
    files = listing(images)
    for line, row in read_csv_rows(labels):
        name, label = row.get("Filename", ""), number_label(row.get("Glaucoma", ""))
        if not name or not label:
            yield quarantine(
                source, labels, line, "row_incomplete", f"{labels} line {line}: empty Filename or Glaucoma"
            )
            continue
        path = find_image(images, name, files)
        if path is None:
            yield quarantine(source, labels, line, "image_missing", f"{labels} line {line}: {name} not in {images}")
            continue
        yield RawCase(
            local_id=Path(name).stem,
            eye=parse_eye(row.get("Eye")),
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=[label],
            file=str(labels),
            row=line,
        )


ADAPTER = Adapter(
    name="origa",
    title="ORIGA (Online Retinal fundus Image database for Glaucoma Analysis)",
    layout="OrigaList.csv (Filename, Glaucoma 0/1; Eye OD/OS when present); Images/001.jpg",
    licence="ORIGA: research use as granted by the Singapore Eye Research Institute; cite Zhang et al. 2010",
    read=read,
    labels={"1": "glaucoma", "0": "glaucoma.none"},
    write_phantom=write_origa,
)
