"""Label files in any encoding: a byte-order mark, else UTF-8, else a detector; never a silent substitution.

Collections ship label tables saved by spreadsheets on many systems: UTF-8 with or without a byte-order mark,
UTF-16 (Excel's "Unicode text"), Windows-1252 or another legacy code page. Reading them as UTF-8 with
replacement characters merged patients ("Müller" and "Möller" both "M\ufffdller"), lost files ("café.jpg") and
invented unknown labels. Here a file's encoding is decided once, from its bytes (or the recipe's `encoding` for
the source), every byte is checked to decode under it before a row is read, and the build log says which
encoding was used whenever it was not plain UTF-8. A file that decodes under no single encoding stops with the
file, the line and the bytes.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from retinal_reason_data.text import bom_codec

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_DETECT_BYTES = 4 << 20  # the detector reads at most this much; the whole file is still checked to decode
# Among single-byte code pages that decode a file equally well, the one that label files are most often saved
# in wins (Excel on Western Windows); the detector otherwise breaks such ties arbitrarily (it read French
# "Crèvecœur" in Windows-1250 as "Crčvecśur").
_PREFERRED = ("cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2")
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_SEEN: dict[tuple[str, int, int, str | None], TextEncoding] = {}
_FORCED: ContextVar[str | None] = ContextVar("rrd_source_encoding", default=None)


class EncodingError(ValueError):
    """A text file that does not decode under one encoding; the message names the file, the line and the bytes."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}: line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line = path, line


@dataclass(frozen=True)
class TextEncoding:
    """How a text file is decoded: the codec and how it was chosen (said in the build log)."""

    codec: str
    how: str

    @property
    def is_utf8(self) -> bool:
        return codecs.lookup(self.codec).name in ("utf-8", "utf-8-sig")


@contextmanager
def source_encoding(codec: str | None) -> Iterator[None]:
    """Decode the label files read within this block with `codec` (a source's `encoding` in the recipe)."""
    token = _FORCED.set(codec)
    try:
        yield
    finally:
        _FORCED.reset(token)


def detect_encoding(path: Path) -> TextEncoding:
    """The encoding of a text file: the recipe's, a byte-order mark, UTF-8, or the detector's best reading.

    Raises EncodingError when the file does not decode under that encoding, or mixes UTF-8 with another."""
    forced = _FORCED.get()
    if forced:
        found = TextEncoding(codecs.lookup(forced).name, "the recipe's `encoding`")
        _check_decodes(path, found)
        return found
    with path.open("rb") as handle:
        head = handle.read(4)
    codec = bom_codec(head)
    if codec is not None:
        found = TextEncoding(codec, "byte-order mark")
        _check_decodes(path, found)
        return found
    failure = _first_failure(path, "utf-8")
    if failure is None:
        return TextEncoding("utf-8", "valid UTF-8")
    sample = _read_sample(path)
    if _UTF8_MULTIBYTE.search(sample):
        line, snippet = failure
        raise EncodingError(
            path,
            line,
            f"bytes {snippet!r} are not UTF-8, although other lines are: the file mixes two encodings; save it "
            "in one (UTF-8), or name the encoding with `encoding:` on the source",
        )
    found = _detected(path, sample)
    _check_decodes(path, found)
    return found


def _detected(path: Path, sample: bytes) -> TextEncoding:
    from charset_normalizer import from_bytes  # imported here: only files that are not UTF-8 need it

    matches = list(from_bytes(sample))
    if not matches:
        raise EncodingError(
            path, None, "not UTF-8, and no encoding decodes it as text; name it with `encoding:` on the source"
        )
    least_chaos = min(match.chaos for match in matches)
    calm = [match for match in matches if match.chaos <= least_chaos + 1e-9]
    best_coherence = max(match.coherence for match in calm)
    # each match lists the code pages that give the very same text (`could_be_from_charset`)
    tied = [name for match in calm if match.coherence >= best_coherence - 1e-9 for name in match.could_be_from_charset]
    preferred = [codec for codec in _PREFERRED if codec in tied]
    codec = preferred[0] if preferred else tied[0]
    same = {name for match in matches if codec in match.could_be_from_charset for name in match.could_be_from_charset}
    others = [match.encoding for match in matches if match.encoding not in same][:3]
    also = f"; also plausible: {', '.join(others)}" if others else ""
    return TextEncoding(codecs.lookup(codec).name, f"detected by charset-normalizer{also}")


def _read_sample(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(_DETECT_BYTES)


def _first_failure(path: Path, codec: str) -> tuple[int, bytes] | None:
    """(line, the offending bytes) of the first place where the file does not decode under `codec`, or None."""
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    line, tail = 1, b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            try:
                line += decoder.decode(chunk).count("\n")
            except UnicodeDecodeError as exc:  # exc.object: bytes held back from the last chunk, then this one
                before = exc.object[: exc.start].decode(codec, errors="replace")
                return line + before.count("\n"), exc.object[max(0, exc.start - 8) : exc.end + 8]
            tail = chunk[-8:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line, tail  # the file ends inside a character
    return None


def _check_decodes(path: Path, encoding: TextEncoding) -> None:
    failure = _first_failure(path, encoding.codec)
    if failure is not None:
        line, snippet = failure
        raise EncodingError(
            path,
            line,
            f"bytes {snippet!r} do not decode as {encoding.codec} ({encoding.how}); save the file in one "
            "encoding (UTF-8), or name its encoding with `encoding:` on the source",
        )


def announce(path: Path, encoding: TextEncoding) -> None:
    """Say in the build log which encoding a label file was read in: a warning when it is not UTF-8."""
    if encoding.is_utf8:
        log.info("%s: read as %s (%s)", path, encoding.codec, encoding.how)
    else:
        log.warning("%s: not UTF-8; read as %s (%s)", path, encoding.codec, encoding.how)


@contextmanager
def open_text(path: Path) -> Iterator[io.TextIOBase]:
    """A label file opened for reading as text in its own encoding (see `detect_encoding`), newlines untranslated
    (for `csv`). Every byte is known to decode before the first row is read."""
    encoding = _known_encoding(path)
    with path.open(newline="", encoding=encoding.codec, errors="strict") as handle:
        yield handle


def _known_encoding(path: Path) -> TextEncoding:
    """`detect_encoding`, once per file version in this process (adapters open a table twice: header, rows),
    announced when first found."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, _FORCED.get())
    found = _SEEN.get(key)
    if found is None:
        found = detect_encoding(path)
        announce(path, found)
        if len(_SEEN) >= 256:
            _SEEN.clear()
        _SEEN[key] = found
    return found


def read_text(path: Path) -> str:
    """The whole text of a label file in its own encoding (see `open_text`)."""
    with open_text(path) as handle:
        return handle.read()
