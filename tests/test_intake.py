"""Image intake: quality measures, and the process pool giving exactly what one process gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.ingest.image_quality import measure
from retinal_reason_data.ingest.privacy import DEVELOPMENT_KEY
from retinal_reason_data.ingest.stage import ensure_phantom, fingerprint_pool, ingest_source
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.recipe import PhantomSpec, SourceSpec


def test_quality_measures_separate_good_dark_blurred_and_fieldless_images() -> None:
    good = fundus_photo(1, "right", ["dr.moderate"], size=256).convert("L")
    dark = good.point(lambda v: v // 6)
    blurred = good.filter(ImageFilter.GaussianBlur(4))
    fieldless = Image.fromarray(np.full((256, 256), 120, dtype=np.uint8))
    q_good, q_dark, q_blur, q_flat = (measure(i) for i in (good, dark, blurred, fieldless))
    assert 0.4 < q_good.fov_fraction < 0.9 and q_flat.fov_fraction == 1.0
    assert q_dark.brightness < q_good.brightness / 3
    assert q_blur.sharpness < q_good.sharpness / 3
    assert q_flat.contrast == 0.0 and q_flat.sharpness == 0.0


@pytest.mark.slow
def test_the_pool_gives_the_same_cases_and_quarantine_as_one_process(tmp_path: Path) -> None:
    spec = SourceSpec(adapter="aptos2019", root=tmp_path / "aptos", phantom=PhantomSpec(cases=14, seed=3))
    ensure_phantom(spec)
    results = []
    for workers in (1, 2):
        catalog = Catalog(tmp_path / f"c{workers}.duckdb")
        with fingerprint_pool(workers) as pool:
            report = ingest_source(spec, catalog, default_ontology(), DEVELOPMENT_KEY, pool)
        cases = [c.model_dump() for c in catalog.iter_cases()]
        quarantined = catalog.query("SELECT file, row_ref, reason FROM quarantine ORDER BY row_ref")
        catalog.close()
        results.append((cases, quarantined))
        assert report.cases + sum(report.quarantined.values()) == 14
        assert report.images_fingerprinted == report.cases and report.quarantined["image_unreadable"] == 1
    assert results[0] == results[1]
    assert all(case["images"][0]["quality"]["fov_fraction"] > 0.4 for case in results[0][0])


def test_quality_measures_equal_their_definitions_with_or_without_a_histogram() -> None:
    """The histogram and dot-product shortcuts give the plain masked mean, deviation and Laplacian variance
    of the 256 px work image."""
    from retinal_reason_data.ingest.fieldhash import prepare

    images = [fundus_photo(seed, "left", ["dr.severe"], size=256).convert("L") for seed in range(3)]
    images.append(fundus_photo(5, "right", [], size=300).convert("L").resize((256, 171)))
    for image in images:
        levels = np.asarray(image).astype(np.float64)
        field = levels >= 16
        values = levels[field] / 255
        pixels = levels
        laplacian = pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1] - 4 * pixels[1:-1, 1:-1]
        interior = field[1:-1, 1:-1] & field[:-2, 1:-1] & field[2:, 1:-1] & field[1:-1, :-2] & field[1:-1, 2:]
        for quality in (measure(image), measure(prepare(image))):
            assert quality.brightness == round(values.mean(), 4)
            assert quality.contrast == pytest.approx(values.std(), abs=1e-4)
            assert quality.sharpness == pytest.approx(laplacian[interior].var() / 255**2, rel=1e-4)
            assert quality.fov_fraction == round(field.mean(), 4)
    assert np.array_equal(prepare(images[0]).counts, np.bincount(np.asarray(images[0]).ravel(), minlength=256))
