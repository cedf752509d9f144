"""File names as the disk holds them: bytes that need not be UTF-8.

On Linux a file name is a string of bytes. Python gives a name that is not valid UTF-8 (`caf\\xe9.jpg`, saved by
a Latin-1 system or unzipped from a Windows archive) as text with surrogate escapes, which opens the file but
cannot be written to the catalog, to JSON or to a UTF-8 log. Here such names are walked and matched as bytes,
shown with the bytes that are not UTF-8 written `\\xNN` (`display`), and also found under their Windows-1252
reading, so that a label table that says `café.jpg` finds the file whose name is `caf\\xe9.jpg` on disk.
"""

from __future__ import annotations

import os
from pathlib import Path


def name_bytes(name: str | Path) -> bytes:
    """The bytes of a file name or path as the disk holds them (surrogate escapes back to their bytes)."""
    return os.fsencode(name)


def is_text(name: str | Path) -> bool:
    """True when a name or path is valid UTF-8 (it can be stored and printed as it is)."""
    try:
        str(name).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display(value: object) -> str:
    """`value` as text that can be stored, logged and printed: bytes of a file name that are not UTF-8 are
    written as `\\xNN` (`caf\\xe9.jpg`); text that is valid already is returned unchanged."""
    text = str(value)
    if is_text(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def legacy_key(name: str) -> str | None:
    """A name that is not UTF-8 read as Windows-1252 (else Latin-1), lower-cased: the key under which a label
    table's `café.jpg` finds `caf\\xe9.jpg`; None for a name that is valid UTF-8."""
    if is_text(name):
        return None
    raw = name.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("cp1252").lower()
    except UnicodeDecodeError:
        return raw.decode("latin-1").lower()
