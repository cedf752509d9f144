"""Generic image folders: one folder per class (RETFound's {train,val,test}/<class>/ too); the recipe maps
folder names to ontology codes in the source's `labels`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.fields import parse_eye
from retinal_reason_data.ingest.sources.folders import iter_images, subfolders
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.schema import Eye, Modality, Quarantine

SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "dev", "test", "testing"}


def modality_value(value: object) -> object:
    """'cfp', 'Fundus', 'oct', 'ffa', 'angiography' -> the Modality they mean; anything else is left as is."""
    if not isinstance(value, str):
        return value
    key = value.strip().lower()
    aliases = {
        "cfp": "CFP",
        "fundus": "CFP",
        "colour fundus": "CFP",
        "color fundus": "CFP",
        "oct": "OCT",
        "ffa": "FFA",
        "fa": "FFA",
        "angiography": "FFA",
        "fluorescein angiography": "FFA",
        "other": "other",
    }
    return aliases.get(key, value)


def _pattern(value: str | None, group: str) -> str | None:
    if value is None:
        return None
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if group not in compiled.groupindex:
        raise ValueError(f"needs a named group (?P<{group}>...)")
    return value


class ImageFolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: Modality = Field(description="CFP, OCT, FFA or other: what every image in the folders is.")
    splits: list[str] | None = Field(
        default=None,
        description="Split folders holding the class folders, e.g. [train, val, test]; by default they are used "
        "when every top folder is named like a split.",
    )
    recursive: bool = Field(default=False, description="Also take images in subfolders of a class folder.")
    patient_pattern: str | None = Field(default=None, description="Regex with (?P<patient>...) on the file name.")
    eye_pattern: str | None = Field(default=None, description="Regex with (?P<eye>...) on the file name (OD/OS/R/L).")

    @field_validator("modality", mode="before")
    @classmethod
    def _modality_alias(cls, value: object) -> object:
        return modality_value(value)

    @field_validator("patient_pattern")
    @classmethod
    def _patient_group(cls, value: str | None) -> str | None:
        return _pattern(value, "patient")

    @field_validator("eye_pattern")
    @classmethod
    def _eye_group(cls, value: str | None) -> str | None:
        return _pattern(value, "eye")


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per image; its label is the name of the class folder it sits in."""
    settings = parse_options(ImageFolderOptions, options.values, source, "image_folder")
    yield from read_class_folders(
        root,
        source,
        settings.modality,
        splits=settings.splits,
        recursive=settings.recursive,
        patient_pattern=settings.patient_pattern,
        eye_pattern=settings.eye_pattern,
    )


def read_class_folders(
    root: Path,
    source: str,
    modality: Modality,
    splits: list[str] | None = None,
    recursive: bool = False,
    patient_pattern: str | None = None,
    eye_pattern: str | None = None,
) -> Iterator[RawCase | Quarantine]:
    """Cases from <root>/[<split>/]<class>/<image>: the class folder's name is the raw label."""
    top = subfolders(root)
    if splits is None and top and all(folder.name.lower() in SPLIT_NAMES for folder in top):
        splits = [folder.name for folder in top]
    bases: list[Path] = []
    if splits is None:
        bases = [root]
    else:
        for split in splits:
            if (root / split).is_dir():
                bases.append(root / split)
            else:
                yield quarantine(
                    source, root / split, None, "folder_missing", f"{root / split}: split folder not found"
                )
    patient_re = re.compile(patient_pattern) if patient_pattern else None
    eye_re = re.compile(eye_pattern) if eye_pattern else None
    found = False
    for base in bases:
        for loose in iter_images(base):
            yield quarantine(source, loose, None, "label_missing", f"{loose}: image outside any class folder")
        for class_dir in subfolders(base):
            for path in iter_images(class_dir, recursive=recursive):
                found = True
                yield RawCase(
                    local_id=path.relative_to(root).as_posix(),
                    raw_patient_id=_group(patient_re, path.name, "patient"),
                    eye=parse_eye(_group(eye_re, path.name, "eye")) if eye_re else Eye.UNKNOWN,
                    images=[RawImage(path=path, modality=modality)],
                    labels=[class_dir.name],
                    file=str(path),
                )
    if not found and bases:
        yield quarantine(source, root, None, "labels_missing", f"{root}: no images in class folders")


def _group(pattern: re.Pattern[str] | None, name: str, group: str) -> str | None:
    if pattern is None:
        return None
    match = pattern.search(name)
    return match[group] if match and match[group] else None


ADAPTER = Adapter(
    name="image_folder",
    title="Image folders, one folder per class (generic; RETFound layout included)",
    layout="[<split>/]<class>/<image>; the recipe's `labels` maps folder names to ontology codes (an unmapped "
    "name is reported as unknown_label). options: modality (CFP|OCT|FFA|other, required); splits (list of "
    "split folders, default: the top folders when all are named like train/val/test); recursive (bool, "
    "images in subfolders of a class folder); patient_pattern / eye_pattern (regex with (?P<patient>...) / "
    "(?P<eye>...) searched in the file name)",
    licence="as the collection's own licence: set `licence` on the source in the recipe",
    read=read,
)
