"""The copy maker that deduplication's tests and benchmarks use: each kind does what it says."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from retinal_reason_data.phantoms.copies import COPY_KINDS, field_box, make_copy


def _field(width: int = 200, height: int = 160) -> Image.Image:
    image = Image.new("RGB", (width, height))
    ImageDraw.Draw(image).ellipse((30, 10, 170, 150), fill=(180, 90, 40))
    ImageDraw.Draw(image).ellipse((120, 70, 140, 90), fill=(250, 220, 150))  # an optic disc off-centre
    return image


@pytest.mark.parametrize("kind", list(COPY_KINDS))
def test_every_kind_reencodes_and_says_what_it_did(kind: str) -> None:
    copy, done = make_copy(_field(), kind, random.Random(3))
    assert done["kind"] == kind and 0.85 <= done["brightness"] <= 1.15 and 70 <= done["jpeg_quality"] <= 95
    assert copy.mode == "RGB"


def test_geometry_of_the_kinds() -> None:
    image = _field()
    assert make_copy(image, "rot90", random.Random(0))[0].size == (160, 200)
    assert make_copy(image, "pad_square", random.Random(0))[0].size == (200, 200)
    assert make_copy(image, "bbox_crop", random.Random(0))[1]["box"] == field_box(image) == (30, 10, 171, 151)
    for seed in range(20):
        crop = make_copy(image, "crop10", random.Random(seed))[1]
        assert all(0 <= crop[side] <= 0.10 for side in ("left", "top", "right", "bottom"))
        angle = make_copy(image, "rot30", random.Random(seed))[1]["angle"]
        assert 1.0 <= abs(angle) <= 30.0
    mirrored = np.asarray(make_copy(image, "mirror", random.Random(0))[0].convert("L"), dtype=float)
    assert mirrored[80, 200 - 131] > 200 and mirrored[80, 131] < 200  # the disc moved to the other side


def test_an_unknown_kind_is_named() -> None:
    with pytest.raises(ValueError, match="unknown copy kind 'rot45'"):
        make_copy(_field(), "rot45", random.Random(0))
