"""G1020: G1020.csv (imageID, binaryLabels 0/1) and Images/image_0.jpg (annotation .json files beside)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.phantoms.layouts_other import write_g1020
from retinal_reason_data.schema import Modality, Quarantine
from retinal_reason_data.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.sources.fields import number_label
from retinal_reason_data.sources.folders import listing
from retinal_reason_data.sources.tabular import read_csv_rows


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per row; G1020's table has no patient or eye, so each image is its own patient."""
    labels = root / "G1020.csv"
    if not labels.is_file():
        yield quarantine(source, labels, None, "labels_missing", f"{labels}: G1020 label file not found")
        return
    images = root / "Images"
    files = listing(images)
    for line, row in read_csv_rows(labels):
        name, label = row.get("imageID", ""), number_label(row.get("binaryLabels", ""))
        if not name or not label:
            yield quarantine(
                source, labels, line, "row_incomplete", f"{labels} line {line}: empty imageID or binaryLabels"
            )
            continue
        path = find_image(images, name, files)
        if path is None:
            yield quarantine(source, labels, line, "image_missing", f"{labels} line {line}: {name} not in {images}")
            continue
        yield RawCase(
            local_id=Path(name).stem,
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=[label],
            file=str(labels),
            row=line,
        )


ADAPTER = Adapter(
    name="g1020",
    title="G1020 (glaucoma fundus images)",
    layout="G1020.csv (imageID, binaryLabels 0/1); Images/image_0.jpg",
    licence="G1020: research use; cite Bajwa et al. 2020 (check the distributor's terms)",
    read=read,
    labels={"1": "glaucoma", "0": "glaucoma.none"},
    write_phantom=write_g1020,
)
