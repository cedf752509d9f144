"""What every adapter yields, and the registry that `rrd sources` lists."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.ingest.file_names import legacy_key
from retinal_reason_data.schema import ClinicalContext, Eye, Modality, Quarantine, Sex


class RawImage(BaseModel):
    """An image file named by a collection, not yet opened."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    modality: Modality
    caption: str | None = None


class RawCase(BaseModel):
    """One case as an adapter read it: raw labels, raw patient id, image paths, provenance."""

    model_config = ConfigDict(extra="forbid")

    local_id: str
    raw_patient_id: str | None = Field(default=None, description="None: each case is its own patient.")
    eye: Eye = Eye.UNKNOWN
    age: int | None = None
    sex: Sex = Sex.UNKNOWN
    images: list[RawImage]
    labels: list[str] = Field(default_factory=list, description="Raw labels, mapped by the ontology.")
    gradable: bool | None = Field(default=None, description="The collection's own gradability label, if any.")
    context: ClinicalContext = Field(default_factory=ClinicalContext)
    file: str
    row: int | str | None = None
    licence: str | None = Field(default=None, description="This case's own licence (per article); else the source's.")


class SourceOptions(BaseModel):
    """What an adapter gets besides its root: the recipe's adapter-specific `options`, and a folder of
    its own for anything it must write (e.g. images extracted from a JSON release); the collection itself
    is never modified."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    work_dir: Path
    values: dict[str, Any] = Field(default_factory=dict)
    allow_outside_root: bool = Field(
        default=False, description="The recipe lets the source read files outside its root (paths with '..', absolute)."
    )

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


Reader = Callable[[Path, str, SourceOptions], Iterator[RawCase | Quarantine]]


@dataclass(frozen=True)
class Adapter:
    """A collection layout: how to read it, what it expects on disk, its licence, its label table."""

    name: str
    title: str
    layout: str
    licence: str
    read: Reader
    labels: Mapping[str, str] = field(default_factory=dict)  # raw label -> ontology code
    # Collections re-released over the same people (EyeQ over EyePACS) share a patient namespace, so one
    # person gets one pseudonym and lands in one split; None: the source's own name.
    patient_namespace: str | None = None


def quarantine(source: str, file: Path | str, row: int | str | None, reason: str, detail: str) -> Quarantine:
    """A refused input with the file, the row and what was wrong."""
    return Quarantine(source=source, file=str(file), row=row, reason=reason, detail=detail)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def find_image(folder: Path, stem: str, listing: Mapping[str, Path] | None = None) -> Path | None:
    """The file for `stem` in `folder` whatever the case of its extension (labels and disks disagree)."""
    if listing is None:
        listing = image_listing(folder)
    stem_key = stem.strip().lower()
    if Path(stem_key).suffix in IMAGE_SUFFIXES:
        found = listing.get(stem_key)
        if found:
            return found
        stem_key = Path(stem_key).stem
    for suffix in IMAGE_SUFFIXES:
        found = listing.get(stem_key + suffix)
        if found:
            return found
    return None


def image_listing(folder: Path) -> dict[str, Path]:
    """Lower-cased file name -> path for the image files directly in `folder` (stray files skipped). Links to image
    files are listed even when they dangle or loop (intake refuses them with the reason); a name that is not UTF-8
    is also listed under its Windows-1252 reading (`file_names.legacy_key`)."""
    from retinal_reason_data.ingest.sources.folders import iter_images  # folders imports this module

    found: dict[str, Path] = {}
    for path in iter_images(folder):
        if path.name.startswith("._"):
            continue
        found.setdefault(path.name.lower(), path)
        alias = legacy_key(path.name)
        if alias is not None:
            found.setdefault(alias, path)
    return found
