"""Generic manifests: a CSV or JSONL file naming images and their labels, columns mapped in the recipe.

Presets read two layouts that tools use: FLAIR (`,image,atributes,categories` with list literals) and
EyeCLIP (`labels.csv` with `impath,class`).
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import parse_age, parse_eye, parse_sex
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.image_folder import modality_value
from retinal_reason_data.ingest.sources.locate import option_dir
from retinal_reason_data.ingest.sources.options import SourceOptionsError, parse_options
from retinal_reason_data.ingest.sources.scope import current_scope, within
from retinal_reason_data.ingest.sources.tabular import LabelTableError, read_csv_rows
from retinal_reason_data.ingest.sources.text_files import open_text
from retinal_reason_data.schema import Modality, Quarantine

PRESETS: dict[str, dict[str, Any]] = {
    "flair": {"image_column": "image", "label_columns": ["categories"], "label_format": "list", "modality": "CFP"},
    "eyeclip": {"file": "labels.csv", "image_column": "impath", "label_columns": ["class"]},
}
_TRUE = {"1", "1.0", "true", "yes", "y", "x"}
_FALSE = {"", "0", "0.0", "false", "no", "n", "nan"}
_COLUMN_OPTIONS = (
    "image_column",
    "id_column",
    "patient_column",
    "eye_column",
    "age_column",
    "sex_column",
    "modality_column",
    "split_column",
)


class ManifestOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Literal["flair", "eyeclip"] | None = Field(default=None, description="Defaults for a known layout.")
    file: str = Field(description="The manifest, relative to the root (or absolute).")
    format: Literal["csv", "jsonl"] | None = Field(default=None, description="Default: from the file extension.")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV only; '\\t' for TSV.")
    image_column: str
    image_separator: str | None = Field(default=None, min_length=1, description="Several images in one cell.")
    image_root: str | None = Field(default=None, description="Folder the image paths are relative to; the root.")
    label_columns: list[str] = Field(min_length=1)
    label_format: Literal["text", "list", "flags"] = Field(
        default="text",
        description="text: the cell is a label (split by label_separator); list: a list literal ['a', 'b']; "
        "flags: the column name is the label where the cell is 1/true/yes.",
    )
    label_separator: str | None = Field(default=None, min_length=1)
    id_column: str | None = None
    patient_column: str | None = None
    eye_column: str | None = None
    age_column: str | None = None
    sex_column: str | None = None
    modality: Modality | None = None
    modality_column: str | None = None
    split_column: str | None = None
    split_values: list[str] | None = Field(default=None, description="Read only rows of these splits.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            return {**PRESETS[data["preset"]], **data}
        return data

    @field_validator("label_columns", "split_values", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("modality", mode="before")
    @classmethod
    def _modality_alias(cls, value: object) -> object:
        return modality_value(value)

    @model_validator(mode="after")
    def _modality_given(self) -> ManifestOptions:
        if self.modality is None and self.modality_column is None:
            raise ValueError("give `modality` (CFP|OCT|FFA|other) or `modality_column`")
        if self.split_values is not None and self.split_column is None:
            raise ValueError("`split_values` needs `split_column`")
        return self


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per row: its images, raw labels, patient, eye, age and sex as the options map them."""
    settings = parse_options(ManifestOptions, options.values, source, "manifest")
    path = root / settings.file
    if not path.is_file():
        yield quarantine(source, path, None, "labels_missing", f"{path}: manifest not found")
        return
    kind = settings.format or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    if kind == "csv":
        _check_columns(settings, path, source)
    image_root = option_dir(root, settings.image_root) or root
    folders: dict[Path, Mapping[str, Path]] = {}
    for line, row in _rows(path, kind, settings.delimiter):
        if isinstance(row, str):
            yield quarantine(source, path, line, "record_invalid", f"{path} line {line}: {row}")
            continue
        if settings.split_values is not None and _text(row.get(settings.split_column)) not in settings.split_values:
            continue  # a split the recipe leaves out
        yield _case(row, line, path, image_root, folders, settings, source, options.allow_outside_root)


