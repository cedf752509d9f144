"""ORIGA: OrigaList.csv (Filename, Glaucoma 0/1, often Eye OD/OS) and Images/001.jpg."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions
from retinal_reason_data.ingest.sources.fields import number_label, parse_eye
from retinal_reason_data.ingest.sources.labelled_rows import labelled_rows
from retinal_reason_data.schema import Modality, Quarantine


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per listed image; ORIGA has no patient ids, so each image is its own patient."""
    for entry in labelled_rows(source, root / "OrigaList.csv", root / "Images", "Filename", "Glaucoma", number_label):
        if isinstance(entry, Quarantine):
            yield entry
            continue
        yield RawCase(
            local_id=Path(entry.name).stem,
            eye=parse_eye(entry.row.get("Eye")),
            images=[RawImage(path=entry.path, modality=Modality.CFP)],
            labels=[entry.label],
            file=str(root / "OrigaList.csv"),
            row=entry.line,
        )


ADAPTER = Adapter(
    name="origa",
    title="ORIGA (Online Retinal fundus Image database for Glaucoma Analysis)",
    layout="OrigaList.csv (Filename, Glaucoma 0/1; Eye OD/OS when present); Images/001.jpg",
    licence="ORIGA: research use as granted by the Singapore Eye Research Institute; cite Zhang et al. 2010",
    read=read,
    labels={"1": "glaucoma", "0": "glaucoma.none"},
)
