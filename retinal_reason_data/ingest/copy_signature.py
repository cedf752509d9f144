"""Copy signature: 128 bits that a photograph keeps when it is cropped into its field, turned by any angle,
mirrored, padded to a square, cropped to its field's bounding box, resampled or re-exposed.

Two halves of 64 bits each describe the photograph: the *whole* half from rings out to 0.70 of the field's radius,
the *inner* half from the rings out to 0.48 only. A crop into the field, or a camera frame that cuts it, takes
arcs off the outer rings and moves the whole half (up to 9 % of the samples lost moved 128 bits by 15-27),
while the inner rings stay pictured all around and keep the inner half; re-framing and turns leave the outer
rings, and the whole half tells more photographs apart. Two images are copy candidates when *either* half is
within the threshold (`curation/copy_candidates.py`: `copy_candidates`, `closer_half_distance`).

Computed at intake from the 256 px work image (`fieldhash.WorkImage`):

1. The field is fitted from its curved rim (`field_rim.fit_rim_and_edges`), so a crop's straight edges, a
   camera mask or the corners of a turned copy do not move it; an image without a plausible rim (OCT B-scan, a
   photograph cropped inside its field) is described around the centroid of what is brighter than its median
   (an OCT scan's layers) with the frame's inscribed radius (`content_field`).
2. The blurred image (two 5 x 5 box blurs: about a Gaussian of 2 px) is sampled on RINGS circles (radii
   0.15-0.70 of the field's, normalised by each axis, so a stretched crop un-stretches) at ANGLES angles. A
   sample is "no picture" where the frame or a straight edge of the lit region (a pad's, a turned copy's
   corners, an earlier crop's: `field_rim.fit_rim_and_edges`) has cut the field, with a margin of EDGE_MARGIN
   px: a camera frame that cuts the field reads the same as the black of the same photograph padded to a
   square or turned. Values are clipped at the CLIP_SHARE quantile of the pictured samples and divided by it (a
   brighter copy saturates its brightest pixels: clipping both at the same rank keeps them alike); a sample
   with no picture takes the value of the outermost pictured sample inside it on its ray (as the frame's
   nearest edge pixel would), so that what is missing changes the harmonics as little as it can.
3. Per ring, the angular Fourier coefficients F(k), k = 1..HARMONICS: a turn by any angle multiplies F(k) by a
   phase, a mirror conjugates it. Features that neither changes: ring means, |F(k)|, and the products
   F_ring(k) conj(F_next(k)) of neighbouring and second-neighbouring rings (real part and |imaginary part|),
   which keep how structure lines up from ring to ring. The whole half's features come from all RINGS rings,
   the inner half's from the first INNER_RINGS.
4. A fixed linear projection per half (`data/copy_signature.npz`, fitted by `benchmarks/copy_signature_fit.py`
   on copies of real photographs: the directions along which copies of one photograph agree most relative to
   how photographs differ) and the sign of each of the first HALF_BITS directions relative to its median.

The bits are nearly balanced and independent across photographs, so distinct photographs lie near half the
bits apart in each half and `copy_candidates` finds copies exactly.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

from retinal_reason_data.ingest.field_rim import Edge, fit_rim_and_edges
from retinal_reason_data.ingest.fieldhash import Field, WorkImage, prepare

SIGNATURE_BITS = 128
HALF_BITS = SIGNATURE_BITS // 2  # the whole half (bits 0-63) and the inner half (bits 64-127)
RINGS, ANGLES, HARMONICS = 16, 128, 12
INNER_RINGS = 10  # the inner half's rings: 0.15-0.48 of the radius, pictured all around after crops of 10 % a side
INNER_RADIUS, OUTER_RADIUS = 0.15, 0.70  # shares of the field's radius: crops of 10 % a side keep 0.8 of it
CLIP_SHARE = 0.8
EDGE_MARGIN = 4.0  # px: samples this close to the frame or a straight edge have no picture (the blur mixes them)
MIN_PICTURED = 0.25  # below this share of pictured samples every sample counts (nothing sensible is left)
PROJECTION_FILE = "copy_signature.npz"

_RADII = np.linspace(INNER_RADIUS, OUTER_RADIUS, RINGS)
_ANGLES = np.arange(ANGLES) * (2 * np.pi / ANGLES)
_UNIT_X = (_RADII[:, None] * np.cos(_ANGLES)[None, :]).astype(np.float32)
_UNIT_Y = (_RADII[:, None] * np.sin(_ANGLES)[None, :]).astype(np.float32)


class Projection(NamedTuple):
    """Features to bits: bit b is set when features @ weights[:, b] > offsets[b] (the weights are block-diagonal:
    the whole half's features give bits 0-63, the inner half's bits 64-127)."""

    weights: np.ndarray  # (features, bits) float32
    offsets: np.ndarray  # (bits,) float32
    about: dict[str, object]  # how it was fitted


def copy_signature(grey: WorkImage | Image.Image) -> str:
    """The 128-bit copy signature of a grey-level image (or its 256 px work image) as 32 hex digits."""
    work = prepare(grey)
    features = signature_features(work)
    projection = load_projection()
    bits = features.astype(np.float32) @ projection.weights > projection.offsets
    return np.packbits(bits).tobytes().hex()


def signature_features(work: WorkImage) -> np.ndarray:
    """The rotation- and mirror-invariant features of the work image, before projection (float64): the whole
    half's, then the inner half's."""
    return half_features(polar_samples(*signature_geometry(work)))


def half_features(samples: np.ndarray) -> np.ndarray:
    """The invariant features of all the rings' samples followed by those of the first INNER_RINGS rings' (one
    Fourier transform for both)."""
    spectrum = _angular_spectrum(samples)
    return np.concatenate([_spectral_features(spectrum), _spectral_features(spectrum[:INNER_RINGS])])


def signature_geometry(work: WorkImage) -> tuple[np.ndarray, Field, list[Edge]]:
    """The image the rings sample (the work image under two 5 x 5 box blurs, close to a Gaussian of 2 px), the
    field they are drawn in (fitted from the rim on one 5 x 5 box blur, else `content_field`) and the straight
    edges of the lit region (none without a rim: an OCT scan's layers are no edge of a field)."""
    boxed = work.image.filter(ImageFilter.BoxBlur(2))
    field, edges = fit_rim_and_edges(np.asarray(boxed), np.array(boxed.histogram()))
    blurred = np.asarray(boxed.filter(ImageFilter.BoxBlur(2)))  # twice: a 9-tap kernel of sigma 2 px
    if field is None:
        return blurred, content_field(blurred), []
    return blurred, field, edges


def content_field(blurred: np.ndarray) -> Field:
    """The geometry of an image without a rim: the inscribed circle's radius around the centroid of what is
    brighter than the median (an OCT scan's layers), which a re-framing by a few pixels hardly moves."""
    height, width = blurred.shape
    pixels = blurred.astype(np.float32)
    weights = np.maximum(pixels - np.median(pixels), 0.0)
    total = float(weights.sum())
    if total <= 0:
        return frame_field(blurred.shape)
    cx = float(weights.sum(axis=0) @ (np.arange(width) + 0.5)) / total
    cy = float(weights.sum(axis=1) @ (np.arange(height) + 0.5)) / total
    radius = min(width, height) / 2
    return Field(cx, cy, radius, radius)


def frame_field(shape: tuple[int, ...]) -> Field:
    """The frame's inscribed circle: the geometry used when no rim is found."""
    height, width = shape[:2]
    return Field(width / 2, height / 2, min(width, height) / 2, min(width, height) / 2)


def polar_samples(blurred: np.ndarray, field: Field, edges: Sequence[Edge] = ()) -> np.ndarray:
    """(RINGS, ANGLES) bilinear samples of the image on circles around the field's centre, clipped at the
    CLIP_SHARE quantile of the pictured ones and divided by it; samples with no picture (beyond the frame or a
    straight edge, see module) take the outermost pictured value inward on their ray."""
    height, width = blurred.shape
    x = field.cx + field.rx * _UNIT_X
    y = field.cy + field.ry * _UNIT_Y
    samples = _bilinear(blurred, x, y)
    pictured = pictured_samples(x, y, (height, width), field, edges)
    ceiling = max(float(np.quantile(samples[pictured], CLIP_SHARE)), 1e-3)
    samples = np.minimum(samples, ceiling) / ceiling
    ring = np.arange(RINGS)[:, None]
    inward = np.maximum.accumulate(np.where(pictured, ring, -1), axis=0)  # the outermost pictured ring so far
    filled = samples[np.maximum(inward, 0), np.arange(ANGLES)[None, :]]
    return np.where(inward >= 0, filled, samples[pictured].mean())


def pictured_samples(
    x: np.ndarray, y: np.ndarray, shape: tuple[int, int], field: Field, edges: Sequence[Edge]
) -> np.ndarray:
    """Which sample points show the photograph: inside the frame and on the field's side of every straight edge,
    EDGE_MARGIN px clear of both; all of them when fewer than MIN_PICTURED would be."""
    height, width = shape
    margin = EDGE_MARGIN
    pictured = (x >= margin) & (x <= width - margin) & (y >= margin) & (y <= height - margin)
    for edge in edges:
        toward_field = (field.cx - edge.x) * edge.nx + (field.cy - edge.y) * edge.ny
        side = -1.0 if toward_field > 0 else 1.0  # the normal turned away from the field
        pictured &= ((x - edge.x) * edge.nx + (y - edge.y) * edge.ny) * side < -margin
    if pictured.sum() < MIN_PICTURED * pictured.size:
        pictured[:] = True
    return pictured


def _bilinear(pixels: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples at continuous coordinates; points outside the frame take the nearest edge pixel."""
    height, width = pixels.shape
    x = np.clip(x - 0.5, 0, width - 1.001)
    y = np.clip(y - 0.5, 0, height - 1.001)
    left, top = x.astype(np.intp), y.astype(np.intp)
    fx, fy = x - left, y - top
    pixels = pixels.astype(np.float32)
    upper = pixels[top, left] * (1 - fx) + pixels[top, left + 1] * fx
    lower = pixels[top + 1, left] * (1 - fx) + pixels[top + 1, left + 1] * fx
    return upper * (1 - fy) + lower * fy


def invariant_features(samples: np.ndarray) -> np.ndarray:
    """Ring means, angular Fourier magnitudes and ring-to-ring products of (rings, ANGLES) polar samples (see
    module): feature_count(rings) values."""
    return _spectral_features(_angular_spectrum(samples))


def _angular_spectrum(samples: np.ndarray) -> np.ndarray:
    return np.fft.rfft(samples.astype(np.float64), axis=1) / ANGLES


def _spectral_features(spectrum: np.ndarray) -> np.ndarray:
    harmonics = spectrum[:, 1 : HARMONICS + 1]
    parts = [spectrum[:, 0].real, np.abs(harmonics).ravel()]
    for step in (1, 2):
        product = harmonics[:-step] * harmonics[step:].conj()
        product /= np.sqrt(np.abs(product) + 1e-6)  # back to the scale of one coefficient
        parts += [product.real.ravel(), np.abs(product.imag).ravel()]
    return np.concatenate(parts)


def feature_count(rings: int) -> int:
    """How many invariant features `rings` rings give."""
    return rings + rings * HARMONICS + 2 * (rings - 1) * HARMONICS + 2 * (rings - 2) * HARMONICS


WHOLE_FEATURES = feature_count(RINGS)
FEATURE_COUNT = WHOLE_FEATURES + feature_count(INNER_RINGS)


@functools.cache
def load_projection() -> Projection:
    """The fitted projection shipped with the package (`data/copy_signature.npz`)."""
    with resources.files("retinal_reason_data").joinpath("data", PROJECTION_FILE).open("rb") as handle:
        stored = np.load(handle, allow_pickle=False)
        weights = stored["weights"].astype(np.float32)
        offsets = stored["offsets"].astype(np.float32)
        about = json.loads(str(stored["about"]))
    if weights.shape != (FEATURE_COUNT, SIGNATURE_BITS) or offsets.shape != (SIGNATURE_BITS,):
        raise ValueError(
            f"{PROJECTION_FILE}: weights {weights.shape} and offsets {offsets.shape} do not fit "
            f"{FEATURE_COUNT} features and {SIGNATURE_BITS} bits; refit with benchmarks/copy_signature_fit.py"
        )
    return Projection(weights, offsets, about)
