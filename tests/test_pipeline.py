"""End to end: phantom collections -> catalog -> items -> offline teacher -> export -> load_dataset."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import datasets
import pytest
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.ingest.imaging import png_chunk_types
from tests.conftest import SMALL_SOURCES, write_recipe

pytestmark = pytest.mark.slow  # the module's own build, rebuilt and re-exported

runner = CliRunner()


def _rrd(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _stats(recipe: Path) -> dict:
    return json.loads(_rrd("stats", str(recipe), "--json"))


def _parquet_digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "data").rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = write_recipe(tmp_path_factory.mktemp("build"))
    _rrd("build", str(recipe))
    return recipe


def test_export_loads_with_datasets_and_decodes_images(built: Path) -> None:
    out = built.parent / "export"
    sft = datasets.load_dataset(str(out), "sft")
    rl = datasets.load_dataset(str(out), "rl")
    assert set(sft) == {"train", "validation", "test"}
    assert set(rl) == {"train", "test"}
    rows = [row for split in sft.values() for row in split]
    assert rows, "the sft config is empty"
    image = rows[0]["images"][0]
    assert isinstance(image, Image.Image) and image.size[0] > 32
    assert {row["task"] for row in rows} == {"basic", "complex"}
    basic_types = {row["question_type"] for row in rows if row["task"] == "basic"}
    assert basic_types == {"true_false", "single_choice", "multiple_choice", "open"}
    for row in rows:
        assert row["response"].startswith("<think>") and row["response"].endswith("</answer>")
        assert row["think"] and row["think"] in row["response"]
        assert row["patient_id"].startswith("p-")
    rl_rows = [row for split in rl.values() for row in split]
    truth = json.loads(rl_rows[0]["ground_truth"])
    assert truth["answer"] == rl_rows[0]["answer"]


def test_only_verified_traces_are_exported(built: Path) -> None:
    from retinal_reason_data.rewards import compute_score

    out = built.parent / "export"
    sft = datasets.load_dataset(str(out), "sft", split="train")
    for row in sft:
        truth = json.dumps(
            {"question_type": row["question_type"], "answer": row["answer"], "aliases": row["answer_aliases"]}
        )
        assert compute_score("x", row["response"], truth) == pytest.approx(1.0)


def test_stats_reconcile_and_name_quarantine_reasons(built: Path) -> None:
    stats = _stats(built)
    for key in (
        "cases_by_source",
        "findings_by_source",
        "images",
        "quarantined_by_reason",
        "items_by_task",
        "generations",
        "duplicates",
        "dropped_by_filter",
        "exported",
    ):
        assert key in stats
    # aptos phantom: 15 rows, one missing image, one truncated image, one unknown label
    assert stats["reconciliation"]["aptos2019"] == {"read": 15, "cases": 12, "quarantined": 3}
    assert {"image_missing", "image_unreadable", "unknown_label"} <= set(stats["quarantined_by_reason"])
    assert stats["findings_by_source"]["oct2017"].keys() <= {
        "Choroidal neovascularisation",
        "Diabetic macular oedema",
        "Drusen on OCT",
        "Normal retina on OCT",
    }
    generations = stats["generations"]
    assert generations["attempts"] == 2 * sum(stats["items_by_task"].values())
    assert generations["verified"] + sum(generations["failed_by_reason"].values()) == generations["attempts"]
    exported = stats["exported"]
    assert sum(exported["sft"].values()) > 0 and sum(exported["rl"].values()) > 0


def test_quarantine_records_name_file_and_row(built: Path) -> None:
    import duckdb

    db = duckdb.connect(str(built.parent / "small.duckdb"), read_only=True)
    rows = db.execute("SELECT file, row_ref, reason, detail FROM quarantine WHERE source = 'aptos2019'").fetchall()
    db.close()
    assert len(rows) == 3
    for file, row_ref, _reason, detail in rows:
        assert file.endswith("train.csv") and row_ref is not None and file in detail


def test_second_build_redoes_nothing_and_writes_identical_files(built: Path) -> None:
    out = built.parent / "export"
    before = _parquet_digests(out)
    output = _rrd("build", str(built))
    assert "0 requests" in output and "up to date" in output
    assert _stats(built)["generations"]["requests"] == 0
    assert _parquet_digests(out) == before
    _rrd("export", str(built), "--force")  # rewritten from scratch: still the same bytes
    assert _parquet_digests(out) == before


def test_splits_keep_each_patient_on_one_side(built: Path) -> None:
    out = built.parent / "export"
    sides: dict[str, set[str]] = {}
    for config in ("sft", "rl"):
        for split, rows in datasets.load_dataset(str(out), config).items():
            side = "test" if split == "test" else f"{config}-{split}"
            for patient in rows["patient_id"]:
                sides.setdefault(patient, set()).add(side)
    assert all(len(s) == 1 for s in sides.values()), {p: s for p, s in sides.items() if len(s) > 1}


def test_exported_images_carry_no_metadata(built: Path) -> None:
    out = built.parent / "export"
    table = datasets.load_dataset(str(out), "sft", split="train").cast_column(
        "images", datasets.List(datasets.Image(decode=False))
    )
    for row in table:
        for cell in row["images"]:
            data = cell["bytes"]
            if data[:4] == b"\x89PNG":
                assert b"tEXt" not in png_chunk_types(data)
            else:
                assert b"Exif" not in data[:4096]
            Image.open(io.BytesIO(data)).load()


def test_manifest_and_card(built: Path) -> None:
    out = built.parent / "export"
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "config_name: sft" in card and "config_name: rl" in card
    assert "It is not a model" in card.replace("\n", " ") or "not a model" in card
    assert str(manifest["rows"]["sft"]["train"]) in card


def test_a_different_export_in_a_same_named_folder_is_not_served_from_a_stale_cache(
    built: Path, tmp_path: Path
) -> None:
    datasets.load_dataset(str(built.parent / "export"), "sft")  # fills the cache for folders named 'export'
    other = write_recipe(tmp_path, sources=[SMALL_SOURCES[1]])
    _rrd("build", str(other))
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    loaded = datasets.load_dataset(str(tmp_path / "export"), "sft")
    assert {split: rows.num_rows for split, rows in loaded.items()} == manifest["rows"]["sft"]


def test_a_recipe_change_only_does_what_is_missing(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, sources=[SMALL_SOURCES[1]])
    _rrd("build", str(recipe))
    items = sum(_stats(recipe)["items_by_task"].values())
    more = write_recipe(
        tmp_path, sources=[SMALL_SOURCES[1]], teacher={"kind": "offline", "attempts": 3, "offline_error_rate": 0.2}
    )
    output = _rrd("build", str(more))
    assert "images 0 new" in output
    generations = _stats(more)["generations"]
    assert generations["requests"] == items and generations["cache_hits"] == 2 * items


def test_curation_reading_replies_in_small_batches_chooses_the_same(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies are read a batch of items at a time: tiny batches give the very traces, drops and splits."""
    from retinal_reason_data.catalog import Catalog
    from retinal_reason_data.curation import stage as curation
    from retinal_reason_data.recipe import load_recipe

    recipe = load_recipe(built)
    catalog = Catalog(recipe.catalog)
    try:

        def outcome() -> tuple[list, list]:
            return (
                catalog.query("SELECT * FROM assignments ORDER BY item_id"),
                catalog.query("SELECT * FROM drops ORDER BY item_id, stage, reason"),
            )

        curation.curate(recipe, catalog)
        whole = outcome()
        monkeypatch.setattr(curation, "ITEMS_PER_LOOKUP", 3)
        curation.curate(recipe, catalog)
        batched = outcome()
    finally:
        catalog.close()
    assert batched == whole
    assert sum(1 for row in whole[0] if row[3]) > 10  # traces were chosen, from replies found batch by batch


