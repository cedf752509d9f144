"""The catalog's schema: every table under its version, older catalogs brought forward on open."""

from __future__ import annotations

from datetime import UTC, datetime
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
    db.execute(
        """INSERT INTO meta VALUES ('dedup_summary', '{"exact_clusters":3}'), ('ingest_incomplete:idrid', 'true')"""
    )
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


def test_the_stage_summaries_of_a_version_one_catalog_move_to_stage_runs(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    _version_one_catalog(path)
    catalog = Catalog(path)
    assert catalog.last_stage_summary("dedup") == {"exact_clusters": 3}
    assert catalog.last_stage_summary("curate") == {}
    assert catalog.get_meta("dedup_summary") is None
    assert catalog.incomplete_ingests() == ["idrid"]
    catalog.close()


def test_the_latest_run_of_a_stage_gives_its_summary(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.duckdb")
    catalog.record_stage_run("dedup", {"exact_clusters": 1})
    catalog.record_stage_run("curate", {"groups_by_split": {"train": 2}})
    catalog.record_stage_run("dedup", {"exact_clusters": 2})
    assert catalog.last_stage_summary("dedup") == {"exact_clusters": 2}
    assert catalog.last_stage_summary("curate") == {"groups_by_split": {"train": 2}}
    assert catalog.count("stage_runs") == 3
    catalog.close()


def test_a_stage_run_keeps_when_it_started_and_finished(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.duckdb")
    began = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    catalog.record_stage_run("curate", {"groups_by_split": {}}, started=began)
    started, finished = catalog.db.execute("SELECT started, finished FROM stage_runs").fetchone()
    assert started == datetime(2026, 1, 2, 3, 4, 5)
    assert finished > started
    catalog.close()


def test_a_version_two_catalog_gets_the_copy_columns_of_duplicate_matches(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    db = duckdb.connect(str(path))
    db.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    db.execute(
        "CREATE TABLE duplicate_matches (a VARCHAR, b VARCHAR, kind VARCHAR, near_distance INTEGER, "
        "detail_distance INTEGER, orientation VARCHAR)"
    )
    db.execute("INSERT INTO duplicate_matches VALUES ('a1', 'b1', 'near', 7, 9, 'mirror')")
    db.close()
    catalog = Catalog(path)
    assert catalog.get_meta("schema_version") == str(SCHEMA_VERSION) == "3"
    old = catalog.db.execute("SELECT * FROM duplicate_matches").fetchall()
    assert old == [("a1", "b1", "near", 7, 9, "mirror", None, None, None, None, None, None)]
    row = {"a": "a2", "b": "b2", "kind": "copy", "near_distance": 60, "detail_distance": 90}
    row |= {"orientation": "identity", "copy_kind": "rotation+crop", "angle_deg": -12.5, "scale": 1.1}
    row |= {"mirrored": False, "inliers": 143, "verification_score": 0.93}
    catalog.insert("duplicate_matches", [row], replace=False)
    stored = catalog.db.execute("SELECT copy_kind, angle_deg, inliers FROM duplicate_matches WHERE a = 'a2'")
    assert stored.fetchall() == [("rotation+crop", -12.5, 143)]
    catalog.close()
    Catalog(path).close()  # opening it again runs no migration twice
