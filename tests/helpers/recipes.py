"""Small phantom recipes written into temporary folders."""

from __future__ import annotations

from pathlib import Path

import yaml

SMALL_SOURCES = [
    {"adapter": "aptos2019", "root": "raw/aptos2019", "phantom": {"cases": 15, "seed": 1}},
    {"adapter": "oct2017", "root": "raw/oct", "phantom": {"cases": 12, "seed": 2}},
    {"adapter": "ffa_ir", "root": "raw/ffa_ir", "phantom": {"cases": 7, "seed": 3}},
    {"adapter": "case_reports", "root": "raw/case_reports", "phantom": {"cases": 8, "seed": 4}},
]


def write_recipe(folder: Path, **overrides: object) -> Path:
    """A small phantom recipe in `folder`; keyword arguments replace top-level keys."""
    recipe = {
        "name": "small",
        "version": "0.0.1",
        "catalog": "small.duckdb",
        "sources": SMALL_SOURCES,
        "teacher": {"kind": "offline", "attempts": 2, "offline_error_rate": 0.2},
        "export": {"out": "export", "max_shard_size": "200KB"},
    }
    recipe.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path
