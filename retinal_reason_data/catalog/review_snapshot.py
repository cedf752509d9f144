"""The review page's copy of the catalog: the traces a build exports plus every trace a verdict names, copied
into a temporary DuckDB file, so the catalog stays free for `rrd build` while annotators work and memory does
not grow with the size of the build."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

Key = tuple[str, str]  # (item_id, generation fingerprint)


class SnapshotError(RuntimeError):
    """The catalog cannot be read for review (missing, or held by a running build)."""


class ReviewSnapshot:
    """The copied rows (tables `traces` and `item_drops`), read by the review server's threads."""

    def __init__(self, catalog_path: Path, reviewed: list[Key], withheld_stage: str) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="rrd-review-")
        self.db = duckdb.connect(
            str(Path(self._folder.name) / "snapshot.duckdb"),
            # bounded memory: what does not fit stays in the file, so memory does not grow with the build
            config={"memory_limit": "384MB", "threads": 2, "preserve_insertion_order": False},
        )
        self._local = threading.local()
        try:
            self._copy(catalog_path, reviewed, withheld_stage)
        except duckdb.Error as exc:
            self.close()
            # IOException: a build in another process holds the catalog; ResourceInUse: one in this process
            busy = isinstance(exc, (duckdb.IOException, getattr(duckdb, "ResourceInUseException", duckdb.IOException)))
            hint = "; is a build running?" if busy else ""
            raise SnapshotError(f"{catalog_path}: cannot read the catalog ({exc}){hint}") from exc

    def _copy(self, catalog_path: Path, reviewed: list[Key], withheld_stage: str) -> None:
        path = str(catalog_path).replace("'", "''")
        self.db.execute(f"ATTACH '{path}' AS cat (READ_ONLY)")
        self.db.register(
            "_reviewed",
            pa.table(
                {
                    "item_id": pa.array([k[0] for k in reviewed], pa.string()),
                    "fingerprint": pa.array([k[1] for k in reviewed], pa.string()),
                }
            ),
        )
        try:
            self.db.execute(
                """CREATE TABLE wanted AS
                   SELECT item_id, fingerprint FROM cat.assignments WHERE fingerprint IS NOT NULL
                   UNION SELECT item_id, fingerprint FROM _reviewed
                   UNION SELECT g.item_id, arg_min(g.fingerprint, (CASE WHEN g.verified THEN '0' ELSE '1' END)
                                                   || g.fingerprint)
                         FROM cat.generations g WHERE g.item_id IN (SELECT item_id FROM cat.drops WHERE stage = ?)
                         GROUP BY g.item_id""",
                [withheld_stage],
            )
            self.db.execute(
                """CREATE TABLE traces AS
                   SELECT w.item_id, w.fingerprint, c.source, i.modality, i.task, i.question_type, a.split,
                          a.pass_at_k, a.attempts, a.fingerprint AS exported, i.data AS item, c.data AS case_data,
                          g.data AS generation
                   FROM wanted w JOIN cat.items i ON i.item_id = w.item_id JOIN cat.cases c ON c.case_id = i.case_id
                   JOIN cat.generations g ON g.fingerprint = w.fingerprint AND g.item_id = w.item_id
                   LEFT JOIN cat.assignments a ON a.item_id = w.item_id"""
            )
            self.db.execute("CREATE INDEX traces_key ON traces (item_id, fingerprint)")
            self.db.execute(
                """CREATE TABLE item_drops AS SELECT d.item_id, d.stage, d.reason, d.detail FROM cat.drops d
                   WHERE d.item_id IN (SELECT item_id FROM wanted) ORDER BY d.item_id, d.stage, d.reason"""
            )
        finally:
            self.db.unregister("_reviewed")
            self.db.execute("DETACH cat")

    def close(self) -> None:
        self.db.close()
        self._folder.cleanup()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:  # one cursor per server thread (a DuckDB connection is not shared across threads)
            cursor = self._local.cursor = self.db.cursor()
        return cursor

    def trace_facets(self) -> list[tuple[str, str, str, str, str, str]]:
        """(item_id, fingerprint, source, modality, task, question_type) of every trace, by key."""
        return self.db.execute(
            "SELECT item_id, fingerprint, source, modality, task, question_type FROM traces "
            "ORDER BY item_id, fingerprint"
        ).fetchall()

    def items_dropped_at(self, stage: str) -> set[str]:
        rows = self.db.execute("SELECT DISTINCT item_id FROM item_drops WHERE stage = ?", [stage]).fetchall()
        return {item_id for (item_id,) in rows}

    def trace(self, key: Key) -> tuple[Any, ...] | None:
        """(item, case, generation JSON, split, pass_at_k, attempts, exported fingerprint) of one trace."""
        return (
            self._cursor()
            .execute(
                "SELECT item, case_data, generation, split, pass_at_k, attempts, exported FROM traces "
                "WHERE item_id = ? AND fingerprint = ?",
                list(key),
            )
            .fetchone()
        )

    def drops(self, item_id: str) -> list[tuple[str, str, str]]:
        """(stage, reason, detail) of every drop of an item."""
        sql = "SELECT stage, reason, detail FROM item_drops WHERE item_id = ?"
        return self._cursor().execute(sql, [item_id]).fetchall()
