"""The catalog's queries for the export: which splits exist, how many rows each will hold, and the rows
themselves (item, case, exported trace, pass@k), streamed in item order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from retinal_reason_data.catalog import Catalog

# the exported trace of an assignment: a reviewed one (an annotator's edit, or the trace marked accepted, in
# `reviews`, see review.verdicts.apply_verdicts) before the teacher's
_ROWS = """FROM assignments a JOIN items i USING (item_id) JOIN cases c ON c.case_id = i.case_id
           LEFT JOIN generations g ON g.fingerprint = a.fingerprint
           LEFT JOIN reviews r ON r.fingerprint = a.fingerprint"""


def has_split(catalog: Catalog, split: str) -> bool:
    return bool(catalog.query("SELECT 1 FROM assignments WHERE split = ? LIMIT 1", [split]))


def count_assigned(catalog: Catalog, splits: Sequence[str], with_trace: bool) -> int:
    """Assignments to these splits (only those with an exported trace when `with_trace`)."""
    placeholders = ", ".join("?" for _ in splits)
    trace_rule = " AND fingerprint IS NOT NULL" if with_trace else ""
    sql = f"SELECT count(*) FROM assignments WHERE split IN ({placeholders}){trace_rule}"
    return int(catalog.query(sql, list(splits))[0][0])


def iter_export_rows(catalog: Catalog, splits: Sequence[str], with_trace: bool) -> Iterator[tuple[Any, ...]]:
    """(item JSON, case JSON, exported generation JSON or None, pass@k) of the assignments to these splits, by
    item id, streamed; only those with an exported trace when `with_trace`."""
    placeholders = ", ".join("?" for _ in splits)
    trace_rule = "AND a.fingerprint IS NOT NULL" if with_trace else ""
    sql = f"""SELECT i.data, c.data, coalesce(r.generation, g.data), a.pass_at_k {_ROWS}
              WHERE a.split IN ({placeholders}) {trace_rule} ORDER BY i.item_id"""
    yield from catalog.iter_rows(sql, list(splits), batch=256)


def iter_export_row_digests(
    catalog: Catalog, splits: Sequence[str], batch: int = 4096
) -> Iterator[list[tuple[str, ...]]]:
    """Batches of (item_id, exported fingerprint, pass@k, md5 of item, case and exported trace) of the
    assignments to these splits, by item id (empty strings for what is missing): the identity of their rows. The
    case's file paths (`path`, `file`) are left out: a checkout elsewhere gives the same identity."""
    placeholders = ", ".join("?" for _ in splits)
    sql = f"""SELECT a.item_id, coalesce(a.fingerprint, ''), coalesce(CAST(a.pass_at_k AS VARCHAR), ''),
                     md5(i.data), md5(regexp_replace(c.data, '"(path|file)":"(\\\\.|[^"\\\\])*"', '', 'g')),
                     coalesce(md5(coalesce(r.generation, g.data)), '')
              {_ROWS} WHERE a.split IN ({placeholders}) ORDER BY a.item_id"""
    cursor = catalog.db.cursor()
    try:
        cursor.execute(sql, list(splits))
        while rows := cursor.fetchmany(batch):
            yield rows
    finally:
        cursor.close()
