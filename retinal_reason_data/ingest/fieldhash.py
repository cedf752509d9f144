"""Near-duplicate fingerprints of ophthalmic images: perceptual hashes of the field of view.

A fundus photograph is a bright disc on black. Copies of one photograph in different compilations are
cropped, padded, letterboxed or squashed to a square, so a hash of the whole frame moves with the frame.
These hashes are taken over the field itself: its outline is fitted (an axis-aligned ellipse, so a
squashed copy is un-squashed), the disc is resampled to a fixed square, and only its inner 80 % is kept,
so that crops which clip the rim change nothing. Images without a fitted field (OCT, cropped-in photos)
are hashed over the whole frame.

Bits are the signs of DCT coefficients (not a comparison with their median), which makes every flip and
quarter turn of the image a fixed permutation and inversion of the bits: `orient` computes the hash of
a flipped or rotated copy from the hash alone, so orientation-invariant search needs one hash per image.

- `near_hash`: 16 x 16 lowest frequencies of the canonical image at 64 px (the 128 px one averaged over 2 x 2
  blocks; 256 bits), searched by Hamming distance.
- `detail_hash`: the next band (frequencies 16-31) of a 128 px canonical image (256 bits), which
  separates re-takes of one eye (same anatomy, shifted by a few pixels) from copies of one photograph.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

HASH_SIDE = 16
NEAR_CANVAS = 64
DETAIL_CANVAS = 128
FIELD_KEEP = 0.8  # share of the field's radius that is hashed: crops clipping up to 20 % of it are ignored
_WORK_SIDE = 256  # every image is hashed from this size (longest side)
_CANVAS_FILTER = Image.Resampling.BILINEAR  # the field is resampled near 1:1 from the work image: 2 taps suffice
_EDGE_LEVEL = 0.08  # field edge: this far from the background level towards the bright (90th percentile) level

ORIENTATIONS = ("identity", "mirror", "flip", "rot180", "transpose", "rot90", "rot270", "transverse")
"""Names of the 8 flips and quarter turns, as PIL's Image.transpose methods: FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM,
ROTATE_180, TRANSPOSE, ROTATE_90 (counter-clockwise), ROTATE_270 and TRANSVERSE."""


class Field(NamedTuple):
    """The fitted field of view in pixel coordinates (continuous: pixel k spans [k, k + 1))."""

    cx: float
    cy: float
    rx: float
    ry: float


def find_field(grey: np.ndarray, counts: np.ndarray | None = None) -> Field | None:
    """Fit the outline of the bright field of view; None when there is no convincing elliptical outline.

    `counts`: the histogram of an 8-bit `grey` where the caller has it (see `WorkImage`)."""
    height, width = grey.shape
    low, high = _grey_percentiles(grey, (0.01, 0.90), counts)
    if high - low < 8:
        return None
    lit = grey > low + _EDGE_LEVEL * (high - low)
    inner = lit[1:-1, 1:-1]
    edge = inner & ~(lit[:-2, 1:-1] & lit[2:, 1:-1] & lit[1:-1, :-2] & lit[1:-1, 2:])
    ys, xs = np.divmod(np.flatnonzero(edge), width - 2)  # flatnonzero: 7x faster than nonzero on 2-D
    if len(xs) < 24:
        return None
    # edge points in continuous coordinates, centred and scaled for a stable fit; rows u^2, v^2, u, v, 1
    origin_x, origin_y, unit = width / 2, height / 2, max(width, height) / 2
    uv = np.stack([xs, ys]) * (1 / unit) + np.array([[(1.5 - origin_x) / unit], [(1.5 - origin_y) / unit]])
    terms = np.concatenate([uv * uv, uv, np.ones((1, len(xs)))])
    keep = None
    for tolerance in (0.08, 0.03, 0.015):
        kept = terms if keep is None else terms[:, keep]
        # least squares a u^2 + b v^2 + c u + d v = 1: normal equations (4 x 4, right side in the last column)
        solution = _solve_normal((kept @ kept.T).tolist())
        if solution is None:
            return None
        a, b, c, d = solution
        if a == 0 or b == 0:
            return None
        g = 1 + c * c / (4 * a) + d * d / (4 * b)
        if g / a <= 0 or g / b <= 0:
            return None
        cu, cv, ru, rv = -c / (2 * a), -d / (2 * b), math.sqrt(g / a), math.sqrt(g / b)
        # a point's normalised radius r has r^2 = (q + g - 1) / g, q = a u^2 + b v^2 + c u + d v: keeping
        # |r - 1| < tolerance is keeping q within a band (one product instead of a hypot per point)
        q_low, q_high = (1 - tolerance) ** 2 * g + 1 - g, (1 + tolerance) ** 2 * g + 1 - g
        q = np.array([a, b, c, d, -(q_low + q_high) / 2]) @ terms
        keep = np.abs(q) < (q_high - q_low) / 2
        kept_count = int(np.count_nonzero(keep))
        if kept_count < 24:
            return None
    field = Field(origin_x + cu * unit, origin_y + cv * unit, ru * unit, rv * unit)
    plausible = (
        kept_count > 0.5 * len(xs)
        and 0.5 < field.rx / field.ry < 2.0
        and min(field.rx, field.ry) > 0.15 * max(width, height)
        and 0 <= field.cx <= width
        and 0 <= field.cy <= height
    )
    return field if plausible else None


def _solve_normal(normal: list[list[float]]) -> list[float] | None:
    """Solve the 4 x 4 normal equations `normal[:4][:4] x = normal[:4][4]` by Cholesky in plain Python
    (None when not positive definite). Straight-line floats: `np.linalg.solve` cost 20-75 us a call."""
    (m00, m01, m02, m03, b0), (_, m11, m12, m13, b1), (_, _, m22, m23, b2), (_, _, _, m33, b3) = normal[:4]
    d0 = m00
    if d0 <= 0:
        return None
    l00 = math.sqrt(d0)
    l10, l20, l30 = m01 / l00, m02 / l00, m03 / l00
    d1 = m11 - l10 * l10
    if d1 <= 0:
        return None
    l11 = math.sqrt(d1)
    l21, l31 = (m12 - l20 * l10) / l11, (m13 - l30 * l10) / l11
    d2 = m22 - l20 * l20 - l21 * l21
    if d2 <= 0:
        return None
    l22 = math.sqrt(d2)
    l32 = (m23 - l30 * l20 - l31 * l21) / l22
    d3 = m33 - l30 * l30 - l31 * l31 - l32 * l32
    if d3 <= 0:
        return None
    l33 = math.sqrt(d3)
    y0 = b0 / l00
    y1 = (b1 - l10 * y0) / l11
    y2 = (b2 - l20 * y0 - l21 * y1) / l22
    y3 = (b3 - l30 * y0 - l31 * y1 - l32 * y2) / l33
    x3 = y3 / l33
    x2 = (y2 - l32 * x3) / l22
    x1 = (y1 - l21 * x2 - l31 * x3) / l11
    x0 = (y0 - l10 * x1 - l20 * x2 - l30 * x3) / l00
    return [x0, x1, x2, x3]


def _grey_percentiles(grey: np.ndarray, shares: tuple[float, ...], counts: np.ndarray | None = None) -> list[int]:
    """Grey levels below which these shares of the pixels lie, from a histogram (a sort costs 10x more)."""
    if grey.dtype != np.uint8:
        return [int(v) for v in np.percentile(grey, [share * 100 for share in shares])]
    cumulative = np.cumsum(np.bincount(grey.ravel(), minlength=256) if counts is None else counts)
    return np.searchsorted(cumulative, np.array(shares) * (grey.size - 1), side="right").tolist()


def _canonical(grey: Image.Image, field: Field | None, side: int) -> np.ndarray:
    """The field resampled to side x side (inner FIELD_KEEP of its radius), outside filled with its mean."""
    if field is None:
        return np.array(grey.resize((side, side), _CANVAS_FILTER), dtype=np.float32)
    rx, ry = field.rx * FIELD_KEEP, field.ry * FIELD_KEEP
    box = (field.cx - rx, field.cy - ry, field.cx + rx, field.cy + ry)
    margin = int(np.ceil(max(0.0, -box[0], -box[1], box[2] - grey.width, box[3] - grey.height))) + 1
    padded = ImageOps.expand(grey, border=margin, fill=0) if margin > 1 else grey
    shift = margin if margin > 1 else 0
    shifted = (box[0] + shift, box[1] + shift, box[2] + shift, box[3] + shift)
    pixels = np.asarray(padded.resize((side, side), _CANVAS_FILTER, box=shifted), dtype=np.float32)
    inside, weights = _disc(side)
    return np.where(inside, pixels, np.float32(pixels.ravel() @ weights))


_DISCS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _disc(side: int) -> tuple[np.ndarray, np.ndarray]:
    """The inscribed disc of a side x side canvas, and the flat weights that average a canvas over it."""
    if side not in _DISCS:
        centre = (side - 1) / 2
        yy, xx = np.mgrid[0:side, 0:side]
        inside = np.hypot(xx - centre, yy - centre) <= side / 2
        _DISCS[side] = inside, (inside / np.count_nonzero(inside)).astype(np.float32).ravel()
    return _DISCS[side]


def work_image(grey: Image.Image) -> Image.Image:
    """The grey-level image at 256 px on its longest side (returned as is when it already is)."""
    if grey.mode != "L":
        grey = grey.convert("L")
    if max(grey.size) == _WORK_SIDE:
        return grey
    scale = _WORK_SIDE / max(grey.size)
    size = (max(8, round(grey.width * scale)), max(8, round(grey.height * scale)))
    return grey.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


class WorkImage(NamedTuple):
    """The 256 px grey image that every hash and quality measure reads, with what they all need of it."""

    image: Image.Image
    pixels: np.ndarray  # its 8-bit pixels (converting a PIL image to NumPy copies it: done once)
    counts: np.ndarray  # its 256-level histogram (PIL counts in C at half the cost of `np.bincount`)


def prepare(grey: Image.Image | WorkImage) -> WorkImage:
    """Reduce a grey-level image to the 256 px work image, once for all hashes and measures."""
    if isinstance(grey, WorkImage):
        return grey
    image = work_image(grey)
    return WorkImage(image, np.asarray(image), np.array(image.histogram(), dtype=np.float64))


def field_hashes(grey: Image.Image | WorkImage) -> tuple[str, str]:
    """(near_hash, detail_hash) of a grey-level image, each 256 bits as 64 hex digits.

    The image is first brought to 256 px on its longest side, so that a full decode and a reduced (draft)
    decode of the same file, or a large and a small copy, hash alike."""
    near, detail = band_coefficients(grey)
    return _bits_hex(near), _bits_hex(detail)


def band_coefficients(grey: Image.Image | WorkImage) -> tuple[np.ndarray, np.ndarray]:
    """The 16 x 16 DCT coefficients whose signs are the bits of `near_hash` and of `detail_hash`."""
    work = prepare(grey)
    canvas = _canonical(work.image, find_field(work.pixels, work.counts), DETAIL_CANVAS)
    both = _BANDS @ canvas @ _BANDS.T  # near band at top left, detail band at bottom right
    return both[:HASH_SIDE, :HASH_SIDE], both[HASH_SIDE:, HASH_SIDE:]


def _dct_basis(side: int) -> np.ndarray:
    """Orthonormal DCT-II basis: row k holds frequency k."""
    k, n = np.mgrid[0:side, 0:side]
    basis = np.sqrt(2.0 / side) * np.cos(np.pi * (2 * n + 1) * k / (2 * side))
    basis[0] /= np.sqrt(2.0)
    return basis


def _band_rows() -> np.ndarray:
    """Rows giving, from the 128 px canvas, the 16 lowest DCT frequencies of the canvas averaged to 64 px
    (over 2 x 2 blocks) and then frequencies 16-31 of the canvas itself: one pair of products for both hashes."""
    step = DETAIL_CANVAS // NEAR_CANVAS
    average = np.kron(np.eye(NEAR_CANVAS), np.full((1, step), 1.0 / step))  # (64, 128)
    near = _dct_basis(NEAR_CANVAS)[:HASH_SIDE] @ average
    detail = _dct_basis(DETAIL_CANVAS)[HASH_SIDE : 2 * HASH_SIDE]
    return np.vstack([near, detail]).astype(np.float32)


_BANDS = _band_rows()  # float32: the products are 2x faster, and a sign flipped by rounding is a sign near zero


def _bits_hex(block: np.ndarray) -> str:
    return np.packbits(block.ravel() > 0).tobytes().hex()


def _orientation_maps() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per orientation: (source bit of each bit, bits to invert) for a 16 x 16 coefficient block.

    A DCT coefficient (v, u) of a left-right mirrored image is (-1)^u times the original, of an upside-down
    one (-1)^v times; transposing the image transposes the block. Bands starting at an even frequency
    (0 and 16) have the same parities, so one map serves both hashes.
    """
    v, u = np.mgrid[0:HASH_SIDE, 0:HASH_SIDE]
    index = v * HASH_SIDE + u
    odd_u, odd_v = (u % 2 == 1), (v % 2 == 1)
    plain, transposed = index.ravel(), index.T.ravel()
    none = np.zeros(HASH_SIDE * HASH_SIDE, dtype=bool)
    return {
        "identity": (plain, none),
        "mirror": (plain, odd_u.ravel()),
        "flip": (plain, odd_v.ravel()),
        "rot180": (plain, (odd_u ^ odd_v).ravel()),
        "transpose": (transposed, none),
        "rot90": (transposed, odd_v.ravel()),
        "rot270": (transposed, odd_u.ravel()),
        "transverse": (transposed, (odd_u ^ odd_v).ravel()),
    }


_MAPS = _orientation_maps()


def orient(hashes: np.ndarray, orientation: str) -> np.ndarray:
    """The hashes of flipped or rotated copies, from (n, 32) uint8 hashes (see `hamming.hex_to_bytes`)."""
    source, invert = _MAPS[orientation]
    bits = np.unpackbits(hashes, axis=1)
    return np.packbits(bits[:, source] ^ invert.astype(np.uint8), axis=1)


def orientation_map(orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """(source, invert) of an orientation on the 256 bits of a hash: bit k of the turned hash is bit source[k] of
    the hash, inverted where invert[k] (what `orient` does, for searches that work on bit positions)."""
    source, invert = _MAPS[orientation]
    return source.copy(), invert.copy()
