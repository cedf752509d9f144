"""Chaksu: {Train,Test}/1.0_Original_Fundus_Images/{device}/ and the majority glaucoma decision per device."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.folders import listing, subfolders
from retinal_reason_data.ingest.sources.tabular import guarded, read_csv_rows
from retinal_reason_data.schema import Modality, Quarantine

DECISION_COLUMNS = ("Majority Decision", "Glaucoma Decision")  # the Test files of two devices say the latter
_IMAGE_NAME = re.compile(r"^(.+?\.(?:jpe?g|png|tiff?|bmp))(?:-|$)", re.IGNORECASE)


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per row of each device's majority-decision table, matched to that device's images."""
    splits = [folder for folder in subfolders(root) if folder.name.lower() in ("train", "test")]
    if not splits:
        yield quarantine(source, root, None, "labels_missing", f"{root}: no Train/ or Test/ folder")
        return
    for split_dir in splits:
        images_root = _child(split_dir, "1.0")
        decisions = _child(split_dir, "6.0")
        if images_root is None or decisions is None:
            yield quarantine(
                source,
                split_dir,
                None,
                "labels_missing",
                f"{split_dir}: expected 1.0_Original_Fundus_Images/ and 6.0_Glaucoma_Decision/",
            )
            continue
        for device_dir in subfolders(images_root):
            yield from guarded(source, _read_device(source, split_dir.name, device_dir, decisions))


def _read_device(source: str, split: str, device_dir: Path, decisions: Path) -> Iterator[RawCase | Quarantine]:
    device = device_dir.name
    wanted = f"glaucoma_decision_comparison_{device}_majority.csv".lower()
    table = next((p for p in sorted(decisions.iterdir()) if p.name.lower() == wanted), None)
    if table is None:
        yield quarantine(source, decisions, None, "labels_missing", f"{decisions}: no {wanted} for the {device} images")
        return
    files = listing(device_dir)
    for line, row in read_csv_rows(table, required=(DECISION_COLUMNS,)):
        image_cell = row.get("Images") or next(iter(row.values()), "")
        decision = next((row[c] for c in DECISION_COLUMNS if row.get(c)), "")
        if not image_cell or not decision:
            yield quarantine(
                source, table, line, "row_incomplete", f"{table} line {line}: empty Images or majority decision"
            )
            continue
        match = _IMAGE_NAME.match(image_cell)
        stem = Path(match[1] if match else image_cell).stem
        path = find_image(device_dir, stem, files)
        if path is None:
            yield quarantine(
                source, table, line, "image_missing", f"{table} line {line}: no image {stem} in {device_dir}"
            )
            continue
        yield RawCase(
            local_id=f"{split}/{device}/{path.stem}",
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=[decision],
            file=str(table),
            row=line,
        )


def _child(folder: Path, prefix: str) -> Path | None:
    return next((p for p in subfolders(folder) if p.name.startswith(prefix)), None)


ADAPTER = Adapter(
    name="chaksu",
    title="Chaksu (glaucoma-specific fundus images from three Indian cameras)",
    layout="{Train,Test}/1.0_Original_Fundus_Images/{Bosch,Forus,Remidio}/ (.JPG/.png/.jpg by camera); "
    "{split}/6.0_Glaucoma_Decision/Glaucoma_Decision_Comparison_{device}_majority.csv "
    "(Images, Expert.1-5, Majority Decision or Glaucoma Decision: NORMAL / GLAUCOMA SUSPECT)",
    licence="CC BY 4.0 (Kumar et al. 2023, figshare)",
    read=read,
    labels={"NORMAL": "glaucoma.none", "GLAUCOMA SUSPECT": "glaucoma.suspect", "GLAUCOMA SUSUPECT": "glaucoma.suspect"},
)
