"""Field hashes: copies of one photograph stay within the recipe's thresholds, other pictures of the same eye
or patient do not, and a flip or quarter turn of the image is the documented permutation of the bits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from retinal_reason_data.curation.hamming import hex_to_bytes, popcount_distance
from retinal_reason_data.ingest.fieldhash import ORIENTATIONS, _solve_normal, field_hashes, find_field, orient, prepare
from retinal_reason_data.phantoms.images import fundus_photo, oct_bscan
from retinal_reason_data.recipe import DedupSpec

T = Image.Transpose
PIL_METHOD = {
    "identity": None,
    "mirror": T.FLIP_LEFT_RIGHT,
    "flip": T.FLIP_TOP_BOTTOM,
    "rot180": T.ROTATE_180,
    "transpose": T.TRANSPOSE,
    "rot90": T.ROTATE_90,
    "rot270": T.ROTATE_270,
    "transverse": T.TRANSVERSE,
}
SPEC = DedupSpec()


def _distance(first: tuple[str, str], second: tuple[str, str], orientation: str = "identity") -> tuple[int, int]:
    near = popcount_distance(hex_to_bytes([first[0]]), orient(hex_to_bytes([second[0]]), orientation))
    detail = popcount_distance(hex_to_bytes([first[1]]), orient(hex_to_bytes([second[1]]), orientation))
    return int(near[0]), int(detail[0])


def _best(first: tuple[str, str], second: tuple[str, str]) -> tuple[int, int]:
    return min((_distance(first, second, name) for name in ORIENTATIONS), key=sum)


def _hashes(image: Image.Image) -> tuple[str, str]:
    return field_hashes(image.convert("L"))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return fundus_photo(4242, "right", ["dr.moderate"], image_seed=1, size=512)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_orient_predicts_the_hash_of_a_flipped_or_turned_image(photo: Image.Image, orientation: str) -> None:
    method = PIL_METHOD[orientation]
    turned = photo if method is None else photo.transpose(method)
    predicted = [orient(hex_to_bytes([h]), orientation) for h in _hashes(photo)]
    actual = [hex_to_bytes([h]) for h in _hashes(turned)]
    for guess, truth in zip(predicted, actual, strict=True):
        assert popcount_distance(guess, truth)[0] <= 3  # resampling rounds x and y slightly differently


COPIES = {
    "jpeg_q50": lambda im: _jpeg(im, 50),
    "resize_quarter": lambda im: im.resize((128, 128), Image.Resampling.BILINEAR),
    "crop_6pct": lambda im: im.crop((31, 31, 481, 481)),
    "squash_4_3_to_square": lambda im: im.crop((0, 64, 512, 448)).resize((512, 512)),
    "pad_black": lambda im: ImageOps.expand(im, border=(60, 20, 60, 90), fill=0),
    "brightness": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "contrast": lambda im: ImageEnhance.Contrast(im).enhance(0.75),
    "mirror_rot90_jpeg": lambda im: _jpeg(ImageOps.mirror(im).transpose(T.ROTATE_90), 80),
}


@pytest.mark.parametrize("name", list(COPIES))
def test_copies_of_one_photograph_match(photo: Image.Image, name: str) -> None:
    near, detail = _best(_hashes(photo), _hashes(COPIES[name](photo)))
    assert near <= SPEC.near_threshold and detail <= SPEC.detail_threshold, (near, detail)


def test_other_visit_other_eye_and_other_patient_do_not_match(photo: Image.Image) -> None:
    original = _hashes(photo)
    others = {
        "other visit": fundus_photo(4242, "right", ["dr.moderate"], image_seed=2, size=512),
        "other eye": fundus_photo(4242, "left", ["dr.moderate"], image_seed=1, size=512),
        "other eye, mirrored": ImageOps.mirror(fundus_photo(4242, "left", ["dr.moderate"], image_seed=1, size=512)),
        "same disease, other patient": fundus_photo(99, "right", ["dr.moderate"], image_seed=1, size=512),
    }
    for what, image in others.items():
        near, detail = _best(original, _hashes(image))
        assert near > SPEC.near_threshold or detail > SPEC.detail_threshold, (what, near, detail)


def test_the_field_outline_is_found_and_survives_crops() -> None:
    photo = fundus_photo(7, "left", [], size=400)
    field = find_field(np.asarray(photo.convert("L").resize((256, 256))))
    assert field is not None
    assert field.cx == pytest.approx(128, abs=1.5) and field.rx == pytest.approx(0.47 * 256, abs=2)
    cropped = np.asarray(photo.crop((0, 50, 400, 350)).convert("L").resize((256, 192)))
    clipped = find_field(cropped)  # clipped top and bottom, as 4:3 camera frames are
    assert clipped is not None and clipped.rx == pytest.approx(0.47 * 256, abs=3)
    assert find_field(np.asarray(oct_bscan(3, "right", ["oct.cnv"], size=(384, 288)).convert("L"))) is None
    assert find_field(np.full((64, 64), 128, dtype=np.uint8)) is None
    work = prepare(photo.convert("L").resize((300, 200)))
    assert work.image.size == (256, 171)
    assert find_field(work.pixels, work.counts) == find_field(np.asarray(work.image))


def test_the_fit_solves_its_normal_equations_as_numpy_does() -> None:
    rng = np.random.default_rng(4)
    for _ in range(50):
        points = rng.normal(size=(5, 300)) * rng.uniform(0.01, 10, size=(5, 1))
        normal = points @ points.T  # symmetric positive definite, with a right side in the last column
        expected = np.linalg.solve(normal[:4, :4], normal[:4, 4])
        assert _solve_normal(normal.tolist()) == pytest.approx(expected.tolist(), rel=1e-8, abs=1e-10)
    singular = np.zeros((5, 5))
    singular[:4, :4] = np.outer([1, 2, 3, 4], [1, 2, 3, 4])
    assert _solve_normal(singular.tolist()) is None


def test_hashes_are_256_bits_and_deterministic(photo: Image.Image) -> None:
    first, second = _hashes(photo), _hashes(photo.copy())
    assert first == second and all(len(h) == 64 for h in first)
    blank = _hashes(Image.new("L", (300, 200), 0))  # no field, no content: still a hash
    assert all(len(h) == 64 for h in blank)
