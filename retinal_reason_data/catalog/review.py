"""The catalog's queries for review verdicts: the traces they name, and the `reviews`, `drops` and `assignments`
rows they change."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from retinal_reason_data.catalog import Catalog

Key = tuple[str, str]  # (item_id, generation fingerprint)


def reviewed_traces(catalog: Catalog, keys: Sequence[Key]) -> list[tuple[str, str, str, str, str, str]]:
    """(item_id, fingerprint, source, task, item JSON, generation JSON) of the named traces still in the
    catalog, in one query."""
    table = pa.table(
        {
            "item_id": pa.array([k[0] for k in keys], pa.string()),
            "fingerprint": pa.array([k[1] for k in keys], pa.string()),
        }
    )
    catalog.db.register("_reviewed", table)
    try:
        return catalog.query(
            "SELECT r.item_id, r.fingerprint, c.source, i.task, i.data, g.data FROM _reviewed r "
            "JOIN items i ON i.item_id = r.item_id JOIN cases c ON c.case_id = i.case_id "
            "JOIN generations g ON g.fingerprint = r.fingerprint AND g.item_id = r.item_id"
        )  # type: ignore[return-value]
    finally:
        catalog.db.unregister("_reviewed")


def exported_traces(catalog: Catalog) -> dict[str, str]:
    """fingerprint -> item_id of every trace an assignment exports."""
    return dict(catalog.query("SELECT fingerprint, item_id FROM assignments WHERE fingerprint IS NOT NULL"))


def assigned_items(catalog: Catalog) -> set[str]:
    return {item_id for (item_id,) in catalog.query("SELECT item_id FROM assignments")}


def store_review(
    catalog: Catalog,
    stage: str,
    reviews: Sequence[dict[str, Any]],
    drops: Sequence[dict[str, str]],
    traces_out: Sequence[str],
    items_out: Sequence[str],
) -> None:
    """In one transaction: replace the `reviews` rows and the drops of `stage`, take the traces `traces_out`
    out of their assignments and the items `items_out` out of the release."""
    with catalog.transaction():
        catalog.db.execute("DELETE FROM reviews")
        catalog.insert("reviews", reviews)
        catalog.db.execute("DELETE FROM drops WHERE stage = ?", [stage])
        catalog.insert("drops", drops, replace=False)
        _among(catalog, "UPDATE assignments SET fingerprint = NULL WHERE fingerprint IN", traces_out)
        _among(catalog, "DELETE FROM assignments WHERE item_id IN", items_out)


def _among(catalog: Catalog, statement: str, values: Sequence[str]) -> None:
    if not values:
        return
    catalog.db.register("_values", pa.table({"value": pa.array(list(values), pa.string())}))
    try:
        catalog.db.execute(f"{statement} (SELECT value FROM _values)")
    finally:
        catalog.db.unregister("_values")


def named_traces_read_only(
    path: Path, item_ids: Iterable[str], fingerprints: Iterable[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """From the catalog at `path`, opened read-only (so a review can read it beside another reader): (item_id,
    item JSON) of these items and (item_id, fingerprint, generation JSON) of these replies. Raises duckdb.Error
    when the catalog cannot be opened (a build holds it)."""
    asked = pa.table({"item_id": pa.array(sorted(set(item_ids)), pa.string())})
    wanted = pa.table({"fingerprint": pa.array(sorted(set(fingerprints)), pa.string())})
    db = duckdb.connect(str(path), read_only=True)
    try:
        db.register("_items", asked)
        db.register("_fingerprints", wanted)
        items = db.execute("SELECT i.item_id, i.data FROM items i JOIN _items USING (item_id)").fetchall()
        generations = db.execute(
            "SELECT g.item_id, g.fingerprint, g.data FROM generations g JOIN _fingerprints USING (fingerprint)"
        ).fetchall()
    finally:
        db.close()
    return items, generations
