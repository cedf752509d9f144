"""Image-quality measures taken at intake.

Two kinds:

- **exposure and layout** (`brightness`, `contrast`, `sharpness`, `fov_fraction`), on the 256 px luma work image
  (`fieldhash.prepare`): the hard refusals (blank, no field, too dark, overexposed) read them;
- **gradability measures** that mean the same at 256 px and at 4000 px, read by the fitted quality gate
  (`quality_gate.py`). They are taken on the *field canvas*: the green channel (where the vessels have their
  contrast) of the fitted field, resampled so that the field's diameter is `CANVAS` pixels whatever the file's
  size, and rank-equalised inside 90 % of its radius, so that exposure, gain and the contrast stretch that some
  compilations apply change none of them. Detail is measured in octave bands of a pyramid (band k holds
  structures about 2^(k+1) canvas pixels across, i.e. 1/64, 1/32, 1/16 and 1/8 of the field's diameter), vessel
  contrast by a black top-hat (dark lines narrower than 5 canvas pixels), and illumination by dark patches and
  the centre-to-rim difference. One colour measure, `colour_mottle`, reads the blue channel's canvas too,
  rank-equalised the same way: the detail of blue minus green at the scales of vessels and of small patches
  (1/32 and 1/16 of the diameter), i.e. blotches of colour that the green does not share (flare, a patchy haze
  or colour noise). Global colour balance and saturation are not measured: the EyeQ-labelled copies the gate is
  fitted on were histogram-equalised per channel, which erased them.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from retinal_reason_data.ingest.fieldhash import WorkImage, prepare
from retinal_reason_data.schema import ImageQuality

FIELD_THRESHOLD = 0.06  # grey level above which a pixel belongs to the lit field (fundus border is ~0)
_FIELD_LEVEL = int(FIELD_THRESHOLD * 255) + 1  # the same threshold on 8-bit levels: 16 and up is lit
_LEVELS = np.arange(256, dtype=np.float64) / 255.0
_ALL_MOMENTS = np.stack([np.ones(256), _LEVELS, _LEVELS**2], axis=1)  # per level: 1, level, level^2
_LIT_MOMENTS = _ALL_MOMENTS * (np.arange(256) >= _FIELD_LEVEL)[:, None]  # the same, lit levels only

CANVAS = 128  # the field's diameter on the canvas the gradability measures read
MEASURED_RADIUS = 0.9  # share of the field's radius measured (the rim's vignetting and notches are left out)
_BLOCK = 8  # canvas pixels per side of the blocks whose spread of detail and light is measured
_HAT = 5  # side of the black top-hat's square: vessels up to 4 canvas pixels wide (1/32 of the field)
_FAINT_VESSELS = 0.01  # top-hat (share of the field's grey range) below which a block shows no vessel
_SHADOW = 0.5  # a block whose mean lies this many grey ranges below the field's median is in shadow
_MIN_MEASURED = 400  # canvas pixels needed to measure at all (a sliver of field is refused as no field)
_yy, _xx = np.mgrid[0:CANVAS, 0:CANVAS]
_RADIUS = np.hypot(_xx - (CANVAS - 1) / 2, _yy - (CANVAS - 1) / 2) / (CANVAS / 2)
_DISC = _RADIUS <= MEASURED_RADIUS
_CENTRE, _RIM = _RADIUS < 0.45, _RADIUS > 0.65

GRADABILITY_MEASURES = (
    "detail_fine",
    "detail_vessel",
    "detail_mid",
    "detail_coarse",
    "detail_fine_median",
    "detail_fine_low",
    "vessel_contrast",
    "vessel_contrast_low",
    "vesselless_share",
    "shadow_share",
    "centre_to_rim",
    "colour_mottle",
)
"""The ImageQuality fields that the quality gate reads, in the order of its coefficients."""
COLOUR_MEASURES = ("colour_mottle",)
"""The gradability measures that need colour: None for a grey-level image (the gate then reads them as neutral)."""


def measure(grey: Image.Image | WorkImage, colour: Image.Image | None = None) -> ImageQuality:
    """Quality of an image: exposure and layout on its 256 px luma work image (see `fieldhash.prepare`), and
    the gradability measures on its field canvas, read from `colour` (the decoded image at any size, e.g. the
    reduced decode: its green channel, and its blue for the colour measure; a grey-level image is read as it is
    and has no colour measure) or, when None, from the luma itself.

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
        **gradability(work, colour),
    )


