"""The same recipe and inputs give byte-identical exports wherever the checkout lives: the manifest's content key
leaves out where files are on this machine (image paths, label files, the annotations folder)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from typer.testing import CliRunner

from retinal_reason_data.cli import app
from tests.conftest import SMALL_SOURCES, write_recipe


def _export_digests(folder: Path) -> dict[str, str]:
    export = folder / "export"
    return {
        str(path.relative_to(export)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(export.rglob("*"))
        if path.is_file()
    }


def test_two_checkouts_of_one_recipe_export_the_same_bytes(tmp_path: Path) -> None:
    runner = CliRunner()
    first = tmp_path / "here"
    recipe = write_recipe(first, sources=SMALL_SOURCES[:2])
    assert runner.invoke(app, ["ingest", str(recipe)], catch_exceptions=False).exit_code == 0
    second = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(first / "raw", second / "raw")  # the same inputs, at another place
    write_recipe(second, sources=SMALL_SOURCES[:2])
    for folder in (first, second):
        result = runner.invoke(app, ["build", str(folder / "recipe.yaml")], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert _export_digests(first) == _export_digests(second)
    assert "manifest.json" in _export_digests(first)
