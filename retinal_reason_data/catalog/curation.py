"""The catalog's queries for curation and the release check: pixel digests, the items' strata, the rows a
curation run replaces, and the split of every group, case and duplicate cluster."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from retinal_reason_data.catalog import Catalog


def pixel_digests(catalog: Catalog) -> dict[str, str]:
    """image sha256 -> pixel digest, for every image digested by an earlier run."""
    return dict(catalog.iter_rows("SELECT sha256, digest FROM pixel_digests"))


def iter_item_strata(catalog: Catalog) -> Iterator[tuple[str, str, str]]:
    """(case_id, task, modality) of every item, in item id order, streamed."""
    yield from catalog.iter_rows("SELECT case_id, task, modality FROM items ORDER BY item_id")  # type: ignore[misc]


def clear_curation(catalog: Catalog, stages: Iterable[str]) -> None:
    """Delete what a curation run writes: the drops of its stages, the assignments, the image clusters and the
    duplicate matches (call inside the transaction that writes the new ones)."""
    names = list(stages)
    placeholders = ", ".join("?" for _ in names) or "NULL"
    catalog.db.execute(f"DELETE FROM drops WHERE stage IN ({placeholders})", names)
    for table in ("assignments", "image_clusters", "duplicate_matches"):
        catalog.db.execute(f"DELETE FROM {table}")


def groups_in_several_splits(catalog: Catalog) -> list[tuple[str, list[str]]]:
    """(group, its splits) of every group assigned to more than one split, by group."""
    return catalog.query(
        "SELECT group_id, list(DISTINCT split ORDER BY split) FROM assignments GROUP BY group_id "
        "HAVING count(DISTINCT split) > 1 ORDER BY group_id"
    )  # type: ignore[return-value]


def iter_case_splits(catalog: Catalog) -> Iterator[tuple[str, str]]:
    """(case_id, split) for every split a case's items are assigned to, streamed."""
    yield from catalog.iter_rows(  # type: ignore[misc]
        "SELECT DISTINCT i.case_id, a.split FROM assignments a JOIN items i USING (item_id)"
    )


def near_clusters(catalog: Catalog) -> dict[str, str]:
    """image sha256 -> its near-duplicate cluster."""
    return dict(catalog.iter_rows("SELECT sha256, near_cluster FROM image_clusters"))


def delete_drops(catalog: Catalog, stage: str) -> None:
    catalog.db.execute("DELETE FROM drops WHERE stage = ?", [stage])


def count_drops(catalog: Catalog, stage: str) -> int:
    return int(catalog.query("SELECT count(*) FROM drops WHERE stage = ?", [stage])[0][0])


def assigned_items_of_task(catalog: Catalog, task: str) -> list[tuple[str, str]]:
    """(item_id, case_id) of every assigned item of this task, by item id."""
    return catalog.query(
        "SELECT a.item_id, i.case_id FROM assignments a JOIN items i ON i.item_id = a.item_id "
        "WHERE i.task = ? ORDER BY a.item_id",
        [task],
    )  # type: ignore[return-value]


def withhold_items(catalog: Catalog, drops: list[dict[str, str]], item_ids: Iterable[str]) -> None:
    """In one transaction: record the drops and take these items out of the assignments."""
    with catalog.transaction():
        catalog.insert("drops", drops, replace=False)
        for item_id in item_ids:
            catalog.db.execute("DELETE FROM assignments WHERE item_id = ?", [item_id])


def replace_drops(catalog: Catalog, stage: str, drops: list[dict[str, str]]) -> None:
    """Make the drops of `stage` exactly these, in one transaction."""
    with catalog.transaction():
        delete_drops(catalog, stage)
        catalog.insert("drops", drops, replace=False)
