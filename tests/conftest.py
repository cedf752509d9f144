"""Shared fixtures: small phantom recipes written into temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
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


@pytest.fixture
def recipe_path(tmp_path: Path) -> Path:
    return write_recipe(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _private_datasets_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep `datasets` caches of the tests out of the user's home, shared within the session."""
    import datasets.config

    cache = tmp_path_factory.mktemp("hf_cache")
    datasets.config.HF_DATASETS_CACHE = cache


REPO = Path(__file__).resolve().parent.parent
REAL_IN_REPO = REPO / "tests" / "data" / "real"  # openly licensed real material copied into the repository


def shared_realdata() -> Path | None:
    """The shared folder of real photographs (`../shared/realdata`, or `RRD_REALDATA`), None where absent."""
    configured = os.environ.get("RRD_REALDATA")
    folder = Path(configured) if configured else REPO.parent / "shared" / "realdata"
    return folder if folder.is_dir() else None


@pytest.fixture(scope="session")
def realdata() -> Path:
    """`../shared/realdata` (see its README); the test is skipped, saying why, where it is absent."""
    folder = shared_realdata()
    if folder is None:
        pytest.skip("real photographs not found: ../shared/realdata is absent (set RRD_REALDATA to its path)")
    return folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the `realdata` fixture carry the `realdata` marker (`pytest -m "not realdata"`)."""
    for item in items:
        if "realdata" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
