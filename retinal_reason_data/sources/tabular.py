"""Tolerant reading of the label tables that real downloads ship (BOM, CRLF, padded headers, index columns)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path


def read_csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with headers and cells stripped; unnamed index columns are dropped.

    Line numbers count the header as line 1, as a spreadsheet shows them.
    """
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
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
