"""Walking collection folders: image files and class folders, past the stray files real downloads carry."""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from retinal_reason_data.sources.base import IMAGE_SUFFIXES

STRAY_FOLDERS = {"__macosx", ".ds_store", "@eadir", ".git"}


def is_stray(path: Path) -> bool:
    """Thumbs.db, .DS_Store, AppleDouble '._' copies, __MACOSX and other hidden entries."""
    return _stray_name(path.name)


def _stray_name(name: str) -> bool:
    return name.startswith(".") or name.lower() in STRAY_FOLDERS or name.lower() == "thumbs.db"


def subfolders(folder: Path) -> list[Path]:
    """The folders directly in `folder`, stray ones skipped, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not is_stray(p)), key=lambda p: p.name)


def iter_images(folder: Path, recursive: bool = False) -> Iterator[Path]:
    """Image files in `folder` (and its subfolders when `recursive`), sorted, stray files skipped."""
    if folder.is_dir():
        yield from (folder / name for name in _image_names(folder, recursive))


def _image_names(folder: Path, recursive: bool, prefix: str = "") -> Iterator[str]:
    """What `iter_images` yields, as names relative to the first folder: only names are held while sorting."""
    files, folders = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if _stray_name(entry.name):
                continue
            if entry.is_file():
                if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    files.append(entry.name)
            elif recursive and entry.is_dir():
                folders.append(entry.name)
    yield from (prefix + name for name in sorted(files))
    for name in sorted(folders):
        yield from _image_names(folder / name, True, f"{prefix}{name}/")


def listing(folder: Path, recursive: bool = False) -> ImageListing:
    """Lower-cased file name -> path for the images under `folder` (the first found wins)."""
    return ImageListing(folder, _image_names(folder, recursive) if folder.is_dir() else ())


class ImageListing(Mapping[str, Path]):
    """Lower-cased file name -> path, as a dict would hold it, in about 35 bytes a file instead of 460 (100k
    Paths took 44 MB): the names relative to the folder in one byte string, found through a sorted array of
    64-bit hashes of their keys, each match checked against the name itself."""

    def __init__(self, folder: Path, names: Iterable[str]) -> None:
        self.folder = folder
        blob, offsets, hashes = bytearray(), array("q", [0]), array("q")
        for name in names:
            blob += name.encode()
            offsets.append(len(blob))
            hashes.append(_hash(_key(name)))
        self._blob = bytes(blob)
        self._offsets = np.array(offsets, dtype=np.int64)
        keys = np.array(hashes, dtype=np.int64)
        order = np.argsort(keys, kind="stable")  # equal hashes stay in listing order: the first found wins
        self._hashes, self._order = keys[order], order.astype(np.uint32)
        self._kept = np.ones(len(order), dtype=bool)
        for at in np.flatnonzero(self._hashes[1:] == self._hashes[:-1]) + 1:
            index = int(self._order[at])
            self._kept[index] = self._find(self._key_at(index)) == index

    def __getitem__(self, key: str) -> Path:
        index = self._find(key)
        if index is None:
            raise KeyError(key)
        return self.folder / self._name(index)

    def __iter__(self) -> Iterator[str]:
        return (self._key_at(index) for index in range(len(self._kept)) if self._kept[index])

    def __len__(self) -> int:
        return int(self._kept.sum())

    def _find(self, key: str) -> int | None:
        """The listing position of the first file whose key is `key`."""
        digest = _hash(key)
        at = int(np.searchsorted(self._hashes, digest))
        while at < len(self._hashes) and self._hashes[at] == digest:
            index = int(self._order[at])
            if self._key_at(index) == key:
                return index
            at += 1
        return None

    def _name(self, index: int) -> str:
        return self._blob[self._offsets[index] : self._offsets[index + 1]].decode()

    def _key_at(self, index: int) -> str:
        return _key(self._name(index))


def _key(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little", signed=True)
