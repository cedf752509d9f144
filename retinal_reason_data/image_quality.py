"""Cheap image-quality measures: brightness, contrast, sharpness and the lit field of view."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from retinal_reason_data.fieldhash import WorkImage, prepare
from retinal_reason_data.schema import ImageQuality

FIELD_THRESHOLD = 0.06  # grey level above which a pixel belongs to the lit field (fundus border is ~0)
_FIELD_LEVEL = int(FIELD_THRESHOLD * 255) + 1  # the same threshold on 8-bit levels: 16 and up is lit
_LEVELS = np.arange(256, dtype=np.float64) / 255.0
_ALL_MOMENTS = np.stack([np.ones(256), _LEVELS, _LEVELS**2], axis=1)  # per level: 1, level, level^2
_LIT_MOMENTS = _ALL_MOMENTS * (np.arange(256) >= _FIELD_LEVEL)[:, None]  # the same, lit levels only


def measure(grey: Image.Image | WorkImage) -> ImageQuality:
    """Quality of a grey-level image, measured on its 256 px work image (see `fieldhash.prepare`).

    Brightness and contrast are the mean and standard deviation of the lit field (all pixels when nothing is
    lit), from the histogram; sharpness is the variance of the Laplacian inside the field, away from its rim."""
    work = prepare(grey)
    levels, counts = work.pixels, work.counts
    lit, total, squares = (counts @ _LIT_MOMENTS).tolist()
    count, total, squares = (lit, total, squares) if lit else (counts @ _ALL_MOMENTS).tolist()
    brightness = total / count
    contrast = math.sqrt(max(squares / count - brightness * brightness, 0.0))
    pixels = levels.astype(np.int16)
    laplacian = pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1] - 4 * pixels[1:-1, 1:-1]
    field = levels >= _FIELD_LEVEL
    interior = field[1:-1, 1:-1] & field[:-2, 1:-1] & field[2:, 1:-1] & field[1:-1, :-2] & field[1:-1, 2:]
    inside = laplacian[interior]
    return ImageQuality(
        brightness=round(brightness, 4),
        contrast=round(contrast, 4),
        sharpness=round(_variance(inside if inside.size else laplacian.ravel()) / 255.0**2, 6),
        fov_fraction=round(lit / levels.size, 4),
    )


def _variance(values: np.ndarray) -> float:
    """Variance of small integers (a Laplacian: |value| <= 1020), from a float32 sum and dot product."""
    if not values.size:
        return 0.0
    floats = values.astype(np.float32)
    mean = float(floats.sum(dtype=np.float64)) / values.size
    return max(float(floats @ floats) / values.size - mean * mean, 0.0)
