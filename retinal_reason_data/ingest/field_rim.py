"""The field of view fitted from its curved rim only, so that crops, re-framing and turns of a photograph keep it.

`fieldhash.find_field` fits an ellipse to every edge of the lit region and gives up when the frame cuts the field
(most 256 px compilations crop the field to its width): fine for hashing the inner field, not for a signature that
must find the same centre and radius in a copy cropped 10 % into the field or turned by 30 degrees. Here the rim
is found as the first lit crossing along every row and column (sub-pixel, on a 5 x 5 box blur of the work image),
points on the frame border are dropped (the frame cut the field there: no rim), long straight runs are dropped
(camera masks and the edges of an earlier crop or turn), and an axis-aligned ellipse (a stretched crop
un-stretches) is chosen among random 4-point fits by the rim points it passes within 1.5 px, less twice those it
leaves more than 3 px outside (a field has no lit pixel beyond its rim), then refined by least squares on its
inliers. A fit is refused when its centre is outside the frame, more than 8 % of the lit pixels lie beyond 1.05
times it, or fewer rim points lie on it than twice those it leaves outside (the layers of an OCT scan, fitted
by chance: Kermany's OCT2017 scans gave such ellipses). Two lit levels are tried (8 % of the way from the
background to the 90th percentile, and a quarter of the way between Otsu's two classes, for noisy backgrounds);
the lower wins unless its fit is clearly worse, so that a copy does not flip between the rim's outer glow and its
edge.

Deterministic: the random draws are seeded, so one image always gives one field.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from retinal_reason_data.ingest.fieldhash import Field

LOW_LEVEL = 0.08  # lit: this far from the 1st towards the 90th percentile of the blurred work image
OTSU_LEVEL = 0.25  # second try: this far from the dark class mean towards the bright one (Otsu's split)
LINE_TOLERANCE = 0.5  # px: a straight run is this close to one line ...
LINE_MIN_POINTS = 60  # ... over at least this many rim points (an arc of a 100 px radius deviates 1 px in 28 px)
LINE_ROUNDS, LINE_TRIALS = 4, 32
ELLIPSE_TRIALS = 96
RANSAC_POINTS = 256  # rim points scored per candidate ellipse (an even subsample of the rim)
INLIER_PX, OUTSIDE_PX, OUTSIDE_WEIGHT = 1.5, 3.0, 2.0
PREFER_LOW = 0.7  # the lower level's fit wins when its score is within 30 % of the best
CLEAR_SHARE = 0.6  # ... and is taken without trying the higher one when this share of its rim points lies on it
MIN_POINTS = 24
MIN_SCORE = 1.0  # a rim has more of its points on the ellipse than twice those it leaves outside
MAX_LIT_OUTSIDE, OUTSIDE_SCALE = 0.08, 1.05  # a field leaves at most 8 % of the lit pixels beyond 1.05 times it
_SEED = 0x51F


def fit_rim(smoothed: np.ndarray, counts: np.ndarray | None = None) -> Field | None:
    """The field of a blurred 8-bit grey work image from its curved rim; None when no plausible rim is found.
    `counts`: its 256-level histogram where the caller has it (PIL counts at a fraction of `np.bincount`'s cost).

    The lower level is tried first; when most of its rim points lie on its ellipse it is taken as is, else the
    higher level is fitted too and the lower one wins unless its score is clearly worse."""
    return fit_rim_and_edges(smoothed, counts)[0]


def fit_rim_and_edges(smoothed: np.ndarray, counts: np.ndarray | None = None) -> tuple[Field | None, list[Edge]]:
    """`fit_rim`'s field and the straight edges of the lit region at the lower level (the runs the fit dropped
    from the rim: where a crop, a pad or a turn cut the field, or a camera mask; empty without a lit level)."""
    pixels = smoothed.astype(np.float32)
    fits = []
    edges: list[Edge] | None = None  # the lower level's: the first tried
    for level in lit_levels(smoothed, counts):
        fit, found = _fit_at(pixels, level)
        edges = found if edges is None else edges
        if fit is None:
            continue
        fits.append(fit)
        if len(fits) == 1 and fit[2] >= CLEAR_SHARE:
            break
    if not fits:
        return None, edges or []
    top = max(score for _, score, _ in fits)
    return next(field for field, score, _ in fits if score >= top - (1 - PREFER_LOW) * abs(top)), edges or []


def lit_levels(smoothed: np.ndarray, counts: np.ndarray | None = None) -> list[float]:
    """The grey levels tried as the field's edge: a low one for black backgrounds, one above a noisy one."""
    counts = np.bincount(smoothed.ravel(), minlength=256) if counts is None else counts
    counts = counts.astype(np.float64)
    cumulative = np.cumsum(counts)
    low, high = np.searchsorted(cumulative, np.array([0.01, 0.90]) * (smoothed.size - 1), side="right")
    levels = [float(low + LOW_LEVEL * (high - low))] if high - low >= 8 else []
    split = _otsu(counts)
    grey = np.arange(256)
    dark = counts[: split + 1] @ grey[: split + 1] / max(counts[: split + 1].sum(), 1.0)
    bright = counts[split + 1 :] @ grey[split + 1 :] / max(counts[split + 1 :].sum(), 1.0)
    if bright - dark >= 8:
        levels.append(float(dark + OTSU_LEVEL * (bright - dark)))
    return levels