def gradability(work: WorkImage, colour: Image.Image | None = None) -> dict[str, float]:
    """The gradability measures (GRADABILITY_MEASURES, rounded to 4 decimals; COLOUR_MEASURES only where `colour`
    is an RGB image), or {} where the image has too little field to measure."""
    found = field_canvas(work, colour)
    if found is None:
        return {}
    canvas, mask = found
    blue = None
    if canvas.ndim == 3:
        canvas, blue = canvas[..., 1], canvas[..., 2]
    canvas = _equalise(canvas, mask)
    values = canvas[mask]
    low, median, high = np.percentile(values, (10, 50, 90)).tolist()
    grey_range = max(high - low, 1.0)
    fine, vessel, mid, coarse, fine_map = _band_energies(canvas, mask)
    squared_range = grey_range * grey_range
    hat = _black_top_hat(canvas) / grey_range
    full = _blocks(mask.astype(np.float32)) > 0.9
    fine_blocks = _blocks(fine_map)[full] / squared_range
    hat_blocks, mean_blocks = _blocks(hat)[full], _blocks(canvas)[full]
    measures = {
        "detail_fine": _log(fine / squared_range),
        "detail_vessel": _log(vessel / squared_range),
        "detail_mid": _log(mid / squared_range),
        "detail_coarse": _log(coarse / squared_range),
        "detail_fine_median": _log(float(np.median(fine_blocks))),
        "detail_fine_low": _log(float(np.percentile(fine_blocks, 10))),
        "vessel_contrast": float(hat[mask].mean()),
        "vessel_contrast_low": float(np.percentile(hat_blocks, 25)),
        "vesselless_share": float(np.mean(hat_blocks < _FAINT_VESSELS)),
        "shadow_share": float(np.mean(mean_blocks < median - _SHADOW * grey_range)),
        "centre_to_rim": _centre_to_rim(canvas, mask, grey_range),
    }
    if blue is not None:
        measures["colour_mottle"] = _colour_mottle(_equalise(blue, mask) - canvas, mask)
    return {name: round(value, 4) for name, value in measures.items()}


def field_geometry(pixels: np.ndarray) -> tuple[float, float, float] | None:
    """(centre x, centre y, diameter) of the lit field in a work image's pixels, from the extent of its lit rows
    and columns (a field clipped by the frame keeps its diameter along the unclipped side); None if nothing is lit."""
    lit = pixels >= _FIELD_LEVEL
    columns, rows = lit.sum(axis=0), lit.sum(axis=1)
    if not columns.any():
        return None
    xs = np.flatnonzero(columns >= max(2, 0.05 * columns.max()))
    ys = np.flatnonzero(rows >= max(2, 0.05 * rows.max()))
    x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
    return (x0 + x1) / 2, (y0 + y1) / 2, float(max(x1 - x0, y1 - y0))


