"""End to end: a collection and a compilation that re-released some of its photographs (mirrored, re-saved,
copied byte for byte, one with another grade) build into a release with one copy of each, a readable
label-conflict report, drops counted by reason, and splits that no group crosses."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import datasets
import pytest
from PIL import Image, ImageEnhance, ImageOps
from typer.testing import CliRunner

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.cli import app
from retinal_reason_data.curation.leakage import LeakageError, check_release
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.recipe import load_recipe
from retinal_reason_data.release.hf import export_hf
from tests.conftest import write_recipe
from tests.helpers.builds import query_catalog

pytestmark = pytest.mark.slow  # the module's own build of a compilation

runner = CliRunner()
GRADES = {"0": "dr.none", "1": "dr.mild", "2": "dr.moderate", "3": "dr.severe", "4": "dr.proliferative"}


def _rrd(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _sources(**copies: object) -> list[dict]:
    return [
        {"adapter": "aptos2019", "root": "raw/aptos2019", "phantom": {"cases": 12, "seed": 5}},
        {
            "adapter": "manifest",
            "name": "compilation",
            "root": "raw/compilation",
            "labels": {f"grade{k}": code for k, code in GRADES.items()},
            "options": {
                "file": "labels.csv",
                "image_column": "image",
                "label_columns": ["label"],
                "patient_column": "patient",
                "modality": "CFP",
            },
            **copies,
        },
    ]


def _write_compilation(folder: Path) -> dict[str, str]:
    """Copies of APTOS photographs (and one new photograph) in a CSV manifest; returns what each copy is."""
    aptos = folder / "raw" / "aptos2019"
    rows = list(csv.DictReader(io.StringIO((aptos / "train.csv").read_text(encoding="utf-8-sig"))))
    present = [r for r in rows if (aptos / "train_images" / f"{r['id_code']}.png").is_file()]
    readable = []
    for row in present:
        try:
            Image.open(aptos / "train_images" / f"{row['id_code']}.png").load()
            readable.append(row)
        except OSError:
            continue
    first, second, third = readable[:3]
    out = folder / "raw" / "compilation"
    out.mkdir(parents=True)
    source = {r["id_code"]: Image.open(aptos / "train_images" / f"{r['id_code']}.png").convert("RGB") for r in readable}
    ImageOps.mirror(source[first["id_code"]]).save(out / "mirrored.jpg", quality=92)
    source[second["id_code"]].save(out / "resaved.png", compress_level=9)  # same pixels, no text chunk
    (out / "bytecopy.png").write_bytes((aptos / "train_images" / f"{third['id_code']}.png").read_bytes())
    new = fundus_photo(777, "right", ["dr.mild"], image_seed=4, size=448)
    new.save(out / "new.png")
    ImageEnhance.Brightness(fundus_photo(778, "left", ["dr.none"], size=448)).enhance(0.2).save(out / "dark.png")
    other_grade = str((int(second["diagnosis"]) + 2) % 5)
    lines = [
        ("mirrored.jpg", f"grade{first['diagnosis']}", "c1"),
        ("resaved.png", f"grade{other_grade}", "c2"),  # the same photograph with another grade
        ("bytecopy.png", f"grade{third['diagnosis']}", "c3"),
        ("new.png", "grade1", "c4"),
        ("dark.png", "grade0", "c5"),
    ]
    with (out / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label", "patient"])
        writer.writerows(lines)
    return {"mirrored": first["id_code"], "resaved": second["id_code"], "bytecopy": third["id_code"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("dedup")
    aptos_only = write_recipe(folder, sources=_sources()[:1])
    _rrd("ingest", str(aptos_only))  # writes the APTOS phantom the compilation copies from
    originals = _write_compilation(folder)
    recipe = write_recipe(
        folder,
        sources=_sources(),
        dedup={"source_priority": ["aptos2019"]},
        tasks={"basic": {"types": ["single_choice", "open"]}, "complex": {"enabled": False}},
    )
    _rrd("build", str(recipe))
    return recipe, originals


def test_copies_are_found_and_the_collection_copy_is_kept(built: tuple[Path, dict[str, str]]) -> None:
    recipe, _ = built
    stats = json.loads(_rrd("stats", str(recipe), "--json"))
    duplicates = stats["duplicates"]
    assert duplicates["exact_clusters"] == 2  # the byte copy and the re-saved PNG
    assert duplicates["near_clusters"] == 1  # the mirrored JPEG
    assert duplicates["pixel_matches"] == 1
    assert duplicates["cross_source_clusters"] == 3
    assert duplicates["cases_dropped"] == 3
    assert duplicates["label_conflicts"] == 1
    assert duplicates["matches_by_orientation"].get("mirror") == 1
    dropped = set(
        query_catalog(
            recipe,
            "SELECT DISTINCT i.case_id FROM drops d JOIN items i USING (item_id) WHERE d.reason = 'duplicate_image'",
        )
    )
    assert {case for (case,) in dropped} == {
        "compilation:mirrored.jpg",
        "compilation:resaved.png",
        "compilation:bytecopy.png",
    }
    kinds = dict(query_catalog(recipe, "SELECT orientation || '/' || kind, count(*) FROM duplicate_matches GROUP BY 1"))
    assert kinds == {"mirror/near": 1, "identity/pixels": 1}
    kept = {
        case
        for (case,) in query_catalog(recipe, "SELECT DISTINCT i.case_id FROM assignments JOIN items i USING (item_id)")
    }
    assert "compilation:new.png" in kept


def test_drops_are_counted_by_reason_and_reported_with_examples(built: tuple[Path, dict[str, str]]) -> None:
    recipe, originals = built
    stats = json.loads(_rrd("stats", str(recipe), "--json"))
    assert stats["dropped_by_filter"]["duplicate_image"] >= 3
    assert stats["dropped_by_filter"]["image_too_dark"] >= 1
    assert stats["images_by_quality"] == {"image_too_dark": 1}
    assert stats["dropped_by_stage"]["quality"] == stats["dropped_by_filter"]["image_too_dark"]
    paths = _rrd("report", str(recipe)).split()
    markdown = Path(paths[0]).read_text()
    assert "### Label conflicts (1)" in markdown
    assert f"aptos2019:{originals['resaved']}" in markdown and "compilation:resaved.png" in markdown
    assert "resaved.png" in markdown
    assert "### `image_too_dark`" in markdown and "dark.png" in markdown
    assert "### `duplicate_image`" in markdown
    report = json.loads(Path(paths[1]).read_text())
    (conflict,) = report["label_conflicts"]
    assert {case["source"] for case in conflict["cases"]} == {"aptos2019", "compilation"}
    assert len({tuple(case["labels"]) for case in conflict["cases"]}) == 2
    assert [case["kept"] for case in conflict["cases"] if case["source"] == "aptos2019"] == [True]


def test_no_group_crosses_splits_and_a_tampered_catalog_is_refused(built: tuple[Path, dict[str, str]]) -> None:
    recipe_path, _ = built
    recipe = load_recipe(recipe_path)
    catalog = Catalog(recipe.catalog_path)
    try:
        check_release(catalog)  # the build's own splits pass
        rows = catalog.query("SELECT item_id, group_id, split FROM assignments ORDER BY item_id")
        first = rows[0]
        second = next(row for row in rows if row[2] != first[2])
        # the second item now claims the first one's group while staying in its own split
        catalog.db.execute("UPDATE assignments SET group_id = ? WHERE item_id = ?", [first[1], second[0]])
        with pytest.raises(LeakageError, match=f"group {first[1]} is in splits"):
            export_hf(recipe, catalog, {}, force=True)
    finally:
        catalog.close()
    _rrd("export", str(recipe_path))  # curation recomputes the splits; the export is written again


def test_label_conflicts_can_drop_the_cluster_and_sources_can_be_held_out(
    built: tuple[Path, dict[str, str]],
) -> None:
    recipe_path, originals = built
    write_recipe(
        recipe_path.parent,
        sources=_sources(),
        dedup={"source_priority": ["compilation"], "on_label_conflict": "drop"},
        splits={"holdout_sources": ["compilation"], "train": 0.5, "rl": 0.3},
        tasks={"basic": {"types": ["single_choice", "open"]}, "complex": {"enabled": False}},
    )
    _rrd("build", str(recipe_path))
    reasons = dict(query_catalog(recipe_path, "SELECT i.case_id, d.reason FROM drops d JOIN items i USING (item_id)"))
    assert reasons[f"aptos2019:{originals['resaved']}"] == reasons["compilation:resaved.png"] == "label_conflict"
    assert reasons[f"aptos2019:{originals['mirrored']}"] == "duplicate_image"  # the compilation's copy is kept
    splits = dict(
        query_catalog(recipe_path, "SELECT i.case_id, a.split FROM assignments a JOIN items i USING (item_id)")
    )
    assert splits["compilation:mirrored.jpg"] == splits["compilation:new.png"] == "test_ood"
    assert {s for c, s in splits.items() if c.startswith("aptos2019:")} <= {"train", "rl", "validation", "test"}
    out = recipe_path.parent / "export"
    assert "test_ood" in datasets.load_dataset(str(out), "rl")