def test_curation_does_not_depend_on_the_order_cases_are_stored_in(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Curation streams cases in storage order: the same catalog stored the other way round gives the very same
    assignments, drops and report (examples included: one per reason, so that which one is kept matters)."""
    from retinal_reason_data.catalog import Catalog
    from retinal_reason_data.curation import stage as curation
    from retinal_reason_data.curation.stage import curate
    from retinal_reason_data.recipe import load_recipe

    monkeypatch.setattr(curation, "EXAMPLES_PER_REASON", 1)

    recipe = load_recipe(built)
    recipe.filters.images.min_brightness = 0.4  # about half the photographs "too dark": drops with examples
    report_file = recipe.catalog.with_suffix(".curation.json")
    catalog = Catalog(recipe.catalog)
    try:

        def outcome() -> tuple[list, list, str]:
            curate(recipe, catalog)
            return (
                catalog.query("SELECT * FROM assignments ORDER BY item_id"),
                catalog.query("SELECT * FROM drops ORDER BY item_id, stage, reason"),
                report_file.read_text(encoding="utf-8"),
            )

        before = outcome()
        stored = [row[0] for row in catalog.query("SELECT case_id FROM cases")]
        with catalog.transaction():
            catalog.db.execute("CREATE TEMP TABLE reversed AS SELECT * FROM cases ORDER BY case_id DESC")
            catalog.db.execute("DELETE FROM cases")
            catalog.db.execute("INSERT INTO cases SELECT * FROM reversed")
            catalog.db.execute("DROP TABLE reversed")
        assert [row[0] for row in catalog.query("SELECT case_id FROM cases")] != stored
        after = outcome()
    finally:
        curate(load_recipe(built), catalog)  # the module's build, curated with its own filters again
        catalog.close()
    assert after == before
    examples = json.loads(before[2])["examples"]
    assert len(examples) >= 2 and all(len(kept) == 1 for kept in examples.values())


def test_items_are_the_same_whatever_order_the_cases_are_stored_in(built: Path) -> None:
    """The items stage streams cases in storage order and writes items as it makes them: stored the other way
    round, the catalog gets the very same items and leak drops."""
    from retinal_reason_data.catalog import Catalog
    from retinal_reason_data.pipeline import BuildReport, build_items
    from retinal_reason_data.recipe import load_recipe

    recipe = load_recipe(built)
    catalog = Catalog(recipe.catalog)
    try:

        def outcome() -> tuple[list, list, dict]:
            report = BuildReport()
            build_items(recipe, catalog, report)
            return (
                catalog.query("SELECT * FROM items ORDER BY item_id"),
                catalog.query("SELECT * FROM drops WHERE stage = 'tasks' ORDER BY item_id"),
                dict(report.items),
            )

        before = outcome()
        with catalog.transaction():
            catalog.db.execute("CREATE TEMP TABLE reversed AS SELECT * FROM cases ORDER BY case_id DESC")
            catalog.db.execute("DELETE FROM cases")
            catalog.db.execute("INSERT INTO cases SELECT * FROM reversed")
            catalog.db.execute("DROP TABLE reversed")
        after = outcome()
    finally:
        catalog.close()
    assert after == before
    assert len(before[0]) > 20 and sum(before[2].values()) == len(before[0])
