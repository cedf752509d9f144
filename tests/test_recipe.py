"""Recipe validation: errors name the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from retinal_reason_data.recipe import RecipeError, load_recipe
from tests.conftest import write_recipe

REPO = Path(__file__).resolve().parents[1]


def test_demo_recipe_is_valid_and_paths_resolve_against_its_folder() -> None:
    recipe = load_recipe(REPO / "recipes" / "demo.yaml")
    assert recipe.name == "demo"
    assert recipe.sources[0].root == (REPO / "recipes" / "work" / "raw" / "aptos2019").resolve()
    assert recipe.export.out == (REPO / "recipes" / "work" / "export").resolve()
    assert recipe.export.max_shard_size == 2_000_000


def test_overrides_of_out_and_catalog(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path), out=tmp_path / "elsewhere", catalog=tmp_path / "c.duckdb")
    assert recipe.export.out == tmp_path / "elsewhere"
    assert recipe.catalog == tmp_path / "c.duckdb"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"teacher": {"kind": "offline", "concurrency": "many"}}, "key 'teacher.concurrency'"),
        ({"teacher": {"kind": "gpt"}}, "key 'teacher.kind'"),
        ({"teacher": {"kind": "openai"}}, "needs base_url"),
        ({"splits": {"train": 0.9, "rl": 0.2, "validation": 0.1, "test": 0.1}}, "must sum to 1"),
        ({"sources": []}, "key 'sources'"),
        ({"exportt": {}}, "key 'exportt': unknown key"),
        ({"export": {"max_shard_size": "lots"}}, "key 'export.max_shard_size'"),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path: Path, overrides: dict, expected: str) -> None:
    path = write_recipe(tmp_path, **overrides)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
