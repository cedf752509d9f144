"""Walking collection folders: image files and class folders, past the stray files real downloads carry."""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from retinal_reason_data.ingest.file_names import display, legacy_key, name_bytes
from retinal_reason_data.ingest.sources.base import IMAGE_SUFFIXES
from retinal_reason_data.ingest.sources.scope import note

STRAY_FOLDERS = {"__macosx", ".ds_store", "@eadir", ".git"}


def is_stray(path: Path) -> bool:
    """Thumbs.db, .DS_Store, AppleDouble '._' copies, __MACOSX and other hidden entries."""
    return _stray_name(path.name)


def _stray_name(name: str) -> bool:
    return name.startswith(".") or name.lower() in STRAY_FOLDERS or name.lower() == "thumbs.db"


def subfolders(folder: Path) -> list[Path]:
    """The folders directly in `folder`, stray ones skipped, sorted by name; a link back to `folder` or a folder
    above it, and a folder that cannot be listed, are skipped and noted (`scope.note`)."""
    if not folder.is_dir():
        return []
    above = _real_chain(folder)
    found = []
    for entry in _entries(folder):
        if _stray_name(entry.name):
            continue
        kind = _kind(entry)
        if kind == "dir" and not (entry.is_symlink() and _loops(entry, above)):
            found.append(Path(entry.path))
    return sorted(found, key=lambda p: name_bytes(p.name))


def iter_images(folder: Path, recursive: bool = False) -> Iterator[Path]:
    """Image files in `folder` (and its subfolders when `recursive`), sorted, stray files skipped. Whatever is
    named like an image is included, even a link that loops or dangles, a FIFO or (not `recursive`) a folder:
    intake refuses those with the reason. Links to folders are followed unless they lead back to a folder being
    walked (noted, not followed)."""
    if folder.is_dir():
        yield from (folder / name for name in _image_names(folder, recursive))


def _image_names(
    folder: Path, recursive: bool, prefix: str = "", above: frozenset[tuple[int, int]] | None = None
) -> Iterator[str]:
    """What `iter_images` yields, as names relative to the first folder: only names are held while sorting.
    `above`: the identities of the folders being walked (a link to one of them is a loop)."""
    if recursive and above is None:
        above = _real_chain(folder)
    files, folders = [], []
    for entry in _entries(folder):
        if _stray_name(entry.name):
            continue
        kind = _kind(entry)
        image_name = os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
        if kind in ("file", "link", "other") or (kind == "dir" and image_name and not recursive):
            if image_name:  # a FIFO or a folder named like an image is listed: intake says what it is
                files.append(entry.name)
        elif kind == "dir" and recursive:
            identity = _identity(entry.path)
            if identity is None or identity in (above or ()):
                _note_loop(entry)
            else:
                folders.append((entry.name, identity))
    yield from (prefix + name for name in sorted(files, key=name_bytes))
    for name, identity in sorted(folders, key=lambda pair: name_bytes(pair[0])):
        yield from _image_names(folder / name, True, f"{prefix}{name}/", (above or frozenset()) | {identity})


def _entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The entries of `folder`, streamed; one that cannot be listed (permissions) is noted and gives none."""
    try:
        with os.scandir(folder) as entries:
            yield from entries
    except OSError as exc:
        note(folder, "folder_unreadable", f"{display(folder)}: cannot list the folder: {exc.strerror}")


def _kind(entry: os.DirEntry[str]) -> str:
    """'file', 'dir', 'link' (a link to nothing usable: it dangles or loops) or 'other' (a FIFO, a socket)."""
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
    except OSError:  # ELOOP: a link that leads to itself
        return "link"
    return "link" if entry.is_symlink() else "other"


def _loops(entry: os.DirEntry[str], above: frozenset[tuple[int, int]]) -> bool:
    identity = _identity(entry.path)
    if identity is None or identity in above:
        _note_loop(entry)
        return True
    return False


def _note_loop(entry: os.DirEntry[str]) -> None:
    try:
        target = os.readlink(entry.path)
    except OSError:
        target = "?"
    note(
        entry.path,
        "link_loop",
        f"{display(entry.path)}: link to {display(target)} leads back to a folder being read (a loop); not followed",
    )


def _identity(path: str | Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _real_chain(folder: Path) -> frozenset[tuple[int, int]]:
    """The identities of `folder` and every folder above it: a link to any of them is a loop."""
    chain = set()
    for path in (Path(os.path.realpath(folder)), *Path(os.path.realpath(folder)).parents):
        identity = _identity(path)
        if identity is not None:
            chain.add(identity)
    return frozenset(chain)


def listing(folder: Path, recursive: bool = False) -> ImageListing:
    """Lower-cased file name -> path for the images under `folder` (the first found wins)."""
    return ImageListing(folder, _image_names(folder, recursive) if folder.is_dir() else ())


class ImageListing(Mapping[str, Path]):
    """Lower-cased file name -> path, as a dict would hold it, in about 35 bytes a file instead of 460 (100k
    Paths took 44 MB): the names relative to the folder in one byte string, found through a sorted array of
    64-bit hashes of their keys, each match checked against the name itself."""

    def __init__(self, folder: Path, names: Iterable[str]) -> None:
        import numpy as np  # here, not at the top: listing the adapters (`rrd sources`) needs no numpy

        self.folder = folder
        blob, offsets, hashes = bytearray(), array("q", [0]), array("q")
        self._legacy: dict[str, int] = {}  # names that are not UTF-8, under their Windows-1252 reading (rare)
        for name in names:
            blob += name_bytes(name)
            offsets.append(len(blob))
            hashes.append(_hash(_key(name)))
            alias = legacy_key(_key(name))
            if alias is not None:
                self._legacy.setdefault(alias, len(offsets) - 2)
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
            index = self._legacy.get(key)
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
        at = int(self._hashes.searchsorted(digest))
        while at < len(self._hashes) and self._hashes[at] == digest:
            index = int(self._order[at])
            if self._key_at(index) == key:
                return index
            at += 1
        return None

    def _name(self, index: int) -> str:
        return os.fsdecode(self._blob[self._offsets[index] : self._offsets[index + 1]])

    def _key_at(self, index: int) -> str:
        return _key(self._name(index))


def _key(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(name_bytes(key), digest_size=8).digest(), "little", signed=True)
