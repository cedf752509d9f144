"""The DuckDB catalog: one file per recipe, the spine of a build. Users may query it directly."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
from pydantic import BaseModel

from retinal_reason_data.batches import batched
from retinal_reason_data.ingest.imaging import FINGERPRINT_VERSION
from retinal_reason_data.schema import Case, Generation, ImageRef, Item, Quarantine

SCHEMA_VERSION = 3
# DuckDB's memory while a source is ingested: it otherwise keeps every freshly written page cached (its default
# limit is 80 % of RAM), which grew the ingest by ~0.8 kB a case, and checkpoints briefly added ~100 MB more.
INGEST_MEMORY_LIMIT = "32MB"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS image_cache (
    path VARCHAR PRIMARY KEY, size BIGINT, mtime_ns BIGINT, modality VARCHAR, ref VARCHAR);
CREATE TABLE IF NOT EXISTS cases (
    case_id VARCHAR PRIMARY KEY, source VARCHAR, patient_id VARCHAR, data VARCHAR);
CREATE TABLE IF NOT EXISTS quarantine (
    source VARCHAR, file VARCHAR, row_ref VARCHAR, reason VARCHAR, detail VARCHAR);
CREATE TABLE IF NOT EXISTS items (
    item_id VARCHAR PRIMARY KEY, case_id VARCHAR, task VARCHAR, question_type VARCHAR,
    modality VARCHAR, data VARCHAR);
CREATE TABLE IF NOT EXISTS generations (
    fingerprint VARCHAR PRIMARY KEY, item_id VARCHAR, attempt INTEGER, verified BOOLEAN,
    error VARCHAR, prompt_tokens BIGINT, completion_tokens BIGINT, data VARCHAR);
CREATE TABLE IF NOT EXISTS image_clusters (
    sha256 VARCHAR PRIMARY KEY, exact_cluster VARCHAR, near_cluster VARCHAR, kept BOOLEAN);
CREATE TABLE IF NOT EXISTS drops (item_id VARCHAR, stage VARCHAR, reason VARCHAR, detail VARCHAR);
CREATE TABLE IF NOT EXISTS duplicate_matches (
    a VARCHAR, b VARCHAR, kind VARCHAR, near_distance INTEGER, detail_distance INTEGER, orientation VARCHAR,
    copy_kind VARCHAR, angle_deg DOUBLE, scale DOUBLE, mirrored BOOLEAN, inliers INTEGER,
    verification_score DOUBLE);
CREATE TABLE IF NOT EXISTS pixel_digests (sha256 VARCHAR PRIMARY KEY, digest VARCHAR);
CREATE TABLE IF NOT EXISTS assignments (
    item_id VARCHAR PRIMARY KEY, group_id VARCHAR, split VARCHAR, fingerprint VARCHAR,
    attempts INTEGER, pass_at_k DOUBLE);
CREATE TABLE IF NOT EXISTS counters (name VARCHAR PRIMARY KEY, value BIGINT);
CREATE TABLE IF NOT EXISTS reviews (
    fingerprint VARCHAR PRIMARY KEY, item_id VARCHAR, decision VARCHAR, reason VARCHAR, annotators INTEGER,
    generation VARCHAR);
CREATE TABLE IF NOT EXISTS teacher_events (
    logged_at TIMESTAMP, fingerprint VARCHAR, item_id VARCHAR, attempt INTEGER, endpoint VARCHAR, kind VARCHAR,
    status INTEGER, detail VARCHAR);
CREATE TABLE IF NOT EXISTS extractions (
    case_id VARCHAR, fingerprint VARCHAR PRIMARY KEY, model VARCHAR, rule VARCHAR, teacher VARCHAR,
    disagreements VARCHAR, error VARCHAR);
CREATE TABLE IF NOT EXISTS judgements (
    fingerprint VARCHAR PRIMARY KEY, item_id VARCHAR, candidate VARCHAR, verdict VARCHAR, model VARCHAR,
    reply VARCHAR);
CREATE TABLE IF NOT EXISTS stage_runs (
    run INTEGER PRIMARY KEY, stage VARCHAR, started TIMESTAMP, finished TIMESTAMP, summary VARCHAR);
"""
# The `meta` key under which schema version 1 kept the last summary of each stage (one JSON string each).
LEGACY_SUMMARY_KEYS = {"synthesize": "last_synthesis", "dedup": "dedup_summary", "curate": "curation_summary"}
# What turns a catalog of schema version N into version N + 1, run in order on open. Tables that are only added
# need no statement: `_TABLES` creates them (IF NOT EXISTS keeps the rows of a table an older build made).
_MIGRATIONS: dict[int, str] = {
    # 2 adds `extractions` and `judgements` (created until then by the teacher stages themselves) and
    # `stage_runs`, which takes over the stage summaries kept in `meta`
    1: " ".join(
        f"INSERT INTO stage_runs SELECT {run}, '{stage}', NULL, NULL, value FROM meta WHERE key = '{key}';"
        f"DELETE FROM meta WHERE key = '{key}';"
        for run, (stage, key) in enumerate(LEGACY_SUMMARY_KEYS.items(), start=1)
    ),
    # 3: what a duplicate match is (the copy's kind, angle, scale, mirror) and how sure the verification was
    2: " ".join(
        f"ALTER TABLE duplicate_matches ADD COLUMN IF NOT EXISTS {column};"
        for column in (
            "copy_kind VARCHAR",
            "angle_deg DOUBLE",
            "scale DOUBLE",
            "mirrored BOOLEAN",
            "inliers INTEGER",
            "verification_score DOUBLE",
        )
    ),
}