def _rows(path: Path, kind: str, delimiter: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, row) from a CSV or JSONL file; a JSONL line that is not an object gives (line, what is wrong)."""
    if kind == "csv":
        yield from read_csv_rows(path, delimiter)
        return
    with open_text(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, f"not valid JSON: {exc}"
                continue
            if not isinstance(record, dict):
                yield line, f"expected a JSON object, got {type(record).__name__}"
                continue
            yield line, {str(key).strip(): value for key, value in record.items()}


def _check_columns(settings: ManifestOptions, path: Path, source: str) -> None:
    """Every column an option names must be in the CSV header: a wrong name is an options error."""
    with open_text(path) as handle:
        first = next((line for line in handle if line.strip()), "")
    if not first:
        raise LabelTableError(path, None, "labels_empty", "the manifest is empty: expected a header naming its columns")
    header = {name.strip() for name in next(csv.reader([first], delimiter=settings.delimiter), [])}
    wrong = [(option, getattr(settings, option)) for option in _COLUMN_OPTIONS if getattr(settings, option)]
    wrong += [("label_columns", column) for column in settings.label_columns]
    wrong = [(option, column) for option, column in wrong if column not in header]
    if wrong:
        problems = "\n".join(f"  option '{option}': no column {column!r} in {path}" for option, column in wrong)
        columns = ", ".join(sorted(name for name in header if name))
        hint = ""
        for other, shown in ((";", "';'"), ("\t", "'\\t'"), ("|", "'|'"), (",", "','")):
            cells = {name.strip() for name in next(csv.reader([first], delimiter=other), [])}
            if other != settings.delimiter and len(cells) > len(header) and all(c in cells for _, c in wrong):
                hint = f"\n  the file's columns are separated by {shown}: set `delimiter: {shown}` in the options"
                break
        raise SourceOptionsError(
            f"source {source!r} (adapter manifest): invalid options\n{problems}\n  columns: {columns}{hint}"
        )


def _case(
    row: dict[str, Any],
    line: int,
    path: Path,
    image_root: Path,
    folders: dict[Path, Mapping[str, Path]],
    settings: ManifestOptions,
    source: str,
    allow_outside_root: bool = False,
) -> RawCase | Quarantine:
    where = f"{path} line {line}"
    cell = _text(row.get(settings.image_column))
    names = [n.strip() for n in cell.split(settings.image_separator)] if settings.image_separator else [cell]
    names = [n for n in names if n]
    if not names:
        return quarantine(source, path, line, "row_incomplete", f"{where}: empty {settings.image_column!r}")
    images, missing = [], []
    for name in names:
        if not allow_outside_root and _leaves(image_root, name):
            return quarantine(
                source, path, line, "outside_root",
                f"{where}: {settings.image_column!r} names {name!r}, outside the folder the images are read from "
                f"({image_root}); refused (set allow_outside_root: true on the source to read files outside it)",
            )  # fmt: skip
        found = _resolve(image_root, name, folders)
        if found is None:
            missing.append(name)
        else:
            images.append(found)
    if missing:
        return quarantine(source, path, line, "image_missing", f"{where}: images not found: {', '.join(missing)}")
    labels: list[str] = []
    for column in settings.label_columns:
        try:
            labels += _labels(row.get(column), column, settings)
        except ValueError as exc:
            return quarantine(source, path, line, "cell_unparsed", f"{where}: column {column!r}: {exc}")
    if not labels:
        return quarantine(source, path, line, "label_missing", f"{where}: no label in {settings.label_columns}")
    modality = settings.modality
    if settings.modality_column:
        raw = _text(row.get(settings.modality_column))
        try:
            modality = Modality(modality_value(raw))
        except ValueError:
            return quarantine(source, path, line, "modality_unknown", f"{where}: modality {raw!r} is not CFP/OCT/FFA")
    assert modality is not None
    local_id = _text(row.get(settings.id_column)) if settings.id_column else ""
    local_id = local_id or names[0]
    if settings.split_column:
        local_id = f"{_text(row.get(settings.split_column)) or 'none'}/{local_id}"
    return RawCase(
        local_id=local_id,
        raw_patient_id=(_text(row.get(settings.patient_column)) or None) if settings.patient_column else None,
        eye=parse_eye(_text(row.get(settings.eye_column))) if settings.eye_column else parse_eye(None),
        age=parse_age(row.get(settings.age_column)) if settings.age_column else None,
        sex=parse_sex(_text(row.get(settings.sex_column))) if settings.sex_column else parse_sex(None),
        images=[RawImage(path=image, modality=modality) for image in images],
        labels=labels,
        file=str(path),
        row=line,
    )


def _leaves(image_root: Path, name: str) -> bool:
    """True when a name is absolute (`/etc/passwd`) or climbs with '..' out of the folders the source reads
    (its root, its work folder, folders its options name; `image_root` when no source scope is set)."""
    scope = current_scope()
    roots = scope.roots if scope is not None else [str(image_root)]
    return not within(image_root / name.replace("\\", "/"), roots)


def _resolve(image_root: Path, name: str, folders: dict[Path, Mapping[str, Path]]) -> Path | None:
    """The file a manifest names, whatever the case of its extension or the slashes it uses."""
    path = image_root / name.replace("\\", "/")
    if path.is_file():
        return path
    folder = path.parent
    if folder not in folders:
        if len(folders) > 4096:  # bounded: a manifest may spread over many folders
            folders.clear()
        folders[folder] = listing(folder)
    return find_image(folder, path.name, folders[folder])


def _labels(value: Any, column: str, settings: ManifestOptions) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    text = _text(value)
    if settings.label_format == "flags":
        if text.lower() in _TRUE:
            return [column]
        if text.lower() in _FALSE:
            return []
        raise ValueError(f"{text!r} is not a flag (1/0, true/false, yes/no)")
    if settings.label_format == "list":
        if not text:
            return []
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"{text[:60]!r} is not a list literal") from None
        if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
            raise ValueError(f"{text[:60]!r} is not a list of strings")
        return [item.strip() for item in items if item.strip()]
    parts = text.split(settings.label_separator) if settings.label_separator else [text]
    return [part.strip() for part in parts if part.strip()]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


ADAPTER = Adapter(
    name="manifest",
    title="Manifest (CSV or JSONL naming images and labels; generic, FLAIR and EyeCLIP presets)",
    layout="a CSV/JSONL file whose columns the recipe maps. options: file (relative to the root, required); "
    "format (csv|jsonl, default from the extension); delimiter (CSV, default ','); image_column (required); "
    "image_separator (several images per row); image_root (folder the paths are relative to, default the "
    "root); label_columns (one or more, required); label_format (text|list|flags, default text); "
    "label_separator (text labels); id_column, patient_column, eye_column, age_column, sex_column; modality "
    "(CFP|OCT|FFA|other) or modality_column; split_column (prefixes case ids) and split_values (read only "
    "these splits); preset: flair (,image,atributes,categories with list literals; CFP) or eyeclip "
    "(labels.csv impath,class). Raw labels map through the source's `labels` and the ontology's names. Image "
    "paths must stay inside the root (or image_root): '..' out of it or an absolute path elsewhere is refused as "
    "outside_root unless the source sets allow_outside_root: true.",
    licence="as the collection's own licence: set `licence` on the source in the recipe",
    read=read,
)
