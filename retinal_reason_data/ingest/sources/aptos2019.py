"""APTOS 2019 Blindness Detection: train.csv (id_code,diagnosis) and train_images/{id_code}.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import (
    Adapter,
    RawCase,
    RawImage,
    SourceOptions,
)
from retinal_reason_data.ingest.sources.labelled_rows import labelled_rows
from retinal_reason_data.schema import Modality, Quarantine


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per labelled row; APTOS has no patient ids, so each image is its own patient."""
    for entry in labelled_rows(source, root / "train.csv", root / "train_images", "id_code", "diagnosis"):
        if isinstance(entry, Quarantine):
            yield entry
            continue
        yield RawCase(
            local_id=entry.name,
            images=[RawImage(path=entry.path, modality=Modality.CFP)],
            labels=[entry.label],
            file=str(root / "train.csv"),
            row=entry.line,
        )


ADAPTER = Adapter(
    name="aptos2019",
    title="APTOS 2019 Blindness Detection",
    layout="train.csv (id_code,diagnosis 0-4); train_images/{id_code}.png",
    licence="APTOS 2019 competition data: Kaggle competition rules, non-commercial research use",
    read=read,
    labels={"0": "dr.none", "1": "dr.mild", "2": "dr.moderate", "3": "dr.severe", "4": "dr.proliferative"},
)
