"""Shared fixtures: small phantom recipes, builds made once per session, the real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.builds import rrd_build
from tests.helpers.recipes import SMALL_SOURCES, write_recipe
from tests.helpers.teacher import ingest_small

__all__ = ["SMALL_SOURCES", "write_recipe"]  # re-exported: older tests import them from here


@pytest.fixture
def recipe_path(tmp_path: Path) -> Path:
    return write_recipe(tmp_path)


@pytest.fixture(scope="session")
def shared_small_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small phantom recipe (four sources, offline teacher) built once per session through `rrd build`; its
    recipe path. Read it only: a test that writes works on `helpers.builds.copy_build` of it."""
    return rrd_build(write_recipe(tmp_path_factory.mktemp("small_build")))


@pytest.fixture(scope="session")
def shared_review_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The review tests' build (`helpers.review.build_review_recipe`), once per session; its recipe path. Read it
    only: review modules work on `helpers.builds.copy_build` of it."""
    from tests.helpers.review import build_review_recipe  # (imports Playwright)

    return build_review_recipe(tmp_path_factory.mktemp("review_build"))


@pytest.fixture(scope="session")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One phantom source ingested once per session; each test synthesizes on its own copy of the catalog."""
    return ingest_small(tmp_path_factory.mktemp("ingested"))


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


# a test that needs one of these (directly or through another fixture) waits for a build or a browser: `slow`
# (`corpus`: test_bad_inputs' ingest of every hostile input)
SLOW_FIXTURES = {"shared_small_build", "shared_review_build", "ingested", "browser", "corpus"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the `realdata` fixture carry the `realdata` marker (`pytest -m "not realdata"`); tests that
    use a fixture of SLOW_FIXTURES carry `slow` (`pytest -m "not slow"`), as do those marked so in their module."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "realdata" in names:
            item.add_marker(pytest.mark.realdata)
        if names & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
