"""G1020: G1020.csv (imageID, binaryLabels 0/1) and Images/image_0.jpg (annotation .json files beside)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.labelled_rows import labelled_rows
from retinal_reason_data.schema import Modality, Quarantine


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per row; G1020's table has no patient or eye, so each image is its own patient."""
    for entry in labelled_rows(source, root / "G1020.csv", root / "Images", "imageID", "binaryLabels", number_label):
        if isinstance(entry, Quarantine):
            yield entry
            continue
        yield RawCase(
            local_id=Path(entry.name).stem,
            images=[RawImage(path=entry.path, modality=Modality.CFP)],
            labels=[entry.label],
            file=str(root / "G1020.csv"),
            row=entry.line,
        )


ADAPTER = Adapter(
    name="g1020",
    title="G1020 (glaucoma fundus images)",
    layout="G1020.csv (imageID, binaryLabels 0/1); Images/image_0.jpg",
    licence="G1020: research use; cite Bajwa et al. 2020 (check the distributor's terms)",
    read=read,
    labels={"1": "glaucoma", "0": "glaucoma.none"},
)
