"""OphthaReason's image CSVs, read lazily: each key's row is found by its byte offset and decoded when asked for.

eval.py holds `pd.read_csv(path, index_col=0).to_dict()["base64"]`: the first column is the key, the column
named `base64` (after it) the image. That dict is the whole CSV in memory. `Base64Csv` makes one pass that keeps
each key's byte offset, length and line, parsing one row at a time, and reads a row again when its image is
wanted: memory holds the keys and one row.
"""

from __future__ import annotations

import binascii
import csv
import io
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple

BASE64_COLUMN = "base64"
MAX_ROW_BYTES = 64 * 2**20  # a row this long is an unclosed quote, not an image
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_BOM = b"\xef\xbb\xbf"


class CsvProblem(ValueError):
    """The CSV cannot be used at all (missing, empty, no `base64` column, broken quoting)."""


class ImageLookupError(ValueError):
    """One image cannot be had: `reason` is a code, the message names the file, line and key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Row(NamedTuple):
    offset: int
    length: int
    line: int


def _fields(record: bytes) -> list[str]:
    """The fields of one CSV record (UTF-8, as pandas reads it by default). Without a quote, a record is its
    text split at commas (five times faster than the csv module on a base64 image); with one, the csv module."""
    if b'"' not in record:
        return record.decode("utf-8").rstrip("\r\n").split(",")
    if csv.field_size_limit() < MAX_ROW_BYTES:  # the default, 131,072 characters, is a 96 KB image
        csv.field_size_limit(MAX_ROW_BYTES)
    return next(csv.reader(io.StringIO(record.decode("utf-8"), newline="")), [])


def _decoded(value: str) -> bytes | str:
    """The bytes of a base64 value (wrapped in lines or not), or what is wrong with it. Strict: a character outside
    the alphabet or misplaced padding is an error (`b64decode(validate=True)` checks the same with a regular
    expression, four times slower)."""
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return binascii.a2b_base64("".join(value.split()), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        return str(exc)


class Base64Csv:
    """The key -> image lookup of one CSV, as eval.py's dict would answer it, without holding the images."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unreadable_rows: list[str] = []
        self._rows: dict[str, _Row] = {}
        self._conflicts: dict[str, tuple[int, int]] = {}
        try:
            self._handle: IO[bytes] = path.open("rb")
        except OSError as exc:
            raise CsvProblem(f"{path}: cannot open ({exc.strerror or exc})") from None
        try:
            self._column, header_lines = self._header()
            self._index(first_line=header_lines + 1)
        except BaseException:
            self._handle.close()
            raise

    def __len__(self) -> int:
        return len(self._rows)

    def _next_record(self, line: int) -> tuple[int, int, bytes] | None:
        """(offset, lines used, bytes) of the record starting here, joining lines while a quote is open."""
        offset = self._handle.tell()
        parts, size, quotes, used = [], 0, 0, 0
        while True:
            chunk = self._handle.readline()
            if not chunk:
                if quotes % 2:
                    raise CsvProblem(f"{self.path} line {line}: a quote opened here is never closed")
                return (offset, used, b"".join(parts)) if parts else None
            parts.append(chunk)
            size, quotes, used = size + len(chunk), quotes + chunk.count(b'"'), used + 1
            if size > MAX_ROW_BYTES:
                raise CsvProblem(f"{self.path} line {line}: a row over {MAX_ROW_BYTES:,} bytes (an unclosed quote?)")
            if quotes % 2 == 0:
                return offset, used, b"".join(parts)

    def _header(self) -> tuple[int, int]:
        """(index of the `base64` column, lines the header takes)."""
        first = self._next_record(1)
        if first is None:
            raise CsvProblem(f"{self.path}: empty (eval.py needs a header with a '{BASE64_COLUMN}' column)")
        _, line, header_bytes = first
        header = _fields(header_bytes.removeprefix(_BOM))
        if BASE64_COLUMN not in header[1:]:
            raise CsvProblem(
                f"{self.path}: no '{BASE64_COLUMN}' column after the key column (header: {header!r}); eval.py reads "
                f"pd.read_csv(path, index_col=0)['{BASE64_COLUMN}']"
            )
        return header.index(BASE64_COLUMN, 1), line

    def _index(self, first_line: int) -> None:
        """Every row's key, offset and line (a key twice with different images is a conflict)."""
        line = first_line
        while (record := self._next_record(line)) is not None:
            offset, used, data = record
            if data.strip():  # pandas skips blank lines
                self._add(offset, line, data)
            line += used

    def _add(self, offset: int, line: int, data: bytes) -> None:
        try:
            key = _fields(data)[0]
        except (UnicodeDecodeError, csv.Error, IndexError) as exc:
            self.unreadable_rows.append(f"line {line}: {exc}")
            return
        earlier = self._rows.get(key)
        if earlier is None:
            self._rows[key] = _Row(offset, len(data), line)
        elif key not in self._conflicts and self._value(earlier) != self._value(_Row(offset, len(data), line)):
            self._conflicts[key] = (earlier.line, line)
        self._handle.seek(offset + len(data))

    def _value(self, row: _Row) -> str | None:
        self._handle.seek(row.offset)
        try:
            fields = _fields(self._handle.read(row.length))
        except (UnicodeDecodeError, csv.Error):
            return None
        return fields[self._column] if len(fields) > self._column else None

    def image(self, key: str) -> bytes:
        """The decoded image of `key`; ImageLookupError naming file, line and key when there is none."""
        if key in self._conflicts:
            first, second = self._conflicts[key]
            raise ImageLookupError(
                "image_key_ambiguous",
                f"{self.path}: image key {key!r} is on lines {first} and {second} with different images",
            )
        row = self._rows.get(key)
        if row is None:
            message = f"{self.path}: no row for image key {key!r}"
            if self.unreadable_rows:
                message += f" ({len(self.unreadable_rows)} rows unreadable: {self.unreadable_rows[0]})"
            raise ImageLookupError("image_missing", message)
        where = f"{self.path} line {row.line} (image key {key!r})"
        value = self._value(row)
        if value is None:
            raise ImageLookupError("image_unreadable", f"{where}: no '{BASE64_COLUMN}' value in the row")
        data = _decoded(value)
        if isinstance(data, str):
            raise ImageLookupError("image_bad_base64", f"{where}: not base64 ({data}): {value[:40]!r}")
        if not data:
            raise ImageLookupError("image_bad_base64", f"{where}: the base64 value is empty")
        if not data.startswith(IMAGE_MAGIC) and not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise ImageLookupError("not_an_image", f"{where}: the decoded bytes are no image: {data[:12]!r}")
        return data

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Base64Csv:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
