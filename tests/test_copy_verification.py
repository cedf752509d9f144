"""Copy verification on real photographs: every kind of copy that re-releases make is verified with its kind,
angle, scale and mirror; the other eye, other children, and two frames of one eye taken at different times are
refused; images that cannot be verified say why."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from retinal_reason_data.curation.copy_verification import (
    DEFAULT_LIMITS,
    FEATURES,
    CopyFeatures,
    CopyVerdict,
    copy_features,
    features_of_image,
    limits_of,
    verify_copy,
)
from retinal_reason_data.phantoms.copies import COPY_KINDS, field_box, make_copy
from retinal_reason_data.recipe import DedupSpec
from tests.conftest import REAL_IN_REPO

CFP = REAL_IN_REPO / "cfp"
FFA = REAL_IN_REPO / "ffa"
MIN_POINTS = 200  # a fundus photograph gives hundreds of keypoints (OpenCV 4 with a 0/1 mask gave about 100)


def _photo(size: str) -> Image.Image:
    """CHASE_DB1 Image_01L at full size (999 x 960) or reduced to 256 px, as the EyePACS copies are."""
    image = Image.open(CFP / "Image_01L.jpg").convert("RGB")
    if size == "256px":
        image = image.resize((256, round(256 * image.height / image.width)), Image.LANCZOS)
    return image


def _angle_error(found: float, expected: float) -> float:
    return abs((found - expected + 180) % 360 - 180)


def _field_lost(image: Image.Image, done: dict) -> float:
    """The share of the field's pixels (grey above 20) that a crop copy's box leaves out."""
    lit = np.asarray(image.convert("L")) > 20
    w, h = image.size
    kept = lit[
        round(done["top"] * h) : h - round(done["bottom"] * h), round(done["left"] * w) : w - round(done["right"] * w)
    ]
    return 1 - np.count_nonzero(kept) / np.count_nonzero(lit)


def _expected(kind: str, image: Image.Image, done: dict) -> tuple[set[str], float, bool, float]:
    """(parts the verdict's kind must have, angle, mirrored, scale) of a `make_copy` copy. A crop that leaves out
    a sliver of the field (0.2-1.5 %) may be read either as a crop or as a re-framing: `crop?` stands for that."""
    if kind in ("crop8", "crop10"):
        sx, sy = 1 / (1 - done["left"] - done["right"]), 1 / (1 - done["top"] - done["bottom"])
        lost = _field_lost(image, done)
        cut = "crop" if lost > 0.015 else "reframe" if lost < 0.002 else "crop?"
        return {cut, "rescale"}, 0.0, False, float(np.sqrt(sx * sy))
    expected = {
        "photometric": ({"same_frame"}, 0.0, False),
        "resample": ({"same_frame"}, 0.0, False),
        "rot5": ({"rotation"}, done.get("angle", 0.0), False),
        "rot10": ({"rotation"}, done.get("angle", 0.0), False),
        "rot30": ({"rotation"}, done.get("angle", 0.0), False),
        "mirror": ({"mirror"}, 0.0, True),
        "flip": ({"mirror", "rotation"}, 180.0, True),  # a flip is a mirror turned half round
        "rot90": ({"rotation"}, 90.0, False),  # PIL's ROTATE_90 turns counter-clockwise
        "rot180": ({"rotation"}, 180.0, False),
        "pad_square": ({"reframe"} if image.width != image.height else {"same_frame"}, 0.0, False),
        "bbox_crop": ({"reframe"} if field_box(image) != (0, 0, *image.size) else {"same_frame"}, 0.0, False),
    }[kind]
    return *expected, 1.0


def _kind_matches(found: str, parts: set[str]) -> bool:
    found_parts = set(found.split("+"))
    if "crop?" in parts:
        return found_parts - {"crop", "reframe"} == parts - {"crop?"} and len(found_parts & {"crop", "reframe"}) == 1
    return found_parts == parts


@pytest.mark.parametrize("size", ["full", "256px"])
@pytest.mark.parametrize("kind", list(COPY_KINDS))
def test_each_kind_of_copy_is_verified_with_its_kind_angle_and_scale(kind: str, size: str) -> None:
    image = _photo(size)
    copied, done = make_copy(image, kind, random.Random(f"{kind}-{size}"))
    verdict = verify_copy(features_of_image(image), features_of_image(copied))
    parts, angle, mirrored, scale = _expected(kind, image, done)
    assert verdict.is_copy, (done, verdict)
    assert _kind_matches(verdict.kind, parts), (parts, done, verdict)
    assert verdict.mirrored is mirrored
    assert _angle_error(verdict.angle_deg, angle) < 1.0, (done, verdict)
    assert verdict.scale == pytest.approx(scale, rel=0.02), (done, verdict)
    assert verdict.agreement >= DEFAULT_LIMITS.min_agreement and verdict.reason is None


def test_a_copy_mirrored_turned_cropped_resized_and_grey_at_once_is_verified() -> None:
    image = _photo("full")
    copied = ImageOps.mirror(image).rotate(23, resample=Image.BICUBIC)
    copied = copied.crop((90, 60, 930, 900)).resize((420, 420), Image.LANCZOS).convert("L")
    verdict = verify_copy(features_of_image(image), features_of_image(copied))
    assert verdict.is_copy, verdict
    assert verdict.mirrored and _angle_error(verdict.angle_deg, 23) < 1.0, verdict
    assert set(verdict.kind.split("+")) == {"mirror", "rotation", "crop", "rescale"}, verdict
    assert verdict.scale == pytest.approx(0.5, rel=0.02)  # 840 px of the original became 420


def test_the_same_photograph_at_another_size_and_green_channel_only_is_verified() -> None:
    image = _photo("full")
    small_green = Image.fromarray(np.asarray(image.resize((250, 240), Image.BILINEAR))[:, :, 1])
    verdict = verify_copy(features_of_image(image), features_of_image(small_green))
    assert verdict.is_copy and verdict.kind == "rescale", verdict
    assert verdict.scale == pytest.approx(0.25, rel=0.02)


def test_a_contrast_equalised_copy_is_verified() -> None:
    image = _photo("full")
    verdict = verify_copy(features_of_image(image), features_of_image(ImageOps.equalize(image)))
    assert verdict.is_copy and verdict.kind == "same_frame", verdict


@pytest.mark.parametrize("other", ["Image_01R", "Image_07L", "Image_09L", "Image_12R", "Image_14R"])
def test_the_other_eye_and_other_children_are_refused(other: str) -> None:
    verdict = verify_copy(copy_features(CFP / "Image_01L.jpg"), copy_features(CFP / f"{other}.jpg"))
    assert not verdict.is_copy and verdict.kind == ""
    assert verdict.inliers < DEFAULT_LIMITS.min_inliers and "no common geometry" in (verdict.reason or "")


def test_two_frames_of_one_eye_are_refused_where_a_copy_of_either_is_not() -> None:
    """Frames of one angiogram: the retina matches (geometry passes), the field of view moved between them,
    so the edge of the field disagrees. A turned copy of either frame is verified."""
    first, second = copy_features(FFA / "Normal0095.jpg"), copy_features(FFA / "Normal0099.jpg")
    verdict = verify_copy(first, second)
    assert not verdict.is_copy, verdict
    assert verdict.inliers >= DEFAULT_LIMITS.min_inliers  # the same eye: the retina itself matches
    assert verdict.rim_agreement is not None and verdict.rim_agreement < DEFAULT_LIMITS.min_rim_agreement, verdict
    assert "field edges disagree" in (verdict.reason or "")
    turned, _ = make_copy(Image.open(FFA / "Normal0095.jpg"), "rot10", random.Random(3))
    assert verify_copy(first, features_of_image(turned)).is_copy


def test_one_frame_released_twice_in_a_repository_is_a_copy() -> None:
    """huapu4/FFA ships this venous-phase frame in two folders, re-encoded (different bytes)."""
    verdict = verify_copy(copy_features(FFA / "BRVO0594.jpg"), copy_features(FFA / "11-3_026.jpg"))
    assert verdict.is_copy and verdict.kind == "same_frame", verdict


def test_verdicts_are_symmetric() -> None:
    image = _photo("full")
    copied, _ = make_copy(image, "rot30", random.Random(5))
    a, b = features_of_image(image), features_of_image(copied)
    forward, backward = verify_copy(a, b), verify_copy(b, a)
    assert forward.is_copy and backward.is_copy
    assert (forward.inliers, forward.score, forward.kind) == (backward.inliers, backward.score, backward.kind)
    assert forward.angle_deg == pytest.approx(-backward.angle_deg, abs=0.011)
    assert forward.scale * backward.scale == pytest.approx(1.0, abs=1e-3)
    mirrored = features_of_image(ImageOps.mirror(image).rotate(40))
    assert verify_copy(a, mirrored).angle_deg == pytest.approx(verify_copy(mirrored, a).angle_deg, abs=0.011)


def test_images_without_features_get_a_reason_not_an_exception(tmp_path: Path) -> None:
    photo = features_of_image(_photo("full"))
    blank = features_of_image(Image.new("RGB", (512, 512)))
    grey = features_of_image(Image.new("L", (300, 200), 128))
    tiny = features_of_image(Image.new("RGB", (8, 8), (200, 90, 40)), path="tiny.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    broken = copy_features(tmp_path / "broken.jpg")
    missing = copy_features(tmp_path / "missing.png")
    for features, words in [
        (blank, "keypoints"),
        (grey, "keypoints"),
        (tiny, "tiny.png: 8x8 pixels is too small"),
        (broken, "broken.jpg"),
        (missing, "missing.png"),
    ]:
        assert features.problem and words in features.problem, features.problem
        for verdict in (verify_copy(photo, features), verify_copy(features, photo), verify_copy(features, features)):
            assert isinstance(verdict, CopyVerdict) and not verdict.is_copy
            assert verdict.reason == features.problem


def test_two_speckle_images_are_no_copy_and_say_why() -> None:
    """Pure speckle (as in an OCT scan without tissue) has no field to find keypoints in, or nothing in common."""
    rng = np.random.default_rng(0)
    speckle = [rng.gamma(1.0, 40.0, size=(300, 700)).clip(0, 255).astype(np.uint8) for _ in range(2)]
    verdict = verify_copy(features_of_image(speckle[0]), features_of_image(speckle[1]))
    assert not verdict.is_copy
    assert "keypoints in its field" in (verdict.reason or "") or "no common geometry" in (verdict.reason or "")


def test_features_are_small_and_typed() -> None:
    features = copy_features(CFP / "IDRiD_02.jpg")
    assert features.size == Image.open(CFP / "IDRiD_02.jpg").size  # the file's size, not its reduced decode's
    assert features.points.dtype == np.float32 and features.points.shape[1] == 2
    assert features.descriptors.dtype == np.uint8 and features.descriptors.shape[1] == 32
    assert MIN_POINTS <= len(features.points) <= FEATURES and len(features.points) == len(features.descriptors)
    assert features.mirror is None and features.work.shape == features.work_size[::-1]  # kept for the mirror image
    assert features.nbytes < 300_000
    assert features.mirror_points.dtype == np.float32 and features.mirror_descriptors.dtype == np.uint8
    assert MIN_POINTS <= len(features.mirror_points) <= FEATURES
    assert features.work.size == 0 and features.nbytes < 100_000  # found once, then the work image is let go


def test_the_mirror_image_is_described_only_when_a_pair_needs_it() -> None:
    """An unmirrored copy's direct fit settles the pair: neither image's mirror keypoints are found. A mirrored
    copy's direct fit finds chance inliers only, so the mirror image is described and the copy found mirrored."""
    image = _photo("full")
    original = features_of_image(image)
    cropped = features_of_image(make_copy(image, "crop8", random.Random(2))[0])
    verdict = verify_copy(original, cropped)
    assert verdict.is_copy and not verdict.mirrored and verdict.inliers >= 2 * DEFAULT_LIMITS.min_inliers
    assert original.mirror is None and cropped.mirror is None
    mirrored = features_of_image(make_copy(image, "mirror", random.Random(2))[0])
    verdict = verify_copy(original, mirrored)
    assert verdict.is_copy and verdict.mirrored and verdict.kind == "mirror"
    assert (original.mirror is None) != (mirrored.mirror is None)  # the one measured second was mirrored


def _same(first: CopyFeatures, second: CopyFeatures) -> bool:
    return all(
        np.array_equal(getattr(first, name), getattr(second, name))
        for name in ("points", "descriptors", "mirror_points", "mirror_descriptors", "thumbnail", "outline")
    )


def test_results_do_not_depend_on_the_thread_count() -> None:
    image = _photo("full")
    copied, _ = make_copy(image, "crop10", random.Random(11))
    threads = cv2.getNumThreads()
    try:
        runs = []
        for count in (1, 4):
            cv2.setNumThreads(count)
            a, b = features_of_image(image), features_of_image(copied)
            runs.append((a, b, verify_copy(a, b)))
    finally:
        cv2.setNumThreads(threads)
    (a1, b1, v1), (a4, b4, v4) = runs
    assert _same(a1, a4) and _same(b1, b4)
    assert v1 == v4 and v1.is_copy


def test_recipe_keys_set_the_limits() -> None:
    assert limits_of(DedupSpec()) == DEFAULT_LIMITS
    assert DedupSpec().verify_copies is True
    strict = limits_of(DedupSpec(copy_min_inliers=400))
    image = _photo("256px")
    copied, _ = make_copy(image, "rot30", random.Random(2))
    verdict = verify_copy(features_of_image(image), features_of_image(copied), strict)
    assert not verdict.is_copy and "400" in (verdict.reason or "")


# ------------------------------------------------------------------------------------------- real data folder


def _eyepacs(realdata: Path) -> tuple[Path, list[dict[str, str]]]:
    folder = realdata / "EyePACS_256px_EyeQ_labelled"
    with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
        return folder / "images", list(csv.DictReader(handle))


@pytest.mark.slow
def test_copies_of_eyepacs_photographs_are_verified(realdata: Path) -> None:
    images, rows = _eyepacs(realdata)
    chosen = sorted(row["image"] for row in rows if row["eyeq_quality_name"] == "Good")[::150][:6]
    for name in chosen:
        image = Image.open(images / name).convert("RGB")
        original = features_of_image(image)
        for kind in COPY_KINDS:
            copied, done = make_copy(image, kind, random.Random(f"{name}-{kind}"))
            verdict = verify_copy(original, features_of_image(copied))
            assert verdict.is_copy, (name, done, verdict)
            if "angle" in done:
                assert _angle_error(verdict.angle_deg, done["angle"]) < 1.0, (name, done, verdict)


@pytest.mark.slow
def test_left_and_right_eyes_of_eyepacs_patients_are_refused(realdata: Path) -> None:
    images, rows = _eyepacs(realdata)
    eyes: dict[str, dict[str, str]] = {}
    for row in rows:
        eyes.setdefault(row["patient_id"], {})[row["eye"]] = row["image"]
    pairs = sorted(tuple(sorted(pair.values())) for pair in eyes.values() if len(pair) == 2)[:60]
    for left, right in pairs:
        verdict = verify_copy(copy_features(images / left), copy_features(images / right))
        assert not verdict.is_copy, (left, right, verdict)


@pytest.mark.slow
def test_the_same_eyepacs_photograph_released_at_256_px_is_a_copy(realdata: Path) -> None:
    """The 256 px EyeQ copy of a camera original: cropped to the field, squashed to a square, contrast
    re-mixed, 10x smaller: a re-release as found in the wild."""
    original = copy_features(realdata / "EyePACS_kaggle_sample" / "13_left.jpeg")
    release = copy_features(realdata / "EyePACS_256px_EyeQ_labelled" / "images" / "13_left.jpeg")
    verdict = verify_copy(original, release)
    assert verdict.is_copy and verdict.kind == "reframe+rescale", verdict
    other_eye = copy_features(realdata / "EyePACS_256px_EyeQ_labelled" / "images" / "13_right.jpeg")
    assert not verify_copy(original, other_eye).is_copy


def test_same_patient_oct_b_scans_are_refused(realdata: Path) -> None:
    folder = realdata / "OCT_OCTDL_AMD_and_MH_samples" / "data" / "sample_images"
    for first, second in [
        ("amd/amd_2945668_1.jpg", "amd/amd_2945668_5.jpg"),
        ("macular_hole/vid_1416874_1.png", "macular_hole/vid_1416874_2.png"),
        ("macular_hole/vid_3070592_1.png", "macular_hole/vid_3070592_2.png"),
    ]:
        verdict = verify_copy(copy_features(folder / first), copy_features(folder / second))
        assert not verdict.is_copy and verdict.reason, (first, second, verdict)
