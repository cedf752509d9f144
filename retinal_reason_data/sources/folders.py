"""Walking collection folders: image files and class folders, past the stray files real downloads carry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.sources.base import IMAGE_SUFFIXES

STRAY_FOLDERS = {"__macosx", ".ds_store", "@eadir", ".git"}


def is_stray(path: Path) -> bool:
    """Thumbs.db, .DS_Store, AppleDouble '._' copies, __MACOSX and other hidden entries."""
    name = path.name
    return name.startswith(".") or name.lower() in STRAY_FOLDERS or name.lower() == "thumbs.db"


def subfolders(folder: Path) -> list[Path]:
    """The folders directly in `folder`, stray ones skipped, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not is_stray(p)), key=lambda p: p.name)


def iter_images(folder: Path, recursive: bool = False) -> Iterator[Path]:
    """Image files in `folder` (and its subfolders when `recursive`), sorted, stray files skipped."""
    if not folder.is_dir():
        return
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
    for entry in entries:
        if is_stray(entry):
            continue
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            yield entry
    if recursive:
        for entry in entries:
            if entry.is_dir() and not is_stray(entry):
                yield from iter_images(entry, recursive=True)


def listing(folder: Path, recursive: bool = False) -> dict[str, Path]:
    """Lower-cased file name -> path for the images under `folder` (the first found wins)."""
    found: dict[str, Path] = {}
    for path in iter_images(folder, recursive):
        found.setdefault(path.name.lower(), path)
    return found
