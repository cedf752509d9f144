"""The catalog's schema: every table under its version, older catalogs brought forward on open."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from retinal_reason_data.catalog import SCHEMA_VERSION, Catalog


def _version_one_catalog(path: Path) -> None:
    """A catalog as schema version 1 left it: no `extractions` or `judgements` until a teacher stage ran."""
    db = duckdb.connect(str(path))
    db.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute(
        "CREATE TABLE judgements (fingerprint VARCHAR PRIMARY KEY, item_id VARCHAR, candidate VARCHAR, "
        "verdict VARCHAR, model VARCHAR, reply VARCHAR)"
    )
    db.execute("INSERT INTO judgements VALUES ('f1', 'i1', 'crao', 'equivalent', 'm', 'equivalent')")
    db.close()


def _tables(catalog: Catalog) -> set[str]:
    return {name for (name,) in catalog.db.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def test_a_new_catalog_holds_the_teacher_tables(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.duckdb")
    assert {"extractions", "judgements"} <= _tables(catalog)
    assert catalog.get_meta("schema_version") == str(SCHEMA_VERSION)
    catalog.close()


def test_a_version_one_catalog_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    _version_one_catalog(path)
    catalog = Catalog(path)
    assert catalog.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert {"extractions", "judgements"} <= _tables(catalog)
    assert catalog.count("judgements") == 1
    catalog.close()


def test_a_newer_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    Catalog(path).close()
    db = duckdb.connect(str(path))
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    db.close()
    with pytest.raises(RuntimeError, match=f"catalog schema {SCHEMA_VERSION + 1} is not {SCHEMA_VERSION}"):
        Catalog(path)