def _otsu(counts: np.ndarray) -> int:
    share = counts / counts.sum()
    below = np.cumsum(share)
    mean_below = np.cumsum(share * np.arange(len(share)))
    between = (mean_below[-1] * below - mean_below) ** 2 / np.maximum(below * (1 - below), 1e-12)
    return int(np.argmax(between))


def rim_points(pixels: np.ndarray, level: float) -> np.ndarray:
    """(n, 2) x, y of the first lit crossing from each side along rows and columns, in continuous pixel
    coordinates; a crossing is kept where the rim is within 45 degrees of across the scan (each rim point is
    found once, by the scan that crosses it most squarely) and not on the frame border."""
    found = [_crossings(pixels, level), _crossings(pixels.T, level)[:, ::-1]]
    return np.concatenate(found)


def _crossings(pixels: np.ndarray, level: float) -> np.ndarray:
    height, width = pixels.shape
    lit = pixels > level
    rows = np.flatnonzero(lit.any(axis=1))
    if len(rows) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    first = lit[rows].argmax(axis=1)
    last = width - 1 - lit[rows, ::-1].argmax(axis=1)
    points = []
    for position, step in ((first, -1), (last, 1)):
        inside_frame = (position > 2) & (position < width - 3)
        row, column = rows[inside_frame], position[inside_frame]
        inside, outside = pixels[row, column], pixels[row, column + step]
        share = np.clip((inside - level) / np.maximum(inside - outside, 1e-3), 0.0, 1.0)
        x = column + step * share + 0.5
        by_row = np.full(height + 2, np.nan)
        by_row[row + 1] = x
        step_up, step_down = np.abs(by_row[1:-1] - by_row[:-2]), np.abs(by_row[1:-1] - by_row[2:])
        steep = np.fmax(step_up, step_down)[row] <= 1.0
        points.append(np.stack([x[steep], row[steep] + 0.5], axis=1))
    return np.concatenate(points)


class Edge(NamedTuple):
    """A straight edge of the lit region (a crop's, a pad's or a turned copy's): a point on it and its unit
    normal (either way round)."""

    x: float
    y: float
    nx: float
    ny: float


def split_straight_runs(points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[Edge]]:
    """(the rim points less those on long straight runs, the straight edges they lie on: least-squares lines)."""
    edges: list[Edge] = []
    for _ in range(LINE_ROUNDS):
        if len(points) < LINE_MIN_POINTS:
            break
        first = points[rng.integers(0, len(points), LINE_TRIALS)]
        direction = points[rng.integers(0, len(points), LINE_TRIALS)] - first
        length = np.hypot(direction[:, 0], direction[:, 1])
        usable = length > 10
        if not usable.any():
            break
        first, direction, length = first[usable], direction[usable], length[usable]
        normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1) / length[:, None]
        along_x = (points[None, :, 0] - first[:, None, 0]) * normal[:, None, 0]
        on_line = np.abs(along_x + (points[None, :, 1] - first[:, None, 1]) * normal[:, None, 1]) < LINE_TOLERANCE
        best = int(np.argmax(on_line.sum(axis=1)))
        if on_line[best].sum() < LINE_MIN_POINTS:
            break
        run = points[on_line[best]]
        centre = run.mean(axis=0)
        across = np.linalg.svd(run - centre, full_matrices=False)[2][1]  # the direction the run varies least in
        edges.append(Edge(float(centre[0]), float(centre[1]), float(across[0]), float(across[1])))
        points = points[~on_line[best]]
    return points, edges


