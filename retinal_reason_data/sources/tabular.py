"""Tolerant reading of the label tables that real downloads ship (BOM, CRLF, padded headers, index columns)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.sources.text_files import open_text


def read_csv_rows(path: Path, delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with headers and cells stripped; unnamed index columns are dropped. The file is
    decoded in its own encoding (`text_files.open_text`: byte-order mark, UTF-8, else detected; never replaced).

    Line numbers count the header as line 1, as a spreadsheet shows them.
    """
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        names = [name.strip() for name in header]
        for line, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            row = {
                name: cell.strip()
                for name, cell in zip(names, cells, strict=False)
                if name and not name.lower().startswith("unnamed")
            }
            yield line, row


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
    are skipped); ValueError names the file when there is none. With `header_rows` > 1 the names of that many
    rows are joined with a space, an upper cell carrying over to the columns on its right that it spans
    (merged cells). Cells are stripped text ('3' for 3 and 3.0, '' for empty); unnamed columns are dropped,
    a repeated name keeps its first column, and empty rows are skipped, as in read_csv_rows.
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
                raise ValueError(f"{path}: no header row naming {', '.join(required)} in the first {scan} rows")
            return
        for _ in range(header_rows - 1):
            number, values = next(rows, (number + 1, ()))
            header.append(values)
        names = _header_names(header)
        for line, values in rows:
            texts = [_cell_text(value) for value in values]
            if not any(texts):
                continue
            row: dict[str, str] = {}
            for name, text in zip(names, texts, strict=False):
                if name and name not in row:
                    row[name] = text
            yield line, row
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
