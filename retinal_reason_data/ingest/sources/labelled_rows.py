"""The commonest layout: a label table whose rows each name one image in one folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from retinal_reason_data.ingest.sources.base import find_image, quarantine
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.tabular import guarded, read_csv_rows
from retinal_reason_data.schema import Quarantine


@dataclass(frozen=True)
class LabelledRow:
    line: int
    row: dict[str, str]
    name: str
    label: str
    path: Path


def labelled_rows(
    source: str,
    labels: Path,
    images: Path,
    name_column: str,
    label_column: str,
    clean_label: Callable[[str], str] = str.strip,
) -> Iterator[LabelledRow | Quarantine]:
    """Each row with its image found whatever the extension's case; a missing, empty or unreadable label file
    (a header without the two columns: once, naming the columns found), an incomplete row or a missing image
    comes back as a quarantine record naming the file and line."""
    if not labels.is_file():
        yield quarantine(source, labels, None, "labels_missing", f"{labels}: {source} label file not found")
        return
    yield from guarded(source, _rows(source, labels, images, name_column, label_column, clean_label))


def _rows(
    source: str,
    labels: Path,
    images: Path,
    name_column: str,
    label_column: str,
    clean_label: Callable[[str], str],
) -> Iterator[LabelledRow | Quarantine]:
    files = listing(images)
    for line, row in read_csv_rows(labels, required=(name_column, label_column)):
        row = _exact_names(row, (name_column, label_column))
        name, label = row.get(name_column, ""), clean_label(row.get(label_column, ""))
        if not name or not label:
            empty = " and ".join(column for column, value in ((name_column, name), (label_column, label)) if not value)
            detail = f"{labels} line {line}: empty {empty}"
            yield quarantine(source, labels, line, "row_incomplete", detail)
            continue
        path = find_image(images, name, files)
        if path is None:
            yield quarantine(source, labels, line, "image_missing", f"{labels} line {line}: {name} not in {images}")
            continue
        yield LabelledRow(line, row, name, label, path)


def _exact_names(row: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """`row` with each of `names` present under its own spelling when the header wrote it in another case."""
    folded = {key.casefold(): key for key in row}
    renamed = {name: row[folded[name.casefold()]] for name in names if name not in row and name.casefold() in folded}
    return {**row, **renamed}