Model = TypeVar("Model", bound=BaseModel)
# "key IN" a list passed as one parameter: DuckDB semi-joins it and pushes the keys into the table scan, so only
# matching rows are read (a JOIN with a registered Arrow table read every row's data: 0.72 s against 0.07 s for
# 4,500 of 225k teacher replies)
_AMONG = "IN (SELECT unnest(?))"
_INCOMPLETE = "ingest_incomplete:"  # the `meta` key prefix marking a source whose ingest stopped half-way
TEACHER_EVENT_SCHEMA = pa.schema(
    [
        ("logged_at", pa.timestamp("us")),
        ("fingerprint", pa.string()),
        ("item_id", pa.string()),
        ("attempt", pa.int32()),
        ("endpoint", pa.string()),
        ("kind", pa.string()),
        ("status", pa.int32()),
        ("detail", pa.string()),
    ]
)


class Catalog:
    """A thin layer over one DuckDB file; every write is committed when the call returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = duckdb.connect(str(path))
        self.db.execute(_TABLES)
        self._migrate()
        if self.get_meta("fingerprint_version") != str(FINGERPRINT_VERSION):
            # fingerprints from another version of intake's hashing would not match fresh ones: fingerprint again
            self.db.execute("DELETE FROM image_cache")
            self.set_meta("fingerprint_version", str(FINGERPRINT_VERSION))

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        """Bring an older catalog to SCHEMA_VERSION step by step; refuse a newer or unknown one."""
        stored = self.get_meta("schema_version")
        version = SCHEMA_VERSION if stored is None else int(stored)
        with self.transaction():
            while version < SCHEMA_VERSION and version in _MIGRATIONS:
                if _MIGRATIONS[version]:
                    self.db.execute(_MIGRATIONS[version])
                version += 1
            if version != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: catalog schema {stored} is not {SCHEMA_VERSION}; delete it to rebuild"
                )
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    # --- small helpers ----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", [key])
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def record_stage_run(self, stage: str, summary: dict[str, Any], started: datetime | None = None) -> None:
        """Store the summary of a run of `stage` that finished now (`started`: when it began, in UTC)."""
        finished = datetime.now(UTC).replace(tzinfo=None)
        begun = started.astimezone(UTC).replace(tzinfo=None) if started is not None else None
        self.db.execute(
            "INSERT INTO stage_runs SELECT coalesce(max(run), 0) + 1, ?, ?, ?, ? FROM stage_runs",
            [stage, begun, finished, dumps(summary)],
        )

    def last_stage_summary(self, stage: str) -> dict[str, Any]:
        """The summary of the latest run of `stage`, or {} when it never ran."""
        row = self._one("SELECT summary FROM stage_runs WHERE stage = ? ORDER BY run DESC LIMIT 1", [stage])
        return json.loads(row[0]) if row else {}

    def incomplete_ingests(self) -> list[str]:
        """The sources whose last ingest stopped half-way (see `source_writer`)."""
        rows = self.query("SELECT key FROM meta WHERE key LIKE ? ORDER BY key", [f"{_INCOMPLETE}%"])
        return [key.removeprefix(_INCOMPLETE) for (key,) in rows]

    def bump(self, name: str, by: int = 1) -> None:
        self.db.execute(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            [name, by],
        )

    def counter(self, name: str) -> int:
        row = self._one("SELECT value FROM counters WHERE name = ?", [name])
        return int(row[0]) if row else 0

    def count(self, table: str) -> int:
        return int(self._one(f"SELECT count(*) FROM {table}")[0])

    def tally(self, table: str, column: str) -> dict[Any, int]:
        """How many rows of `table` hold each value of `column`, by value."""
        if not (table.isidentifier() and column.isidentifier()):
            raise ValueError(f"not a table and column name: {table!r}, {column!r}")
        return dict(self.query(f"SELECT {column}, count(*) FROM {table} GROUP BY {column} ORDER BY {column}"))

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, reading the result to its end (DuckDB refuses half-read results)."""
        rows = self.db.execute(sql, list(params)).fetchall()
        return rows[0] if rows else None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, list(params)).fetchall()

    def iter_rows(self, sql: str, params: Sequence[Any] = (), batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, fetched a batch at a time on a cursor of their own."""
        cursor = self.db.cursor()
        try:
            cursor.execute(sql, list(params))
            while rows := cursor.fetchmany(batch):
                yield from rows
        finally:
            cursor.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def insert(self, table: str, rows: Sequence[dict[str, Any]], replace: bool = True) -> None:
        """Insert rows (dicts with the table's columns in order) in one statement; `replace` upserts by key."""
        if not rows:
            return
        arrow = pa.Table.from_pylist(list(rows))
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        self.db.register("_incoming", arrow)
        try:
            self.db.execute(f"{verb} INTO {table} SELECT * FROM _incoming")
        finally:
            self.db.unregister("_incoming")

    @contextmanager
    def bounded_memory(self, limit: str) -> Iterator[None]:
        """Hold DuckDB's buffer cache to `limit` (it evicts clean pages, spills the rest) for a long run of
        writes, then return to the default limit."""
        self.db.execute("SET memory_limit = ?", [limit])
        try:
            yield
        finally:
            self.db.execute("RESET memory_limit")

    # --- images -----------------------------------------------------------------------------------
    def cached_image(self, path: str, size: int, mtime_ns: int, modality: str) -> ImageRef | None:
        return self.cached_images([(path, size, mtime_ns, modality)]).get((path, modality))

    def cached_images(self, files: Sequence[tuple[str, int, int, str]]) -> dict[tuple[str, str], ImageRef]:
        """The stored fingerprints of (path, size, mtime_ns, modality) files still as they were, in one query,
        keyed by (path, modality). One query per batch: a point query per image scanned the cache each time."""
        if not files:
            return {}
        wanted = {(path, size, mtime_ns, modality) for path, size, mtime_ns, modality in files}
        rows = self.query(
            f"SELECT path, size, mtime_ns, modality, ref FROM image_cache WHERE path {_AMONG}",
            [sorted({path for path, *_ in files})],
        )
        refs = {
            (path, modality): ImageRef.model_validate_json(ref)
            for path, size, mtime_ns, modality, ref in rows
            if (path, size, mtime_ns, modality) in wanted
        }
        return {key: ref for key, ref in refs.items() if ref.near_hash is not None}  # older fingerprints lack it

    def cache_images(self, entries: Iterable[tuple[int, int, ImageRef]]) -> None:
        rows = [
            {
                "path": ref.path,
                "size": size,
                "mtime_ns": mtime,
                "modality": str(ref.modality),
                "ref": ref.model_dump_json(),
            }
            for size, mtime, ref in entries
        ]
        self.insert("image_cache", rows)

    # --- cases ------------------------------------------------------------------------------------
    @contextmanager
    def source_writer(self, source: str, batch: int = 500) -> Iterator[SourceWriter]:
        """Replace one source's cases and quarantine records, committed a batch at a time, with DuckDB's
        memory held to INGEST_MEMORY_LIMIT.

        Not one transaction: DuckDB keeps uncommitted rows in memory, which grew to about 900 MB at 100k
        cases. A run stopped half-way leaves the source partly ingested, marked in `meta`; the next
        ingest of the source replaces it whole."""
        marker = f"{_INCOMPLETE}{source}"
        with self.bounded_memory(INGEST_MEMORY_LIMIT):
            self.set_meta(marker, "true")
            self.db.execute("DELETE FROM cases WHERE source = ?", [source])
            self.db.execute("DELETE FROM quarantine WHERE source = ?", [source])
            writer = SourceWriter(self, batch)
            yield writer
            writer.flush()
            self.db.execute("DELETE FROM meta WHERE key = ?", [marker])

    def forget_sources_except(self, sources: Iterable[str]) -> None:
        names = list(sources)
        placeholders = ", ".join("?" for _ in names) or "NULL"
        self.db.execute(f"DELETE FROM cases WHERE source NOT IN ({placeholders})", names)
        self.db.execute(f"DELETE FROM quarantine WHERE source NOT IN ({placeholders})", names)

    def iter_cases(self, batch: int = 1000, ordered: bool = True) -> Iterator[Case]:
        """Every case, by case id; `ordered=False` streams them in storage order without DuckDB first sorting
        every case's JSON in memory."""
        sql = "SELECT data FROM cases" + (" ORDER BY case_id" if ordered else "")
        yield from self._iter_models(sql, Case, batch)

    def get_case(self, case_id: str) -> Case | None:
        row = self._one("SELECT data FROM cases WHERE case_id = ?", [case_id])
        return Case.model_validate_json(row[0]) if row else None

    def cases_among(self, case_ids: Iterable[str]) -> dict[str, Case]:
        """These cases, in one query."""
        rows = self.query(f"SELECT case_id, data FROM cases WHERE case_id {_AMONG}", [sorted(set(case_ids))])
        return {case_id: Case.model_validate_json(data) for case_id, data in rows}

    # --- items ------------------------------------------------------------------------------------
    def replace_items(self, items: Iterable[Item], batch: int = 2000) -> None:
        """Make the items table exactly `items` (streamed: inserted a batch at a time, in one transaction so that
        readers see the old set or the new one); unchanged rows keep their ids (content-derived)."""
        with self.transaction():
            self.db.execute("DELETE FROM items")
            for chunk in batched(items, batch):
                self.insert("items", [item_row(item) for item in chunk])

    def iter_items(self, batch: int = 1000) -> Iterator[Item]:
        yield from self._iter_models("SELECT data FROM items ORDER BY item_id", Item, batch)

    def iter_items_with_cases(self, batch: int = 500, by_case: bool = False) -> Iterator[tuple[Item, Case]]:
        """Items with their cases, in item id order (or grouped by case), a batch at a time."""
        cursor = self.db.cursor()
        order = "i.case_id, i.item_id" if by_case else "i.item_id"
        cursor.execute(f"SELECT i.data, c.data FROM items i JOIN cases c USING (case_id) ORDER BY {order}")
        case_json, case = None, None
        while rows := cursor.fetchmany(batch):
            for item_data, case_data in rows:
                if case_data != case_json:  # the items of a case share one parsed Case (do not mutate it)
                    case_json, case = case_data, Case.model_validate_json(case_data)
                yield Item.model_validate_json(item_data), case  # type: ignore[misc]
        cursor.close()

    # --- generations ------------------------------------------------------------------------------
    def has_generation(self, fingerprint: str) -> bool:
        sql = "SELECT 1 FROM generations WHERE fingerprint = ? AND error IS NULL"
        return self._one(sql, [fingerprint]) is not None

    def answered_fingerprints(self) -> set[str]:
        return {row[0] for row in self.query("SELECT fingerprint FROM generations WHERE error IS NULL")}

    def answered_among(self, fingerprints: Sequence[str]) -> dict[str, bool]:
        """Which of these fingerprints have a reply (transport failures do not count), and whether verified."""
        rows = self._answered_rows(fingerprints, "verified")
        return {fingerprint: bool(verified) for fingerprint, verified in rows}

    def generations_among(self, fingerprints: Sequence[str]) -> dict[str, Generation]:
        """The replies to these fingerprints (transport failures do not count): one query for a batch."""
        rows = self._answered_rows(fingerprints, "data")
        return {fingerprint: Generation.model_validate_json(data) for fingerprint, data in rows}

    def iter_generations(self, batch: int = 1000) -> Iterator[Generation]:
        """Every stored attempt, failures included, in storage order, a batch at a time."""
        yield from self._iter_models("SELECT data FROM generations", Generation, batch)

    def _answered_rows(self, fingerprints: Sequence[str], column: str) -> list[tuple[Any, ...]]:
        if not fingerprints:
            return []
        sql = f"SELECT fingerprint, {column} FROM generations WHERE fingerprint {_AMONG} AND error IS NULL"
        return self.query(sql, [list(fingerprints)])

    def add_generations(
        self,
        generations: Sequence[Generation],
        events: Sequence[dict[str, Any]] = (),
        db: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        """Commit teacher replies and the failed calls behind them in one transaction; `db` is a cursor of
        this catalog when the commit runs on another thread (the synthesis writer)."""
        db = db or self.db
        rows = [_generation_row(g) for g in generations]
        if not rows and not events:
            return
        db.execute("BEGIN TRANSACTION")
        try:
            for table, data, schema, verb in (
                ("generations", rows, None, "INSERT OR REPLACE"),
                ("teacher_events", events, TEACHER_EVENT_SCHEMA, "INSERT"),
            ):
                if data:
                    db.register("_incoming", pa.Table.from_pylist(list(data), schema=schema))
                    try:
                        db.execute(f"{verb} INTO {table} SELECT * FROM _incoming")
                    finally:
                        db.unregister("_incoming")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _iter_models(self, sql: str, model: type[Model], batch: int) -> Iterator[Model]:
        cursor = self.db.cursor()
        cursor.execute(sql)
        while rows := cursor.fetchmany(batch):
            for (data,) in rows:
                yield model.model_validate_json(data)
        cursor.close()


class SourceWriter:
    """Buffers cases and quarantine records of one source and writes them in batches."""

    def __init__(self, catalog: Catalog, batch: int) -> None:
        self.catalog = catalog
        self.batch = batch
        self.cases: list[dict[str, Any]] = []
        self.quarantined: list[dict[str, Any]] = []
        self.fingerprints: list[tuple[int, int, ImageRef]] = []

    def add_fingerprint(self, size: int, mtime_ns: int, ref: ImageRef) -> None:
        """Remember a new image fingerprint for the cache (written with the next batch)."""
        self.fingerprints.append((size, mtime_ns, ref))

    def add_case(self, case: Case) -> None:
        self.cases.append(
            {
                "case_id": case.case_id,
                "source": case.source,
                "patient_id": case.patient_id,
                "data": case.model_dump_json(),
            }
        )
        if len(self.cases) >= self.batch:
            self.flush()

    def add_quarantine(self, record: Quarantine) -> None:
        self.quarantined.append(
            {
                "source": record.source,
                "file": record.file,
                "row_ref": None if record.row is None else str(record.row),
                "reason": record.reason,
                "detail": record.detail,
            }
        )
        if len(self.quarantined) >= self.batch:
            self.flush()

    def flush(self) -> None:
        self.catalog.insert("cases", self.cases)
        self.catalog.insert("quarantine", self.quarantined, replace=False)
        self.catalog.cache_images(self.fingerprints)
        self.cases, self.quarantined, self.fingerprints = [], [], []


def item_row(item: Item) -> dict[str, str]:
    """The `items` table row of an item."""
    return {
        "item_id": item.item_id,
        "case_id": item.case_id,
        "task": str(item.task),
        "question_type": str(item.question_type),
        "modality": str(item.modality),
        "data": item.model_dump_json(),
    }


def _generation_row(generation: Generation) -> dict[str, Any]:
    return {
        "fingerprint": generation.fingerprint,
        "item_id": generation.item_id,
        "attempt": generation.attempt,
        "verified": generation.verified,
        "error": generation.error,
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "data": generation.model_dump_json(),
    }


def dumps(value: Any) -> str:
    """Compact, key-sorted JSON (stable bytes for hashing and storage)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
