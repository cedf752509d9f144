"""Finding a collection's label tables and image folders wherever the user's copy nests them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from retinal_reason_data.ingest.sources.folders import is_stray
from retinal_reason_data.ingest.sources.scope import trust


def first_dir(candidates: Iterable[Path]) -> Path | None:
    """The first of `candidates` that is a folder."""
    return next((path for path in candidates if path.is_dir()), None)


def first_file(candidates: Iterable[Path]) -> Path | None:
    """The first of `candidates` that is a file."""
    return next((path for path in candidates if path.is_file()), None)


def find_files(root: Path, pattern: str) -> list[Path]:
    """Files under `root` matching the glob `pattern` (case as given), sorted, with nothing from stray
    folders (__MACOSX, hidden) and no AppleDouble '._' copies."""
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob(pattern)
        if path.is_file()
        and not any(is_stray(part) for part in path.relative_to(root).parents if part.name)
        and not is_stray(path)
    )


def option_dir(root: Path, value: str | None) -> Path | None:
    """A folder named by a recipe option, relative to the collection root unless absolute. The recipe named it,
    so files under it are inside the source (`scope.trust`) wherever it is."""
    if not value:
        return None
    folder = Path(value) if Path(value).is_absolute() else root / value
    trust(folder)
    return folder
