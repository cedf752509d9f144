"""APTOS 2019 Blindness Detection: train.csv (id_code,diagnosis) and train_images/{id_code}.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.phantoms.layouts import write_aptos2019
from retinal_reason_data.schema import Modality, Quarantine
from retinal_reason_data.sources.base import (
    Adapter,
    RawCase,
    RawImage,
    SourceOptions,
    find_image,
    image_listing,
    quarantine,
)
from retinal_reason_data.sources.tabular import read_csv_rows


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per labelled row; APTOS has no patient ids, so each image is its own patient."""
    labels = root / "train.csv"
    if not labels.is_file():
        yield quarantine(source, labels, None, "labels_missing", f"{labels}: APTOS label file not found")
        return
    images = root / "train_images"
    listing = image_listing(images)
    for line, row in read_csv_rows(labels):
        id_code, grade = row.get("id_code", ""), row.get("diagnosis", "")
        if not id_code or not grade:
            yield quarantine(
                source, labels, line, "row_incomplete", f"{labels} line {line}: empty id_code or diagnosis"
            )
            continue
        path = find_image(images, id_code, listing)
        if path is None:
            yield quarantine(
                source,
                labels,
                line,
                "image_missing",
                f"{labels} line {line}: no image for id_code {id_code!r} in {images}",
            )
            continue
        yield RawCase(
            local_id=id_code,
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=[grade],
            file=str(labels),
            row=line,
        )


ADAPTER = Adapter(
    name="aptos2019",
    title="APTOS 2019 Blindness Detection",
    layout="train.csv (id_code,diagnosis 0-4); train_images/{id_code}.png",
    licence="APTOS 2019 competition data: Kaggle competition rules, non-commercial research use",
    read=read,
    labels={"0": "dr.none", "1": "dr.mild", "2": "dr.moderate", "3": "dr.severe", "4": "dr.proliferative"},
    write_phantom=write_aptos2019,
)