def field_canvas(work: WorkImage, source: Image.Image | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The field resampled to CANVAS x CANVAS from `source` (the work image when None; an RGB source gives
    CANVAS x CANVAS x 3), and the mask of the measured disc that lies inside the frame; None where the field is
    too small or absent."""
    geometry = field_geometry(work.pixels)
    if geometry is None:
        return None
    source = work.image if source is None else source
    scale = source.width / work.image.width  # source pixels per work pixel
    cx, cy, diameter = (value * scale for value in geometry)
    left, top = cx - diameter / 2, cy - diameter / 2
    per_canvas = diameter / CANVAS  # source pixels per canvas pixel
    # the part of the field's square inside the frame, in whole canvas pixels
    c0 = max(0, math.ceil(-left / per_canvas))
    r0 = max(0, math.ceil(-top / per_canvas))
    c1 = min(CANVAS, math.floor((source.width - left) / per_canvas))
    r1 = min(CANVAS, math.floor((source.height - top) / per_canvas))
    if c1 - c0 < 8 or r1 - r0 < 8:
        return None
    box = (left + c0 * per_canvas, top + r0 * per_canvas, left + c1 * per_canvas, top + r1 * per_canvas)
    box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], source.width), min(box[3], source.height))
    part = np.asarray(
        source.resize((c1 - c0, r1 - r0), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0), dtype=np.float32
    )
    canvas = np.zeros((CANVAS, CANVAS, *part.shape[2:]), dtype=np.float32)
    canvas[r0:r1, c0:c1] = part
    mask = np.zeros((CANVAS, CANVAS), dtype=bool)
    mask[r0 + 1 : r1 - 1, c0 + 1 : c1 - 1] = True
    mask &= _DISC
    if np.count_nonzero(mask) < _MIN_MEASURED:
        return None
    return canvas, mask


def _equalise(canvas: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey levels replaced by their rank inside the mask (0-255): any monotonic change of exposure or contrast
    gives the same canvas."""
    levels = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    counts = np.bincount(levels[mask], minlength=256).astype(np.float64)
    ranks = (np.cumsum(counts) - counts / 2) * (255.0 / counts.sum())
    return ranks.astype(np.float32)[levels]


def _pool(values: np.ndarray) -> np.ndarray:
    """Mean over 2 x 2 blocks (four strided slices added: a tenth of the time of a mean over reshaped axes)."""
    return (values[0::2, 0::2] + values[1::2, 0::2] + values[0::2, 1::2] + values[1::2, 1::2]) * np.float32(0.25)


def _expand(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(values, 2, axis=0), 2, axis=1)


def _band_energies(canvas: np.ndarray, mask: np.ndarray) -> tuple[float, float, float, float, np.ndarray]:
    """Mean squared detail of four octave bands of a 2 x 2 mean pyramid, each over the pixels whose 2 x 2 parent
    lies wholly in the mask; and the finest band's squares at canvas size (zero outside the mask)."""
    level, weight = canvas, mask.astype(np.float32)
    energies, fine_map = [], np.zeros_like(canvas)
    for band in range(4):
        squares, inside, level, weight = _octave(level, weight)
        energies.append(float(squares[inside].mean()) if inside.any() else 0.0)
        if band == 0:
            fine_map = np.where(inside, squares, 0.0).astype(np.float32)
    return energies[0], energies[1], energies[2], energies[3], fine_map


def _octave(level: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One octave of the pyramid: the squared detail (the level minus its 2 x 2 means), where it is measured (the
    pixels whose 2 x 2 parent lies wholly in the mask), and the next coarser level and its weight."""
    coarser, coarser_weight = _pool(level), _pool(weight)
    detail = level - _expand(coarser)
    return detail * detail, (weight >= 1.0) & (_expand(coarser_weight) >= 1.0), coarser, coarser_weight


def _black_top_hat(canvas: np.ndarray) -> np.ndarray:
    """Closing minus the image, with a _HAT x _HAT square: what dark lines (vessels) narrower than it remove."""
    return _extreme(_extreme(canvas, np.maximum), np.minimum) - canvas


def _extreme(values: np.ndarray, pick: np.ufunc) -> np.ndarray:
    """Max or min over a _HAT x _HAT square (separable; the frame's edge repeated)."""
    reach = _HAT // 2
    padded = np.pad(values, reach, mode="edge")
    height, width = values.shape
    rows = padded[:, :width]
    for shift in range(1, _HAT):
        rows = pick(rows, padded[:, shift : shift + width])
    out = rows[:height]
    for shift in range(1, _HAT):
        out = pick(out, rows[shift : shift + height])
    return out


def _blocks(values: np.ndarray) -> np.ndarray:
    """Means over _BLOCK x _BLOCK blocks (rows summed first, then columns: contiguous reductions)."""
    side = CANVAS // _BLOCK
    rows = values.reshape(side, _BLOCK, CANVAS).sum(axis=1)
    return rows.reshape(side, side, _BLOCK).sum(axis=2) * np.float32(1.0 / (_BLOCK * _BLOCK))


def _colour_mottle(difference: np.ndarray, mask: np.ndarray) -> float:
    """log energy of the detail of blue minus green (rank-equalised canvases) at 1/32 and 1/16 of the field's
    diameter, in shares of the full range squared. The finest band is left out: the 256 px EyeQ copies the gate
    is fitted on lost it to JPEG's halved chroma resolution, camera originals keep it."""
    level, weight = _pool(difference), _pool(mask.astype(np.float32))  # the finest band is skipped
    total = 0.0
    for _ in range(2):
        squares, inside, level, weight = _octave(level, weight)
        total += float(squares[inside].mean()) if inside.any() else 0.0
    return _log(total / 255.0**2)


def _centre_to_rim(canvas: np.ndarray, mask: np.ndarray, grey_range: float) -> float:
    centre, rim = mask & _CENTRE, mask & _RIM
    if not centre.any() or not rim.any():
        return 0.0
    return (float(canvas[centre].mean()) - float(canvas[rim].mean())) / grey_range


def _log(value: float) -> float:
    return math.log(max(value, 0.0) + 1e-5)


def _variance(values: np.ndarray) -> float:
    """Variance of small integers (a Laplacian: |value| <= 1020), from a float32 sum and dot product."""
    if not values.size:
        return 0.0
    floats = values.astype(np.float32)
    mean = float(floats.sum(dtype=np.float64)) / values.size
    return max(float(floats @ floats) / values.size - mean * mean, 0.0)
