"""Tolerant reading of the label tables that real downloads ship (BOM, CRLF, padded headers, index columns)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from retinal_reason_data.ingest.sources.base import quarantine
from retinal_reason_data.ingest.sources.text_files import EncodingError, open_text
from retinal_reason_data.schema import Quarantine

log = logging.getLogger(__name__)
Record = TypeVar("Record")


class LabelTableError(ValueError):
    """A label table that cannot be read as the layout expects: empty, its header lacks a column, a line the CSV
    reader cannot parse. The message names the file, the line, what was found and what was expected; intake
    quarantines the file once with `reason`."""

    def __init__(self, path: Path, line: int | None, reason: str, problem: str) -> None:
        where = f"{path} line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.reason = path, line, reason


_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


def read_csv_rows(
    path: Path, delimiter: str = ",", required: tuple[Column, ...] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with headers and cells stripped; unnamed index columns are dropped. The file is
    decoded in its own encoding (`text_files.open_text`: byte-order mark, UTF-8, else detected; never replaced).

    With `required` columns (matched without regard to case; a tuple: one of these names), a header that lacks
    one is read again with ';', tab or '|' as the delimiter when that gives every one (a warning says so);
    otherwise LabelTableError names the columns found and the ones expected. Without them, a header of one
    column that one of those delimiters splits into several is read with it (said too). An empty file, a file
    with a header and no row, and a line the CSV reader refuses (a NUL byte, a cell over the size limit) raise
    LabelTableError too.

    Line numbers count the header as line 1, as a spreadsheet shows them.
    """
    header_line = _first_line(path)
    if header_line is None:
        size = path.stat().st_size
        problem = "the file is empty (0 bytes)" if size == 0 else f"the file holds only blank lines ({size} bytes)"
        raise LabelTableError(path, None, "labels_empty", _expected(problem, required))
    delimiter = _delimiter(path, header_line, delimiter, required)
    rows = 0
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next((cells for cells in reader if any(cell.strip() for cell in cells)), [])
            names = [name.strip() for name in header]
            for line, cells in enumerate(reader, start=reader.line_num + 1):
                if not any(cell.strip() for cell in cells):
                    continue
                row = {
                    name: cell.strip()
                    for name, cell in zip(names, cells, strict=False)
                    if name and not name.lower().startswith("unnamed")
                }
                rows += 1
                yield line, row
        except csv.Error as exc:
            raise LabelTableError(path, reader.line_num, "labels_unreadable", f"not readable as CSV: {exc}") from None
    if rows == 0:
        found = ", ".join(repr(name) for name in names if name)
        raise LabelTableError(path, None, "labels_empty", f"no row under the header (columns: {found})")


def _first_line(path: Path) -> str | None:
    """The first line of a label file that is not blank, or None for a file with none."""
    with open_text(path) as handle:
        for text in handle:
            if text.strip():
                return text
    return None


Column = str | tuple[str, ...]  # a column, or several names of which one will do


def _delimiter(path: Path, header: str, delimiter: str, required: tuple[Column, ...]) -> str:
    """`delimiter`, or the one that makes the header name every required column (said in the log); without
    required columns, the one that splits a header of one column into several."""
    found = _header_cells(header, delimiter)
    if not _missing(found, required) and (required or len(found) > 1):
        return delimiter
    for other, shown in _OTHER_DELIMITERS.items():
        cells = _header_cells(header, other)
        if other != delimiter and len(cells) > max(1, len(found)) and not _missing(cells, required):
            log.warning("%s: columns are separated by %s, not %r; read with %s", path, shown, delimiter, shown)
            return other
    missing = _missing(found, required)
    if not missing:
        return delimiter
    columns = ", ".join(repr(name) for name in found if name) or "none"
    hint = ""
    for other, shown in _OTHER_DELIMITERS.items():
        if other != delimiter and len(_header_cells(header, other)) > max(1, len(found)):
            hint = f" (the header is separated by {shown}, not {delimiter!r})"
            break
    raise LabelTableError(
        path,
        1,
        "labels_header",
        f"no column {', '.join(_shown(column) for column in missing)} in the header{hint}; columns found: "
        f"{columns}; expected: {', '.join(_shown(column) for column in required)}",
    )


def _missing(found: list[str], required: tuple[Column, ...]) -> list[Column]:
    present = {name.casefold() for name in found}
    return [
        column
        for column in required
        if not any(name.casefold() in present for name in ((column,) if isinstance(column, str) else column))
    ]


