"""Builds shared by many tests: built once per session (conftest's `small_build`, `review_build`), and copied
into a test's own folder where the test writes (a rebuild, another export, verdicts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from retinal_reason_data.cli import app


def rrd_build(recipe: Path) -> Path:
    """`rrd build recipe`, which must succeed; returns the recipe path."""
    result = CliRunner().invoke(app, ["build", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return recipe


def copy_build(recipe: Path, folder: Path, keep_export: bool = True, **overrides: object) -> Path:
    """A copy of the built folder of `recipe` (recipe, raw layouts, catalog and, with `keep_export`, the export) at
    `folder`, with top-level recipe keys replaced by `overrides`; returns the copied recipe's path. The catalog
    keeps the absolute image paths of the original, which stays in place for the session."""
    ignore = None if keep_export else shutil.ignore_patterns("export")
    shutil.copytree(recipe.parent, folder, dirs_exist_ok=True, ignore=ignore)
    copied = folder / recipe.name
    if overrides:
        keys = yaml.safe_load(copied.read_text())
        copied.write_text(yaml.safe_dump(keys | overrides, sort_keys=False))
    return copied


def rrd_export(recipe: Path) -> Path:
    """`rrd export recipe`, which must succeed; returns the recipe path."""
    result = CliRunner().invoke(app, ["export", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return recipe


def query_catalog(recipe: Path, sql: str) -> list[tuple]:
    """Rows of one read-only query on the catalog (`small.duckdb`) beside a test recipe."""
    import duckdb

    db = duckdb.connect(str(recipe.parent / "small.duckdb"), read_only=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()
