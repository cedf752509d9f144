"""The quality gate on real photographs: CHASE_DB1 and IDRiD copies in tests/data/real/cfp (everywhere), copies of
them degraded with Pillow, and the measures' independence of resolution and exposure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from retinal_reason_data.curation.filters import image_problem, image_refusal
from retinal_reason_data.curation.quality_gate import GATE_REASONS, load_gate
from retinal_reason_data.ingest.image_quality import GRADABILITY_MEASURES
from retinal_reason_data.ingest.imaging import fingerprint
from retinal_reason_data.recipe import ImageFilters
from retinal_reason_data.schema import ImageQuality, ImageRef, Modality

REAL_CFP = Path(__file__).parent / "data" / "real" / "cfp"
PHOTOGRAPHS = sorted(REAL_CFP.glob("*.jpg"))


def measured(image: Image.Image, folder: Path, name: str, quality: int = 92) -> ImageRef:
    path = folder / f"{name}.jpg"
    image.save(path, quality=quality)
    return fingerprint(path, Modality.CFP)


def test_the_real_photographs_are_there() -> None:
    assert len(PHOTOGRAPHS) == 7, "tests/data/real/cfp should hold 6 CHASE_DB1 and 1 IDRiD photograph"


@pytest.mark.parametrize("path", PHOTOGRAPHS, ids=lambda p: p.stem)
def test_the_gate_passes_gradable_real_photographs(path: Path) -> None:
    image = fingerprint(path, Modality.CFP)
    assert image.quality is not None and image.quality.detail_fine is not None
    assert image_refusal(image, None, ImageFilters()) is None
    assert load_gate().probability(image.quality) < 0.3  # not near the threshold either


@pytest.mark.parametrize("name", ["Image_14R", "Image_01L"])
def test_the_gate_refuses_blurred_darkened_and_hazed_copies(name: str, tmp_path: Path) -> None:
    photo = Image.open(REAL_CFP / f"{name}.jpg").convert("RGB")
    spec = ImageFilters()
    blurred = image_refusal(measured(photo.filter(ImageFilter.GaussianBlur(10)), tmp_path, "blurred"), None, spec)
    assert blurred is not None and blurred.reason in GATE_REASONS
    darkened = image_refusal(measured(ImageEnhance.Brightness(photo).enhance(0.3), tmp_path, "dark"), None, spec)
    assert darkened is not None and darkened.reason == "image_too_dark" and darkened.measure == "brightness"
    # haze scatters light: a veil of the picture's own light, blurred far, over a fainter copy of it
    hazed = Image.blend(photo, photo.filter(ImageFilter.GaussianBlur(40)), 0.8)
    refusal = image_refusal(measured(hazed, tmp_path, "hazed"), None, spec)
    assert refusal is not None and refusal.reason == "image_hazy" and refusal.measure in GRADABILITY_MEASURES
    # the same degradations, mild, pass: a camera's softness is not a reason to refuse
    assert image_problem(measured(photo.filter(ImageFilter.GaussianBlur(2)), tmp_path, "soft"), None, spec) is None
    assert image_problem(measured(ImageEnhance.Brightness(photo).enhance(0.8), tmp_path, "dim"), None, spec) is None


@pytest.mark.parametrize("name", ["Image_14R", "IDRiD_02"])
def test_the_measures_mean_the_same_at_256_and_at_4000_px(name: str, tmp_path: Path) -> None:
    """The same photograph saved at 256, 2000 and 4000 px wide gives gradability measures whose terms in the gate's
    score each move by less than 0.75 from the original's, and the score itself (the logit) by less than 0.75 too.
    The score, not the probability: how far the probability moves depends on where the photograph sits on the
    curve (IDRiD_02 sits at 0.16, where a 0.55 change of score moves it by 0.06; Image_14R at 0.08)."""
    photo = Image.open(REAL_CFP / f"{name}.jpg").convert("RGB")
    gate = load_gate()
    original = fingerprint(REAL_CFP / f"{name}.jpg", Modality.CFP).quality
    for width in (256, 2000, 4000):
        resized = photo.resize((width, round(width * photo.height / photo.width)), Image.Resampling.LANCZOS)
        quality = measured(resized, tmp_path, f"w{width}").quality
        for measure, coef, scale in zip(gate.measures, gate.coef, gate.scale, strict=True):
            moved = coef * (getattr(quality, measure) - getattr(original, measure)) / scale
            assert abs(moved) < 0.75, (width, measure, moved)  # shadow_share counts blocks: it moves in steps
        assert abs(gate.score(quality) - gate.score(original)) < 0.75, width
        assert gate.verdict(quality) is None


def test_exposure_and_contrast_changes_leave_the_gradability_measures_alone(tmp_path: Path) -> None:
    photo = Image.open(REAL_CFP / "Image_09L.jpg").convert("RGB")
    base = measured(photo, tmp_path, "base").quality
    for name, changed in (
        ("brighter", ImageEnhance.Brightness(photo).enhance(1.4)),
        ("flatter", ImageEnhance.Contrast(photo).enhance(0.6)),
        ("gamma", photo.point(lambda v: round(255 * (v / 255) ** 0.7))),
    ):
        quality = measured(changed, tmp_path, name).quality
        for measure, coef, scale in zip(load_gate().measures, load_gate().coef, load_gate().scale, strict=True):
            moved = coef * (getattr(quality, measure) - getattr(base, measure)) / scale
            assert abs(moved) < 0.5, (name, measure, moved)


def test_the_refusal_names_the_measure_that_weighed_most(tmp_path: Path) -> None:
    gate = load_gate()
    blurred = measured(Image.open(REAL_CFP / "Image_12R.jpg").filter(ImageFilter.GaussianBlur(12)), tmp_path, "b")
    verdict = gate.verdict(blurred.quality)
    assert verdict is not None
    reason, measure = verdict
    terms = {
        name: c * (getattr(blurred.quality, name) - g) / s
        for name, c, g, s in zip(gate.measures, gate.coef, gate.good_reference, gate.scale, strict=True)
    }
    assert measure == max(terms, key=terms.get) and terms[measure] > 0
    # a stricter or looser threshold from the recipe moves the decision
    assert gate.verdict(blurred.quality, threshold=0.999999) is None
    assert image_problem(blurred, None, ImageFilters(gate=False)) is None


def test_legacy_recipe_keys_still_work(tmp_path: Path) -> None:
    """`min_sharpness`, off by default now, still refuses as `image_blurred` when a recipe sets it."""
    image = fingerprint(REAL_CFP / "Image_14R.jpg", Modality.CFP)  # normalised sharpness about 0.036
    assert image_problem(image, None, ImageFilters()) is None
    assert image_problem(image, None, ImageFilters(min_sharpness=0.06)) == "image_blurred"
    assert image_problem(image, False, ImageFilters()) == "ungradable_label"
    assert image_problem(image, True, ImageFilters(min_sharpness=0.06)) is None  # the collection's label decides


def test_colour_mottle_ignores_colour_balance_and_reads_blotches_the_green_does_not_share(tmp_path: Path) -> None:
    """The colour measure is rank-based per channel: a white-balance shift leaves it (and the green's measures)
    alone; blue-green blotches the size of vessels, painted into the blue and red channels only, raise it by more
    than a training standard deviation and leave the grey-level measures nearly as they were."""
    gate = load_gate()
    scale = gate.scale[gate.measures.index("colour_mottle")]
    photo = Image.open(REAL_CFP / "Image_07L.jpg").convert("RGB")
    base = measured(photo, tmp_path, "base").quality
    red, green, blue = photo.split()
    warmer = Image.merge("RGB", (red.point(lambda v: min(255, round(v * 1.2))), green, blue.point(lambda v: v // 2)))
    assert abs(measured(warmer, tmp_path, "warm").quality.colour_mottle - base.colour_mottle) < 0.25 * scale
    rng = np.random.default_rng(0)
    blotches = Image.fromarray((rng.random((40, 40)) > 0.8).astype(np.uint8) * 255).resize(photo.size)
    blotches = blotches.filter(ImageFilter.GaussianBlur(photo.width / 200))
    tinted = Image.merge(
        "RGB",
        (
            Image.composite(red.point(lambda v: v * 6 // 10), red, blotches),
            green,
            Image.composite(blue.point(lambda v: min(255, v * 3)), blue, blotches),
        ),
    )
    tinted.save(tmp_path / "mottled.png")  # PNG: JPEG would mix the blotches into the green through its chroma
    photo.save(tmp_path / "base.png")
    base = fingerprint(tmp_path / "base.png", Modality.CFP).quality
    mottled = fingerprint(tmp_path / "mottled.png", Modality.CFP).quality
    assert mottled.colour_mottle > base.colour_mottle + scale
    # the grey-level measures read the green channel, unchanged (the field is found on the luma, which changed):
    # each of their terms in the gate's score moves by less than 0.1
    for name, coef, measure_scale in zip(gate.measures, gate.coef, gate.scale, strict=True):
        if name != "colour_mottle":
            assert abs(coef * (getattr(mottled, name) - getattr(base, name)) / measure_scale) < 0.1, name


def test_a_grey_level_photograph_is_judged_without_the_colour_measure(tmp_path: Path) -> None:
    """A grey-level file has no colour measure; the gate reads it as a typical Good photograph's (term 0) and
    still judges the photograph on the rest."""
    gate = load_gate()
    grey = measured(Image.open(REAL_CFP / "Image_12R.jpg").convert("L"), tmp_path, "grey").quality
    assert grey.colour_mottle is None and grey.detail_fine is not None
    neutral = grey.model_copy(update={"colour_mottle": gate.good_reference[gate.measures.index("colour_mottle")]})
    assert gate.probability(grey) == pytest.approx(gate.probability(neutral))
    blurred = measured(
        Image.open(REAL_CFP / "Image_12R.jpg").convert("L").filter(ImageFilter.GaussianBlur(12)), tmp_path, "gb"
    )
    assert image_problem(blurred, None, ImageFilters()) in GATE_REASONS


def test_patchy_colour_that_weighs_most_is_named_as_such() -> None:
    """A photograph typical of Good in every measure but colour_mottle, three standard deviations up, refused at a
    low threshold: the reason is image_colour_patchy and the measure colour_mottle."""
    gate = load_gate()
    values = dict(zip(gate.measures, gate.good_reference, strict=True))
    index = gate.measures.index("colour_mottle")
    values["colour_mottle"] += 3 * gate.scale[index]
    quality = ImageQuality(brightness=0.3, contrast=0.1, sharpness=0.001, fov_fraction=0.6, **values)
    assert gate.verdict(quality) is None  # colour alone does not refuse at the model's threshold
    assert gate.verdict(quality, threshold=0.01) == ("image_colour_patchy", "colour_mottle")