def _fit_at(pixels: np.ndarray, level: float) -> tuple[tuple[Field, float, float] | None, list[Edge]]:
    """(the field fitted at one lit level, its score (rim points on it less the weighted ones outside) and the
    share of the rim points on it; or None), and the straight edges dropped from the rim."""
    rng = np.random.default_rng(_SEED)
    points, edges = split_straight_runs(rim_points(pixels, level), rng)
    if len(points) < MIN_POINTS:
        return None, edges
    height, width = pixels.shape
    unit = max(height, width) / 2
    scaled = (points - np.array([width / 2, height / 2])) / unit  # centred and scaled for a stable fit
    ellipse = _ransac(scaled[:: max(1, len(scaled) // RANSAC_POINTS)], unit, rng)
    if ellipse is None:
        return None, edges
    for tolerance in (2.0, 1.0):
        near = np.abs(_residual_px(scaled, ellipse, unit)) < tolerance
        refined = _least_squares(scaled[near]) if near.sum() >= 12 else None
        if refined is None:
            break
        ellipse = refined
    if not _plausible(ellipse, (width / 2 / unit, height / 2 / unit)):
        return None, edges
    if _lit_outside(pixels, level, ellipse, unit) > MAX_LIT_OUTSIDE:
        return None, edges
    residual = _residual_px(scaled, ellipse, unit)
    on_rim = np.count_nonzero(np.abs(residual) < 1.0)
    score = on_rim - OUTSIDE_WEIGHT * np.count_nonzero(residual > OUTSIDE_PX)
    if score < MIN_SCORE:  # an ellipse through a few of an OCT scan's layer crossings, say
        return None, edges
    cx, cy, rx, ry = ellipse
    field = Field(width / 2 + cx * unit, height / 2 + cy * unit, rx * unit, ry * unit)
    return (field, float(score), on_rim / len(points)), edges


def _ransac(scaled: np.ndarray, unit: float, rng: np.random.Generator) -> tuple[float, ...] | None:
    """The best of ELLIPSE_TRIALS ellipses through 4 random rim points, by inliers less weighted outsiders."""
    chosen = scaled[rng.integers(0, len(scaled), (ELLIPSE_TRIALS, 4))]
    u, v = chosen[..., 0], chosen[..., 1]
    systems = np.stack([u * u, v * v, u, v], axis=2)
    solvable = np.abs(np.linalg.det(systems)) > 1e-12
    if not solvable.any():
        return None
    with np.errstate(all="ignore"):
        a, b, c, d = np.linalg.solve(systems[solvable], np.ones((int(solvable.sum()), 4, 1)))[..., 0].T
        g = 1 + c * c / (4 * a) + d * d / (4 * b)
        rx, ry = np.sqrt(g / a), np.sqrt(g / b)
        keep = (a > 0) & (b > 0) & (g > 0) & (rx > 0.25) & (rx < 1.6) & (ry > 0.25) & (ry < 1.6)
        keep &= (rx < 1.33 * ry) & (ry < 1.33 * rx)
    if not keep.any():
        return None
    cx, cy = (-c[keep] / (2 * a[keep]))[:, None], (-d[keep] / (2 * b[keep]))[:, None]
    rx, ry = rx[keep, None], ry[keep, None]
    points = scaled.astype(np.float32)
    radial = np.hypot((points[None, :, 0] - cx) / rx, (points[None, :, 1] - cy) / ry) - 1
    residual = radial * ((rx + ry) * (unit / 2))
    score = (np.abs(residual) < INLIER_PX).sum(axis=1) - OUTSIDE_WEIGHT * (residual > OUTSIDE_PX).sum(axis=1)
    best = int(np.argmax(score))
    return float(cx[best, 0]), float(cy[best, 0]), float(rx[best, 0]), float(ry[best, 0])


def _lit_outside(pixels: np.ndarray, level: float, ellipse: tuple[float, ...], unit: float) -> float:
    """The share of the lit pixels (every 4th row and column) beyond OUTSIDE_SCALE times the ellipse: a field of
    view has none beyond its rim; an OCT scan's layers fitted by chance, or a noisy background lit at too low a
    level, have many."""
    height, width = pixels.shape
    rows, columns = np.arange(2, height, 4), np.arange(2, width, 4)
    lit = pixels[2::4, 2::4] > level
    cx, cy, rx, ry = ellipse
    u = ((columns + 0.5 - width / 2) / unit - cx) / rx
    v = ((rows + 0.5 - height / 2) / unit - cy) / ry
    outside = u[None, :] ** 2 + v[:, None] ** 2 > OUTSIDE_SCALE**2
    return np.count_nonzero(lit & outside) / max(np.count_nonzero(lit), 1)


def _plausible(ellipse: tuple[float, ...], aspect: tuple[float, float] = (1.0, 1.0)) -> bool:
    """Radii within 0.25-1.6 of half the frame's longest side, axes within 4:3, the centre inside the frame
    (`aspect`: the frame's half width and half height over half its longest side)."""
    cx, cy, rx, ry = ellipse
    inside = abs(cx) <= aspect[0] and abs(cy) <= aspect[1]
    return inside and 0.25 < rx < 1.6 and 0.25 < ry < 1.6 and 0.75 < rx / ry < 1.33


def _least_squares(scaled: np.ndarray) -> tuple[float, ...] | None:
    """Axis-aligned ellipse a u^2 + b v^2 + c u + d v = 1 through the points by least squares."""
    u, v = scaled[:, 0], scaled[:, 1]
    terms = np.stack([u * u, v * v, u, v], axis=1)
    try:
        a, b, c, d = np.linalg.solve(terms.T @ terms, terms.sum(axis=0))
    except np.linalg.LinAlgError:
        return None
    if a <= 0 or b <= 0:
        return None
    g = 1 + c * c / (4 * a) + d * d / (4 * b)
    if g <= 0:
        return None
    return -c / (2 * a), -d / (2 * b), math.sqrt(g / a), math.sqrt(g / b)


def _residual_px(scaled: np.ndarray, ellipse: tuple[float, ...], unit: float) -> np.ndarray:
    cx, cy, rx, ry = ellipse
    return (np.hypot((scaled[:, 0] - cx) / rx, (scaled[:, 1] - cy) / ry) - 1) * (rx + ry) / 2 * unit
