"""Conformance of every registered release format: the recipe accepts its name, its writer fills the folder of
its name (and the manifest counts it), the card describes it, and a format that is also a card config has the
Features its parquet files carry; the `hf` rows are the row models of schema.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import Features
from pydantic import BaseModel
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.recipe import ExportFormat, load_recipe
from retinal_reason_data.release.card import FORMAT_NOTES
from retinal_reason_data.release.formats import FOLDERS, FORMATS, WRITERS, ExportFormatInfo, card_format_configs
from retinal_reason_data.release.hf import CARD_FORMAT_CONFIGS, FEATURES, OWNED_FOLDERS
from retinal_reason_data.release.reader import iter_rows, shard_paths
from retinal_reason_data.schema import RlRow, SftRow
from tests.conftest import write_recipe

EVERY_FORMAT = pytest.mark.parametrize("info", FORMATS.values(), ids=list(FORMATS))


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("every_format")
    recipe = write_recipe(folder, export={"out": "export", "max_shard_size": "200KB", "formats": list(FORMATS)})
    result = CliRunner().invoke(app, ["build", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder / "export"


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def _total(counts: dict[str, Any] | int) -> int:
    """Rows in a count per split (or per config and split)."""
    return counts if isinstance(counts, int) else sum(_total(value) for value in counts.values())


def _card_header(out: Path) -> dict[str, Any]:
    return yaml.safe_load((out / "README.md").read_text().split("---\n")[1])


def test_the_registry_is_what_the_recipe_accepts_and_the_export_owns() -> None:
    assert get_args(ExportFormat) == tuple(FORMATS)
    assert set(FOLDERS) == set(FORMATS) - {"hf"} == set(WRITERS)
    assert set(FOLDERS) <= set(OWNED_FOLDERS)
    assert set(FORMAT_NOTES) == set(FORMATS)
    assert card_format_configs() == CARD_FORMAT_CONFIGS
    assert not set(CARD_FORMAT_CONFIGS) & set(FEATURES), "a format config must not shadow an hf config"


@EVERY_FORMAT
def test_a_format_is_accepted_by_the_recipe(info: ExportFormatInfo, tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, export={"formats": [info.name]}))
    assert recipe.export.formats == list(dict.fromkeys(["hf", info.name]))


@EVERY_FORMAT
def test_a_format_writes_the_folder_of_its_name(info: ExportFormatInfo, out: Path) -> None:
    manifest = _manifest(out)
    report = manifest["formats"][info.name]
    assert _total(report["rows"]) > 0
    if info.writer is None:  # hf, written by the export itself
        return
    written = [entry["path"] for entry in manifest["files"] if entry["path"].startswith(f"{info.name}/")]
    assert written, f"{info.name} wrote nothing into {info.name}/"
    assert all((out / path).is_file() for path in written)


@EVERY_FORMAT
def test_the_card_describes_a_format(info: ExportFormatInfo, out: Path) -> None:
    assert info.where.strip() and info.read_with.strip()
    card = (out / "README.md").read_text()
    row = " | ".join(cell.replace("|", "\\|") for cell in (info.name, info.where, info.read_with))
    assert f"| {row} |" in card


@EVERY_FORMAT
def test_a_card_config_format_carries_its_features(info: ExportFormatInfo, out: Path) -> None:
    if info.card_features is None:
        assert info.name not in CARD_FORMAT_CONFIGS
        return
    features = info.card_features()
    header = _card_header(out)
    assert info.name in {config["config_name"] for config in header["configs"]}
    described = next(entry for entry in header["dataset_info"] if entry["config_name"] == info.name)
    assert Features._from_yaml_list(described["features"]) == features
    for part in sorted((out / info.name).rglob("*.parquet")):
        assert Features.from_arrow_schema(pq.read_schema(part)) == features, part


@pytest.mark.parametrize(("config", "model"), [("sft", SftRow), ("rl", RlRow)])
def test_the_hf_rows_are_the_row_models(config: str, model: type[BaseModel], out: Path) -> None:
    """Every written row has exactly the model's fields (and the images) and validates against the model; the
    shards carry the Features derived from it."""
    features = FEATURES[config]
    assert list(features) == ["id", "images", *[name for name in model.model_fields if name != "id"]]
    rows = 0
    for split in _manifest(out)["rows"][config]:
        for part in shard_paths(out, config, split):
            assert Features.from_arrow_schema(pq.read_schema(part)) == features, part
        for row in iter_rows(out, config, split):
            assert list(row) == list(features)
            model.model_validate({name: value for name, value in row.items() if name != "images"})
            rows += 1
    assert rows == _total(_manifest(out)["rows"][config])
