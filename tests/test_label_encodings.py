"""Label files in any encoding: detected, said in the log, never decoded with replacement characters."""

from __future__ import annotations

import codecs
import json
import logging
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.cli import app
from retinal_reason_data.ingest.sources.tabular import read_csv_rows
from retinal_reason_data.ingest.sources.text_files import EncodingError, detect_encoding, source_encoding
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.recipe import RecipeError, load_recipe

ROWS = [  # image, patient, label: two patients whose names differ only in a letter outside ASCII
    ("café.jpg", "Müller", "Drüsen"),
    ("b.jpg", "Möller", "Drüsen"),
    ("c.jpg", "Strauß", "normal"),
    ("d.jpg", "Müller", "normal"),
]
OPTIONS = {
    "file": "labels.csv",
    "image_column": "image",
    "label_columns": ["label"],
    "patient_column": "patient",
    "modality": "CFP",
}


def _table(rows: list[tuple[str, str, str]], delimiter: str = ",") -> str:
    return "\r\n".join(delimiter.join(row) for row in [("image", "patient", "label"), *rows]) + "\r\n"


def _collection(root: Path, data: bytes) -> None:
    root.mkdir(parents=True)
    for index, (name, _, _) in enumerate(ROWS):
        fundus_photo(index, "left", size=128).save(root / name, quality=90)
    (root / "labels.csv").write_bytes(data)


@pytest.mark.parametrize(
    ("encoded", "codec"),
    [
        (_table(ROWS).encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + _table(ROWS).encode("utf-8"), "utf-8-sig"),
        (_table(ROWS).encode("cp1252"), "cp1252"),
        (_table(ROWS).encode("latin-1"), "cp1252"),  # the same bytes for these letters
        (_table(ROWS).encode("utf-16"), "utf-16"),  # Excel's "Unicode text": UTF-16 with a byte-order mark
    ],
    ids=["utf8", "utf8-bom", "cp1252", "latin1", "utf16"],
)
def test_every_row_is_read_with_its_own_letters(tmp_path: Path, encoded: bytes, codec: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(encoded)
    assert detect_encoding(path).codec == codecs.lookup(codec).name
    rows = [row for _, row in read_csv_rows(path)]
    assert [(row["image"], row["patient"], row["label"]) for row in rows] == ROWS


def test_french_names_are_read_in_windows_1252_not_its_central_european_twin(tmp_path: Path) -> None:
    # the detector rates cp1250 and cp1252 alike on this text; cp1250 would read "è" as "č" and "œ" as "ś"
    path = tmp_path / "labels.csv"
    path.write_bytes("image,patient\na.jpg,Hélène Crèvecœur\nb.jpg,Noël Lefèvre\n".encode("cp1252"))
    found = detect_encoding(path)
    assert found.codec == "cp1252"
    assert "charset-normalizer" in found.how
    assert [row["patient"] for _, row in read_csv_rows(path)] == ["Hélène Crèvecœur", "Noël Lefèvre"]


def test_a_polish_table_is_read_as_central_european(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("obraz,pacjent\na.jpg,Łukasz Wąsik\nb.jpg,Żaneta Ćwik\n".encode("cp1250"))
    assert [row["pacjent"] for _, row in read_csv_rows(path)] == ["Łukasz Wąsik", "Żaneta Ćwik"]


def test_a_file_mixing_utf8_and_latin1_stops_naming_the_line_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("image,patient\na.jpg,Müller\n".encode() + "b.jpg,Möller\n".encode("latin-1"))
    with pytest.raises(EncodingError) as caught:
        list(read_csv_rows(path))
    message = str(caught.value)
    assert f"{path}: line 3" in message
    assert "\\xf6" in message and "mixes two encodings" in message
    assert caught.value.line == 3


def test_the_recipe_can_name_the_encoding_and_a_wrong_byte_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("image,patient\na.jpg,M\xfcller\n".encode("latin-1"))
    with source_encoding("latin-1"):
        assert [row["patient"] for _, row in read_csv_rows(path)] == ["Müller"]
    with source_encoding("utf-8"), pytest.raises(EncodingError, match="line 2: bytes .* do not decode as utf-8"):
        list(read_csv_rows(path))


def test_a_recipe_naming_an_unknown_encoding_stops_naming_the_key(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    source = {"adapter": "manifest", "root": "raw", "options": OPTIONS, "encoding": "klingon-8"}
    recipe.write_text(yaml.safe_dump({"name": "x", "version": "0.0.1", "sources": [source]}))
    with pytest.raises(RecipeError, match=r"sources\.0\.encoding.*unknown encoding 'klingon-8'"):
        load_recipe(recipe)


def _build(tmp_path: Path, data: bytes, **source: object) -> tuple[dict, str]:
    _collection(tmp_path / "raw", data)
    spec = {
        "adapter": "manifest",
        "root": "raw",
        "options": OPTIONS,
        "labels": {"Drüsen": "lesion.drusen", "normal": "normal.fundus"},
    }
    spec.update(source)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {"name": "enc", "version": "0.0.1", "sources": [spec], "teacher": {"kind": "offline"}}, allow_unicode=True
        )
    )
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    stats = json.loads(runner.invoke(app, ["stats", str(recipe), "--json"], catch_exceptions=False).output)
    return stats, result.output


def test_a_latin1_label_file_keeps_patients_files_and_labels_apart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        stats, _ = _build(tmp_path, _table(ROWS).encode("latin-1"))
    assert stats["cases_by_source"] == {"manifest": 4}  # café.jpg found, Drüsen mapped, nothing quarantined
    assert stats["quarantined_by_reason"] == {}
    assert stats["findings_by_source"]["manifest"] == {"Drusen": 2, "Normal fundus": 2}
    catalog = Catalog(tmp_path / "enc.duckdb")
    try:  # Müller twice, Möller, Strauß: three pseudonyms (replacement characters had made Müller and Möller one)
        assert catalog.query("SELECT count(DISTINCT patient_id) FROM cases") == [(3,)]
    finally:
        catalog.close()
    said = [record.getMessage() for record in caplog.records]
    assert any("labels.csv: not UTF-8; read as cp1252" in line for line in said), said


def test_an_undecodable_label_file_is_quarantined_with_its_line_and_the_counts_reconcile(tmp_path: Path) -> None:
    mixed = _table(ROWS[:2]).encode("utf-8") + _table(ROWS[2:]).split("\r\n", 1)[1].encode("utf-8")
    mixed = mixed.replace("Möller".encode(), "Möller".encode("latin-1"))
    stats, _ = _build(tmp_path, mixed)
    assert stats["quarantined_by_reason"] == {"labels_undecodable": 1}
    assert stats["cases_by_source"].get("manifest", 0) == 0
    reconciled = stats["reconciliation"]["manifest"]
    assert reconciled["read"] == reconciled["cases"] + reconciled["quarantined"]
