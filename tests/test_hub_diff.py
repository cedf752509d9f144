"""Comparing releases by sample id, and the changelog written from the comparison."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retinal_reason_data.release.changelog import LISTED_IDS, prepend, render_entry
from retinal_reason_data.release.diff import ReleaseError, diff_indexes, load_release_index
from retinal_reason_data.release.hub import parse_version, tag_name, verify_export
from retinal_reason_data.release.index import INDEX_PATH, INDEX_SCHEMA


def index(*rows: tuple[str, str, str, str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"config": c, "split": s, "id": i, "digest": d} for c, s, i, d in rows], schema=INDEX_SCHEMA
    )


OLD = index(
    ("sft", "train", "a", "1"),
    ("sft", "train", "b", "2"),
    ("sft", "test", "c", "3"),
    ("rl", "train", "d", "4"),
)
NEW = index(
    ("sft", "train", "a", "1"),  # unchanged
    ("sft", "train", "b", "9"),  # changed content
    ("sft", "validation", "c", "3"),  # moved from test to validation
    ("sft", "train", "e", "5"),  # added
    ("rl", "test", "f", "6"),  # added; d removed
)


def test_diff_by_id_per_config() -> None:
    diff = diff_indexes(OLD, NEW, "v1.0.0", "v1.1.0")
    sft, rl = diff.configs["sft"], diff.configs["rl"]
    assert (sft.added, sft.removed, sft.changed, sft.moved) == (["e"], [], ["b"], ["c"])
    assert (rl.added, rl.removed, rl.changed, rl.moved) == (["f"], ["d"], [], [])
    assert sft.old_rows == {"test": 1, "train": 2} and sft.new_rows == {"train": 3, "validation": 1}
    assert not diff.unchanged and diff_indexes(NEW, NEW).unchanged
    first = diff_indexes(None, NEW)
    assert first.configs["sft"].added == ["a", "b", "c", "e"] and first.configs["sft"].old_rows == {}


def test_changelog_entry_and_history() -> None:
    manifest = {"recipe": "r", "recipe_version": "1", "recipe_hash": "h", "content_key": "k", "tool_version": "0.1"}
    entry = render_entry("v1.1.0", "v1.0.0", diff_indexes(OLD, NEW), manifest, "2025-01-02")
    assert entry.startswith("## v1.1.0 (2025-01-02)") and "since v1.0.0" in entry
    assert "| sft | test | 1 | 0 |" in entry and "| sft | validation | 0 | 1 |" in entry
    assert "- `sft`: 1 added, 0 removed, 1 changed, 1 moved to another split" in entry
    assert "  - removed (1): `d`" in entry
    history = prepend(None, render_entry("v1.0.0", None, diff_indexes(None, OLD), manifest, "2025-01-01"))
    history = prepend(history, entry)
    assert history.startswith("# Changelog\n") and history.index("## v1.1.0") < history.index("## v1.0.0")
    again = prepend(history, entry.replace("2025-01-02", "2025-01-03"))  # a rerun replaces its own entry
    assert again.count("## v1.1.0") == 1 and "2025-01-03" in again and "## v1.0.0" in again


def test_long_id_lists_are_cut_in_the_markdown_only() -> None:
    many = index(*(("sft", "train", f"id{n:03d}", "x") for n in range(LISTED_IDS + 7)))
    diff = diff_indexes(None, many)
    entry = render_entry("v2.0.0", None, diff, {}, "2025-01-01")
    assert "and 7 more (all in `changelog/v2.0.0.json`)" in entry
    assert len(diff.configs["sft"].added) == LISTED_IDS + 7


def test_versions() -> None:
    assert parse_version("1.2.3") == parse_version("v1.2.3") == (1, 2, 3)
    assert tag_name((1, 10, 0)) == "v1.10.0" and parse_version("1.10.0") > parse_version("1.9.9")
    for bad in ("1.2", "1.2.3.4", "01.2.3", "v1.2.x", "latest"):
        with pytest.raises(ReleaseError, match="expected X.Y.Z"):
            parse_version(bad)


def test_an_export_folder_without_an_index_or_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="no index/samples.parquet"):
        load_release_index(str(tmp_path))
    with pytest.raises(ReleaseError, match="no manifest.json"):
        verify_export(tmp_path)
    (tmp_path / INDEX_PATH).parent.mkdir()
    pq.write_table(NEW, tmp_path / INDEX_PATH)
    table, label = load_release_index(str(tmp_path))
    assert table.num_rows == 5 and label == str(tmp_path)
    with pytest.raises(ReleaseError, match="neither an export folder nor REPO@REVISION"):
        load_release_index("v1.0.0")
