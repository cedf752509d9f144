"""Cheap image-quality measures: brightness, contrast, sharpness and the lit field of view."""

from __future__ import annotations

import numpy as np
from PIL import Image

from retinal_reason_data.schema import ImageQuality

MEASURE_SIDE = 256
FIELD_THRESHOLD = 0.06  # grey level above which a pixel belongs to the lit field (fundus border is ~0)


def measure(grey: Image.Image) -> ImageQuality:
    """Quality of a grey-level image, measured on a copy reduced to 256 px on its longest side."""
    small = grey
    if max(grey.size) > MEASURE_SIDE:
        small = grey.copy()
        small.thumbnail((MEASURE_SIDE, MEASURE_SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32) / 255.0
    field = pixels > FIELD_THRESHOLD
    inside = pixels[field] if field.any() else pixels.ravel()
    laplacian = pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1] - 4.0 * pixels[1:-1, 1:-1]
    interior = field[1:-1, 1:-1] & field[:-2, 1:-1] & field[2:, 1:-1] & field[1:-1, :-2] & field[1:-1, 2:]
    edges = laplacian[interior] if interior.any() else laplacian.ravel()
    return ImageQuality(
        brightness=round(float(inside.mean()), 4),
        contrast=round(float(inside.std()), 4),
        sharpness=round(float(edges.var()) if edges.size else 0.0, 6),
        fov_fraction=round(float(field.mean()), 4),
    )
