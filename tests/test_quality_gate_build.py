"""The quality gate in a build: the warning for a source the filters mostly refuse, the stop for an empty export,
the measures per source in the curation report; and, on ../shared/realdata, the aims on EyeQ's held-out part."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.cli import app
from retinal_reason_data.curation.report import quality_figure_path, report_paths
from retinal_reason_data.pipeline import EmptyExportError, build
from retinal_reason_data.recipe import load_recipe
from tests.conftest import write_recipe

pytestmark = pytest.mark.slow  # builds over phantom and real collections

APTOS_ONLY = [{"adapter": "aptos2019", "root": "raw/aptos2019", "phantom": {"cases": 12, "seed": 1}}]
ALL_REFUSED = {"images": {"max_brightness": 0.01}}  # every photograph "overexposed"


def _build(folder: Path, **overrides: object):
    recipe = load_recipe(write_recipe(folder, sources=APTOS_ONLY, **overrides))
    catalog = Catalog(recipe.catalog_path)
    try:
        return recipe, build(recipe, catalog)
    finally:
        catalog.close()


def test_a_source_whose_photographs_are_all_refused_is_warned_about_and_the_export_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(EmptyExportError) as stopped:
        _build(tmp_path, filters=ALL_REFUSED)
    warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1
    assert "source 'aptos2019'" in warnings[0] and "(100.0%" in warnings[0]
    assert "image_overexposed" in warnings[0] and "measure brightness" in warnings[0]
    message = str(stopped.value)
    assert "would have 0 rows" in message and "sft/train" in message and "export.allow_empty" in message
    assert "source 'aptos2019'" in message  # the stop says why
    assert not (tmp_path / "export" / "manifest.json").exists()


def test_the_cli_says_why_the_export_stopped_and_exits_non_zero(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, sources=APTOS_ONLY, filters=ALL_REFUSED)
    result = CliRunner().invoke(app, ["build", str(recipe)])
    assert result.exit_code == 2
    assert "export stopped" in result.output and "would have 0 rows" in result.output


def test_an_empty_export_is_written_when_the_recipe_allows_it(tmp_path: Path) -> None:
    recipe, report = _build(tmp_path, filters=ALL_REFUSED, export={"out": "export", "allow_empty": True})
    assert report.manifest is not None
    assert all(rows == 0 for splits in report.manifest["rows"].values() for rows in splits.values())
    assert report.curation is not None and len(report.curation.warnings) == 1


def test_the_curation_report_shows_the_measures_per_source_in_a_png(tmp_path: Path) -> None:
    recipe, report = _build(tmp_path)
    assert report.curation is not None and not report.curation.warnings  # phantoms pass the gate
    markdown_path, json_path = report_paths(recipe)
    figure = quality_figure_path(recipe)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = markdown_path.read_text()
    assert f"]({figure.name})" in markdown and "## Image quality per source" in markdown
    data = json.loads(json_path.read_text())
    assert data["image_filters_by_source"]["aptos2019"]["photographs"] == report.curation.images_checked["aptos2019"]
    first = hashlib.sha256(figure.read_bytes()).hexdigest()
    recipe_file = tmp_path / "recipe.yaml"
    CliRunner().invoke(app, ["export", str(recipe_file)], catch_exceptions=False)
    assert hashlib.sha256(figure.read_bytes()).hexdigest() == first  # deterministic bytes


def test_the_warning_threshold_is_a_recipe_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A recipe that refuses a few photographs warns only above its own share."""
    filters = {"images": {"max_brightness": 0.01, "warn_refused_share": 1.0}}
    with caplog.at_level(logging.WARNING):
        recipe, report = _build(tmp_path, filters=filters, export={"out": "export", "allow_empty": True})
    assert report.curation is not None and report.curation.warnings == []


def test_the_gate_meets_the_aims_on_eyeq_held_out_and_real_collections(realdata: Path) -> None:
    """EyeQ's held-out patients (never seen by the fit): at most 2 % of Good refused (aim met) and at least 77 %
    of Reject refused; over all 1,614 photographs, cross-validated by patient, at most 2 % of Good and at least
    79 % of Reject. The aim is 80 % of Reject: not met (77.4 % held out, 79.1 % cross-validated; reaching 80 %
    refuses about 2.2 % of Good, see benchmarks/README.md). No gradable full-size photograph of CHASE_DB1, IDRiD,
    HRF, APTOS, the EyeQ-Good EyePACS originals or KavithaG's gradable example is refused, and the two known
    ungradable ones are."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from quality_gate_fit import collections, confusion, cross_validated, eyeq_photographs

    from retinal_reason_data.recipe import ImageFilters

    spec = ImageFilters()
    rows = eyeq_photographs(realdata)
    for table, least_reject in ((confusion(rows, spec), 0.77), (cross_validated(rows, spec), 0.79)):
        share = {label: counts["refused"] / (counts["refused"] + counts["passed"]) for label, counts in table.items()}
        assert share["Good"] <= 0.02
        assert share["Reject"] >= least_reject
        assert sum(table["Reject"].values()) > 50  # the part is not trivially small
    found = collections(realdata, spec)
    for folder in ("CHASEDB1", "IDRiD_segmentation_train", "HRF_fullres_VascX", "HRF_healthy_downscaled_milosz08"):
        assert all(reason is None for _, reason, _ in found[folder]), folder
    assert all(reason is None for _, reason, _ in found["APTOS2019"])
    refused = {name for entries in found.values() for name, reason, _ in entries if reason}
    assert {"13_left.jpeg", "13_right.jpeg", "17_left.jpeg", "17_right.jpeg", "IMG_00924.jpg"}.isdisjoint(refused)
    assert {"6834_left.jpeg", "IMG_00923.jpg"} <= refused
