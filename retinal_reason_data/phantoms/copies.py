"""Copies of a photograph as re-releases and compilations make them, for deduplication tests and benchmarks.

Each kind is one transform drawn at random within its bounds, with brightness +-15 % and a JPEG re-encode on
top (quality 70-95), as a new user finds them in the wild: `make_copy(image, kind, rng)` returns the copy and
what was done (angle, crop shares, ...), so a benchmark can report recall per kind and a test can say what it
checked. Kinds:

- `photometric`: brightness and re-encode only; `resample`: resized down (0.4-0.7) and back up.
- `crop8`, `crop10`: cropped into the field by up to 8 % / 10 % of the size on each side (drawn per side),
  resized back to the original size.
- `rot5`, `rot10`, `rot30`: rotated about the centre by 1-5, 1-10, 1-30 degrees either way, same canvas.
- `mirror`, `flip`, `rot90`, `rot180`: the flips and quarter turns.
- `pad_square`: the frame padded with black to a square (what preprocessing scripts do before resizing).
- `bbox_crop`: cropped to the bounding box of the field (pixels brighter than the background), as
  Ben Graham's and similar preprocessing do.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

CopyMaker = Callable[[Image.Image, random.Random], tuple[Image.Image, dict[str, Any]]]
BRIGHTNESS = 0.15
JPEG_QUALITY = (70, 95)
BACKGROUND_LEVEL = 20  # grey level above which a pixel belongs to the field, for `bbox_crop`


def _photometric(image: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    factor = rng.uniform(1 - BRIGHTNESS, 1 + BRIGHTNESS)
    quality = rng.randint(*JPEG_QUALITY)
    buffer = io.BytesIO()
    ImageEnhance.Brightness(image.convert("RGB")).enhance(factor).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB"), {"brightness": round(factor, 3), "jpeg_quality": quality}


def _resample(image: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    share = rng.uniform(0.4, 0.7)
    small = image.resize((max(8, round(image.width * share)), max(8, round(image.height * share))), Image.BILINEAR)
    return small.resize(image.size, Image.BICUBIC), {"scale": round(share, 3)}


def _crop(limit: float) -> CopyMaker:
    def crop(image: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
        left, top, right, bottom = (rng.uniform(0.0, limit) for _ in range(4))
        w, h = image.size
        box = (round(left * w), round(top * h), w - round(right * w), h - round(bottom * h))
        shares = {"left": left, "top": top, "right": right, "bottom": bottom}
        return image.crop(box).resize(image.size, Image.LANCZOS), {k: round(v, 3) for k, v in shares.items()}

    return crop


def _rotate(limit: float) -> CopyMaker:
    def rotate(image: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
        angle = rng.uniform(1.0, limit) * rng.choice((-1, 1))
        return image.rotate(angle, resample=Image.BICUBIC), {"angle": round(angle, 2)}

    return rotate


def _fixed(transform: Callable[[Image.Image], Image.Image]) -> CopyMaker:
    return lambda image, rng: (transform(image), {})


def _pad_square(image: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    side = max(image.size)
    canvas = Image.new("RGB", (side, side))
    canvas.paste(image.convert("RGB"), ((side - image.width) // 2, (side - image.height) // 2))
    return canvas, {"side": side}


def field_box(image: Image.Image, level: int = BACKGROUND_LEVEL) -> tuple[int, int, int, int]:
    """Bounding box (left, top, right, bottom) of the pixels brighter than `level` (the whole frame if none)."""
    grey = np.asarray(image.convert("L"))
    rows, cols = np.flatnonzero((grey > level).any(axis=1)), np.flatnonzero((grey > level).any(axis=0))
    if len(rows) == 0 or len(cols) == 0:
        return 0, 0, image.width, image.height
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _bbox_crop(image: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    box = field_box(image)
    return image.crop(box), {"box": box}


T = Image.Transpose
COPY_KINDS: dict[str, CopyMaker] = {
    "photometric": _fixed(lambda image: image),
    "resample": _resample,
    "crop8": _crop(0.08),
    "crop10": _crop(0.10),
    "rot5": _rotate(5.0),
    "rot10": _rotate(10.0),
    "rot30": _rotate(30.0),
    "mirror": _fixed(ImageOps.mirror),
    "flip": _fixed(ImageOps.flip),
    "rot90": _fixed(lambda image: image.transpose(T.ROTATE_90)),
    "rot180": _fixed(lambda image: image.transpose(T.ROTATE_180)),
    "pad_square": _pad_square,
    "bbox_crop": _bbox_crop,
}


def make_copy(image: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    """A copy of `image` of the given kind with brightness and JPEG re-encoding on top, and what was done."""
    if kind not in COPY_KINDS:
        raise ValueError(f"unknown copy kind {kind!r}; known: {', '.join(COPY_KINDS)}")
    copied, done = COPY_KINDS[kind](image.convert("RGB"), rng)
    copied, photometric = _photometric(copied, rng)
    return copied, {"kind": kind, **done, **photometric}
