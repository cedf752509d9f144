"""Cheap image-quality measures: brightness, contrast, sharpness and the lit field of view."""

from __future__ import annotations

import numpy as np
from PIL import Image

from retinal_reason_data.schema import ImageQuality

MEASURE_SIDE = 256
FIELD_THRESHOLD = 0.06  # grey level above which a pixel belongs to the lit field (fundus border is ~0)
_FIELD_LEVEL = int(FIELD_THRESHOLD * 255) + 1  # the same threshold on 8-bit levels: 16 and up is lit
_LEVELS = np.arange(256, dtype=np.float64) / 255.0


def measure(grey: Image.Image) -> ImageQuality:
    """Quality of a grey-level image, measured on a copy reduced to 256 px on its longest side.

    Brightness and contrast are the mean and standard deviation of the lit field (from a histogram);
    sharpness is the variance of the Laplacian inside the field, away from its rim."""
    small = grey if grey.mode == "L" else grey.convert("L")
    if max(small.size) > MEASURE_SIDE:
        small = small.copy()
        small.thumbnail((MEASURE_SIDE, MEASURE_SIDE), Image.Resampling.BILINEAR)
    levels = np.asarray(small)
    counts = np.bincount(levels.ravel(), minlength=256).astype(np.float64)
    lit = counts[_FIELD_LEVEL:].sum()
    if lit:
        counts[:_FIELD_LEVEL] = 0.0
    brightness = float(counts @ _LEVELS / counts.sum())
    contrast = float(np.sqrt(max(counts @ (_LEVELS - brightness) ** 2 / counts.sum(), 0.0)))
    pixels = levels.astype(np.int16)
    laplacian = pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1] - 4 * pixels[1:-1, 1:-1]
    field = levels >= _FIELD_LEVEL
    interior = field[1:-1, 1:-1] & field[:-2, 1:-1] & field[2:, 1:-1] & field[1:-1, :-2] & field[1:-1, 2:]
    edges = laplacian[interior] if interior.any() else laplacian.ravel()
    return ImageQuality(
        brightness=round(brightness, 4),
        contrast=round(contrast, 4),
        sharpness=round(float(edges.var(dtype=np.float64)) / 255.0**2 if edges.size else 0.0, 6),
        fov_fraction=round(float(lit / levels.size), 4),
    )
