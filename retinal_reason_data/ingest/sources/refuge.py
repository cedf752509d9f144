"""REFUGE / REFUGE2: {split}/Images/ and {split}/index.json (ImgName, Fovea_X, Fovea_Y, Size_X, Size_Y, Label)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.folders import listing, subfolders
from retinal_reason_data.ingest.sources.text_files import read_text
from retinal_reason_data.schema import Modality, Quarantine

_PREFIX = re.compile(r"^([gn])\d", re.IGNORECASE)
_PREFIX_LABEL = {"g": "1", "n": "0"}


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per image of every split; the label comes from index.json, or from the g/n prefix of
    the file name (training images), and a record whose two disagree is refused."""
    splits = [
        folder for folder in subfolders(root) if (folder / "index.json").is_file() or (folder / "Images").is_dir()
    ]
    if not splits:
        yield quarantine(source, root, None, "labels_missing", f"{root}: no {{split}}/index.json or {{split}}/Images/")
        return
    for split_dir in splits:
        yield from _read_split(split_dir, source)


def _read_split(split_dir: Path, source: str) -> Iterator[RawCase | Quarantine]:
    split = split_dir.name
    images_dir = split_dir / "Images" if (split_dir / "Images").is_dir() else split_dir
    files = listing(images_dir, recursive=True)  # REFUGE 1 keeps Glaucoma/ and Non-Glaucoma/ subfolders
    index_path = split_dir / "index.json"
    listed: set[str] = set()
    if index_path.is_file():
        try:
            records = _records(json.loads(read_text(index_path)))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            yield quarantine(source, index_path, None, "labels_unreadable", f"{index_path}: {exc}")
            records = []
        for key, record in records:
            name = str(record.get("ImgName") or "").strip()
            if not name:
                yield quarantine(source, index_path, key, "row_incomplete", f"{index_path} record {key}: no ImgName")
                continue
            listed.add(name.lower())
            path = find_image(images_dir, name, files)
            if path is None:
                yield quarantine(
                    source, index_path, key, "image_missing", f"{index_path} record {key}: {name} not in {images_dir}"
                )
                continue
            listed.add(path.name.lower())
            label = number_label(record.get("Label"))
            prefix = _PREFIX.match(path.stem)
            if label and prefix and label in _PREFIX_LABEL.values() and label != _PREFIX_LABEL[prefix[1].lower()]:
                yield quarantine(
                    source,
                    index_path,
                    key,
                    "label_conflict",
                    f"{index_path} record {key}: Label {label} contradicts the '{prefix[1]}' prefix of {name}",
                )
                continue
            if not label and prefix:
                label = prefix[1].lower()
            if not label:
                yield quarantine(source, index_path, key, "label_missing", f"{index_path} record {key}: no Label")
                continue
            yield _case(split, path, label, index_path, key)
    for name, path in sorted(files.items()):
        if name in listed:
            continue
        prefix = _PREFIX.match(path.stem)
        if prefix:
            yield _case(split, path, prefix[1].lower(), path, None)
        else:
            yield quarantine(
                source, path, None, "label_missing", f"{path}: not in {index_path} and no g/n prefix to label it"
            )


def _case(split: str, path: Path, label: str, file: Path, row: str | None) -> RawCase:
    return RawCase(
        local_id=f"{split}/{path.stem}",
        images=[RawImage(path=path, modality=Modality.CFP)],
        labels=[label],
        file=str(file),
        row=row,
    )


def _records(data: Any) -> list[tuple[str, dict[str, Any]]]:
    """(key, record) pairs from the shapes index.json comes in: {"0": {...}}, [{...}], or pandas columns."""
    if isinstance(data, list):
        return [(str(i), r) for i, r in enumerate(data) if isinstance(r, dict)]
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object or array, got {type(data).__name__}")
    if "ImgName" in data and isinstance(data["ImgName"], dict):  # column-oriented (pandas to_json default)
        keys = list(data["ImgName"])
        return [(str(k), {column: values.get(k) for column, values in data.items()}) for k in keys]
    return [(str(k), r) for k, r in data.items() if isinstance(r, dict)]


ADAPTER = Adapter(
    name="refuge",
    title="REFUGE / REFUGE2 (Retinal Fundus Glaucoma Challenge)",
    layout="{train,val,test}/Images/*.jpg; {split}/index.json {'0': {ImgName, Fovea_X, Fovea_Y, Size_X, Size_Y, "
    "Label 0/1}}; training images g*.jpg (glaucoma) / n*.jpg (not) are labelled by prefix when unlisted",
    licence="REFUGE challenge data: research use under the challenge terms; cite Orlando et al. 2020",
    read=read,
    labels={"1": "glaucoma", "0": "glaucoma.none", "g": "glaucoma", "n": "glaucoma.none"},
)