def _shown(column: Column) -> str:
    return repr(column) if isinstance(column, str) else " or ".join(repr(name) for name in column)


def _header_cells(header: str, delimiter: str) -> list[str]:
    return [cell.strip() for cell in next(csv.reader([header], delimiter=delimiter), [])]


def _expected(problem: str, required: tuple[Column, ...]) -> str:
    return f"{problem}; expected a header naming {', '.join(_shown(c) for c in required)}" if required else problem


def cell(row: dict[str, str], *names: str) -> str:
    """The first of `names` present in `row`, matched without regard to case (collections differ); '' if none."""
    for name in names:
        if name in row:
            return row[name]
    folded = {key.casefold(): value for key, value in row.items()}
    for name in names:
        if name.casefold() in folded:
            return folded[name.casefold()]
    return ""


def read_xlsx_rows(
    path: Path, required: tuple[str, ...] = (), sheet: str | None = None, header_rows: int = 1, scan: int = 10
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (row number as Excel shows it, row) from a worksheet, streamed (openpyxl read-only mode).

    The header is the first of the top `scan` rows that names every column in `required` (title rows above it
    are skipped); LabelTableError names the file when there is none, or when no row follows it. With
    `header_rows` > 1 the names of that many rows are joined with a space, an upper cell carrying over to the
    columns on its right that it spans (merged cells). Cells are stripped text ('3' for 3 and 3.0, '' for
    empty); unnamed columns are dropped, a repeated name keeps its first column, and empty rows are skipped, as
    in read_csv_rows.
    """
    from openpyxl import load_workbook  # imported here: only the xlsx adapters need it

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
        rows = enumerate(worksheet.iter_rows(min_row=1, values_only=True), start=1)
        wanted = {name.casefold() for name in required}
        header: list[tuple[object, ...]] = []
        number = 0
        for number, values in rows:
            texts = {_cell_text(value).casefold() for value in values} - {""}
            if texts and wanted <= texts:
                header = [values]
                break
            if number >= scan:
                break
        if not header:
            if wanted:
                raise LabelTableError(
                    path, None, "labels_header", f"no header row naming {', '.join(required)} in the first {scan} rows"
                )
            return
        for _ in range(header_rows - 1):
            number, values = next(rows, (number + 1, ()))
            header.append(values)
        names = _header_names(header)
        found = 0
        for line, values in rows:
            texts = [_cell_text(value) for value in values]
            if not any(texts):
                continue
            row: dict[str, str] = {}
            for name, text in zip(names, texts, strict=False):
                if name and name not in row:
                    row[name] = text
            found += 1
            yield line, row
        if not found:
            columns = ", ".join(repr(name) for name in names if name)
            raise LabelTableError(path, None, "labels_empty", f"no row under the header (columns: {columns})")
    finally:
        workbook.close()


def _header_names(rows: list[tuple[object, ...]]) -> list[str]:
    """Column names from one or more header rows (see read_xlsx_rows)."""
    width = max(len(row) for row in rows)
    texts = [[_cell_text(row[column]) if column < len(row) else "" for column in range(width)] for row in rows]
    lowest = texts[-1]
    names = []
    carried = ["" for _ in rows]
    for column in range(width):
        parts = []
        for depth, row in enumerate(texts):
            text = row[column]
            if depth < len(rows) - 1:  # an upper cell spans the empty cells to its right that have a name below
                if text:
                    carried[depth] = text
                elif lowest[column]:
                    text = carried[depth]
                else:
                    carried[depth] = ""
            if text:
                parts.append(text)
        name = " ".join(parts)
        names.append("" if name.lower().startswith("unnamed") else name)
    return names


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value).strip()


def guarded(source: str, records: Iterator[Record]) -> Iterator[Record | Quarantine]:
    """The records an adapter reads from one label table; a table that cannot be read (LabelTableError, or no
    single encoding) ends with one quarantine record that names it, and the adapter goes on to its next table."""
    try:
        yield from records
    except LabelTableError as exc:
        log.error("%s", exc)
        yield quarantine(source, exc.path, exc.line, exc.reason, str(exc))
    except EncodingError as exc:
        log.error("%s", exc)
        yield quarantine(source, exc.path, exc.line, "labels_undecodable", str(exc))
