"""Synthetic ("phantom") ophthalmic images: colour fundus photographs, OCT B-scans and FFA frames.

These are procedurally drawn phantoms, NOT real patient data and not derived from any. They only look
enough like their modality to exercise a pipeline in demos and tests. Everything is deterministic: the
same arguments give identical pixels (all randomness comes from ``numpy.random.default_rng`` seeded with
the arguments; no global random state is touched).

Anatomy (disc position, vessel tree, OCT retinal shape) depends only on ``(patient_seed, eye)``; the two
eyes of one patient are roughly mirror images with different details. ``image_seed`` varies acquisition
details (illumination, exposure, a tiny shift, noise) and where lesions fall. Findings are string codes
(``dr.moderate``, ``oct.cnv``, ``ffa.leakage``...); unknown codes are ignored.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["ffa_frame", "fundus_photo", "oct_bscan"]

_FR = 0.47  # radius of the circular field of view, as a fraction of the image side
_STEP = 0.006  # vessel polyline step (fraction of the image side)
_MIN_W = 0.0016  # thinnest vessel width that still branches
_FAZ = 0.032  # vessels stop this close to the fovea
_KERNEL = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / math.sqrt(19.0)
_TAU = 2.0 * math.pi

_DR_GRADES = {"dr.none": 0, "dr.mild": 1, "dr.moderate": 2, "dr.severe": 3, "dr.proliferative": 4}
_ALIASES = {
    "lesion.hemorrhage": "lesion.haemorrhage",
    "lesion.neovascularization": "lesion.neovascularisation",
    "ffa.neovascularization": "ffa.neovascularisation",
    "tumor.choroidal_melanoma": "tumour.choroidal_melanoma",
}


# ----------------------------------------------------------------------------------------------------
# small utilities


def _rng(*parts: int | str) -> np.random.Generator:
    """A generator seeded from ints and strings (strings via CRC32, so independent of PYTHONHASHSEED)."""
    words = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) % (1 << 64) for p in parts]
    return np.random.default_rng(np.random.SeedSequence(words))


def _eye_sign(eye: str) -> int:
    """+1 for a right eye, -1 for a left eye."""
    key = str(eye).strip().lower().replace("_", " ")
    if key in {"od", "r", "re", "right", "right eye"}:
        return 1
    if key in {"os", "l", "le", "left", "left eye"}:
        return -1
    raise ValueError(f"eye must be 'right'/'OD' or 'left'/'OS', got {eye!r}")


def _codes(findings: Iterable[str] | str) -> frozenset[str]:
    """Normalised finding codes (used for membership tests only, never iterated for drawing order)."""
    if isinstance(findings, str):
        findings = (findings,)
    out = set()
    for item in findings:
        code = str(item).strip().lower()
        out.add(_ALIASES.get(code, code))
    return frozenset(out)


def _dr_grade(codes: frozenset[str]) -> int:
    return max((_DR_GRADES[c] for c in codes if c in _DR_GRADES), default=0)


def _check_side(value: int, name: str = "size") -> int:
    side = int(value)
    if side < 32:
        raise ValueError(f"{name} must be at least 32 pixels, got {value!r}")
    return side


def _sstep(x: float) -> float:
    """Scalar smoothstep on [0, 1]."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth value noise (about unit amplitude) by bicubic upsampling of a small random grid."""
    h, w = shape
    gy, gx = max(1, cells[0]), max(1, cells[1])
    small = rng.standard_normal((gy + 3, gx + 3)).astype(np.float32)
    big = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC, box=(1, 1, gx + 1, gy + 1))
    return np.asarray(big, dtype=np.float32)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = np.arange(size, dtype=np.float32) + 0.5
    return axis[:, None], axis[None, :]


def _window(
    cx: float, cy: float, radius: float, h: int, w: int
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Slices of a square window around (cx, cy) clipped to the image, with local pixel-centre grids."""
    x0, x1 = max(0, int(cx - radius)), min(w, int(cx + radius) + 2)
    y0, y1 = max(0, int(cy - radius)), min(h, int(cy + radius) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    ly = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    lx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    return (slice(y0, y1), slice(x0, x1)), ly, lx


def _mask(size: int | tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    dims = (size, size) if isinstance(size, int) else size
    img = Image.new("L", dims, 0)
    return img, ImageDraw.Draw(img)


def _as_alpha(img: Image.Image, blur: float = 0.0) -> np.ndarray:
    if blur > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)


def _region(img: Image.Image, blur: float = 0.0) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """(slices, alpha) covering only the drawn part of a mask (plus the blur margin), or None if empty."""
    box = img.getbbox()
    if box is None:
        return None
    pad = int(3.0 * blur) + 2
    w, h = img.size
    x0, y0, x1, y1 = max(0, box[0] - pad), max(0, box[1] - pad), min(w, box[2] + pad), min(h, box[3] + pad)
    return (slice(y0, y1), slice(x0, x1)), _as_alpha(img.crop((x0, y0, x1, y1)), blur)


def _paint(
    rgb: np.ndarray,
    img: Image.Image,
    blur: float,
    colour: tuple[float, float, float],
    strength: float = 1.0,
    multiply: bool = False,
) -> None:
    """Composite a drawn mask onto a planar (3, H, W) image: mix towards `colour`, or multiply by it."""
    reg = _region(img, blur)
    if reg is None:
        return
    (sy, sx), alpha = reg
    if strength != 1.0:
        alpha *= strength
    if multiply:
        _darken(rgb[:, sy, sx], alpha, colour)
    else:
        _tint(rgb[:, sy, sx], alpha, colour)


def _poly(
    cx: float,
    cy: float,
    a: float,
    b: float,
    angle: float = 0.0,
    rng: np.random.Generator | None = None,
    jitter: float = 0.0,
    n: int = 14,
) -> list[float]:
    """A (possibly irregular) rotated ellipse as a flat polygon list for ImageDraw."""
    th = np.linspace(0.0, _TAU, n, endpoint=False)
    rad = np.ones(n)
    if rng is not None and jitter > 0:
        rad = np.clip(1.0 + jitter * np.convolve(rng.standard_normal(n + 2), [0.5, 1.0, 0.5], "valid") / 1.22, 0.4, 1.8)
    x, y = a * np.cos(th) * rad, b * np.sin(th) * rad
    ca, sa = math.cos(angle), math.sin(angle)
    pts = np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], axis=1)
    return pts.ravel().tolist()


def _dots(draw: ImageDraw.ImageDraw, pts: np.ndarray, radii: np.ndarray, fills: np.ndarray) -> None:
    for (x, y), r, f in zip(pts.tolist(), radii.tolist(), fills.tolist(), strict=True):
        r = max(r, 0.5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=int(f))


def _darken(rgb: np.ndarray, alpha: np.ndarray, ratio: tuple[float, float, float]) -> None:
    """Multiply a planar (3, h, w) image towards `ratio` (per channel) where alpha is set."""
    for c in range(3):
        k = 1.0 - ratio[c]
        if k:
            rgb[c] *= 1.0 - k * alpha


def _tint(rgb: np.ndarray, alpha: np.ndarray, colour: tuple[float, float, float]) -> None:
    """Mix a planar (3, h, w) image towards `colour` where alpha is set."""
    for c in range(3):
        rgb[c] += alpha * (colour[c] - rgb[c])


# ----------------------------------------------------------------------------------------------------
# fundus geometry: disc, fovea and the vessel tree, in canonical right-eye coordinates (fraction of the
# image side, origin at the image centre, y downwards, +x nasal)


class _Vessel(NamedTuple):
    pts: np.ndarray  # (n, 2)
    width: np.ndarray  # (n,)
    vein: bool
    gen: int
    trunk: int


class _Geometry(NamedTuple):
    fovea: np.ndarray
    disc: np.ndarray
    dd: float  # disc diameter
    disc_aspect: float
    cdr: float
    vessels: tuple[_Vessel, ...]
    pts: np.ndarray  # every vessel point, (N, 2)
    heading: np.ndarray  # local direction at each point (radians)
    vein: np.ndarray  # (N,) bool
    gen: np.ndarray  # (N,) int
    trunk: np.ndarray  # (N,) int


def _walk(
    rng: np.random.Generator, start: np.ndarray, heading: float, length: float, sigma: float, curv: float
) -> np.ndarray:
    """A smooth random-walk polyline."""
    n = max(3, int(length / _STEP) + 1)
    noise = np.convolve(rng.standard_normal(n + 3), _KERNEL, mode="valid")[: n - 1]
    th = heading + np.cumsum(sigma * noise + curv * _STEP)
    steps = _STEP * np.stack([np.cos(th), np.sin(th)], axis=1)
    return np.vstack([start[None, :], start + np.cumsum(steps, axis=0)])


def _arcade(
    rng: np.random.Generator, fovea: np.ndarray, start: np.ndarray, up: bool, r_arc: float, grow: float
) -> np.ndarray:
    """A temporal arcade: leaves the disc and curves around the macula, drifting outwards."""
    v = start - fovea
    r0, th0 = math.hypot(v[0], v[1]), math.atan2(v[1], v[0])
    a_max = 3.9
    a = np.linspace(0.0, a_max, int(a_max * 0.3 / _STEP))
    ramp = _smooth(a / 0.9)
    r = r0 + (r_arc - r0) * ramp + grow * np.clip(a - 1.45, 0.0, None) ** 1.35
    for lo, hi, amp in ((2.0, 5.0, 0.010), (6.0, 12.0, 0.005), (15.0, 30.0, 0.0018)):
        r += amp * rng.uniform(0.5, 1.0) * np.sin(rng.uniform(lo, hi) * a + rng.uniform(0, _TAU)) * ramp
    th = th0 - a if up else th0 + a
    return fovea + r[:, None] * np.stack([np.cos(th), np.sin(th)], axis=1)


def _clip_path(pts: np.ndarray, fovea: np.ndarray) -> np.ndarray:
    """Cut a path where it leaves the field or reaches the foveal avascular zone."""
    x, y = pts[:, 0], pts[:, 1]
    fx, fy = fovea
    bad = (x * x + y * y > (_FR + 0.006) ** 2) | ((x - fx) ** 2 + (y - fy) ** 2 < _FAZ * _FAZ)
    bad[0] = False
    if bad.any():
        return pts[: int(np.argmax(bad))]
    return pts


def _grow(
    rng: np.random.Generator,
    out: list[_Vessel],
    pts: np.ndarray,
    w0: float,
    nominal: float,
    vein: bool,
    gen: int,
    trunk: int,
    ctx: dict,
) -> None:
    """Add a vessel (and, recursively, its branches) to `out`."""
    fovea, disc, dd = ctx["fovea"], ctx["disc"], ctx["dd"]
    pts = _clip_path(pts, fovea)
    if len(pts) < 3:
        return
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    width = w0 * (1.0 - 0.62 * np.clip(s / nominal, 0.0, 1.0))
    if gen < 3:
        spacing = 0.035 + 11.0 * w0
        k = int(s[-1] / 0.012) // 2 + 2
        pos = (
            (0.55 * dd if gen == 0 else 0.012)
            + rng.uniform(0.2, 1.0) * spacing
            + np.concatenate([[0.0], np.cumsum(rng.exponential(spacing, k - 1) + 0.012)])
        )
        pos = pos[pos < s[-1] - 0.02]
        m = len(pos)
        idx = np.minimum(np.searchsorted(s, pos), len(pts) - 2).tolist()
        draws = rng.random((4, m))
        turn = (np.where(draws[0] < 0.5, -1.0, 1.0) * (0.45 + 0.7 * draws[1])).tolist()
        wfac = (0.5 + 0.3 * draws[2]).tolist()
        lfac = (50.0 + 40.0 * draws[3]).tolist()
        curv = (1.6 * rng.standard_normal(m)).tolist()
        plist = pts.tolist()
        fx, fy = float(fovea[0]), float(fovea[1])
        dx, dy = float(disc[0]), float(disc[1])
        for j in range(m):
            i = idx[j]
            px, py = plist[i]
            if math.hypot(px - dx, py - dy) < 0.6 * dd:
                continue
            qx, qy = plist[max(i - 1, 0)]
            rx, ry = plist[i + 1]
            angle = math.atan2(ry - qy, rx - qx) + turn[j]
            tx, ty = fx - px, fy - py
            inward = math.cos(angle) * tx + math.sin(angle) * ty > 0.0 and math.hypot(tx, ty) < 0.33
            cw = float(width[i]) * wfac[j] * (0.75 if inward else 1.0)
            if cw < _MIN_W:
                continue
            length = cw * lfac[j] + 0.03
            child = _walk(rng, pts[i], angle, length, sigma=0.055, curv=curv[j])
            width[i:] *= 0.93
            _grow(rng, out, child, cw, length, vein, gen + 1, trunk, ctx)
    out.append(_Vessel(pts, np.maximum(width, 0.0011), vein, gen, trunk))


@lru_cache(maxsize=512)
def _geometry(patient_seed: int, sign: int) -> _Geometry:
    """Disc, fovea and vessel tree of one eye (canonical right-eye frame; the caller mirrors left eyes)."""
    prng = _rng("fundus-patient", patient_seed)  # shared by both eyes: overall layout
    erng = _rng("fundus-eye", patient_seed, sign)  # this eye's details
    dd = 0.122 * float(np.clip(1.0 + 0.06 * prng.standard_normal(), 0.85, 1.15))
    fovea = np.array([-0.055 + 0.012 * prng.standard_normal(), 0.02 + 0.01 * prng.standard_normal()])
    fovea += 0.004 * erng.standard_normal(2)
    dist = 2.5 * dd * float(np.clip(1.0 + 0.05 * prng.standard_normal(), 0.9, 1.1))
    ang = -0.07 + 0.04 * prng.standard_normal() + 0.02 * erng.standard_normal()
    disc = fovea + dist * np.array([math.cos(ang), math.sin(ang)])
    aspect = float(np.clip(1.09 + 0.04 * prng.standard_normal(), 1.0, 1.2))
    cdr = float(np.clip(0.32 + 0.07 * prng.standard_normal() + 0.02 * erng.standard_normal(), 0.12, 0.5))
    r_arc = 0.235 + 0.015 * prng.standard_normal()
    grow = 0.13 + 0.02 * prng.standard_normal()
    ctx = {"fovea": fovea, "disc": disc, "dd": dd}
    vessels: list[_Vessel] = []
    trunk = 0
    for up in (True, False):  # temporal arcades: artery then vein
        for vein in (False, True):
            start = disc + dd * np.array([0.0, (-0.12 if up else 0.12) + 0.05 * erng.standard_normal()])
            start[0] += dd * (0.1 if vein else -0.1)
            r = r_arc + (0.012 if vein else -0.004) + 0.01 * erng.standard_normal()
            pts = _arcade(erng, fovea, start, up, r, grow * (1.0 + 0.12 * erng.standard_normal()))
            w0 = (0.0098 if vein else 0.0074) * (1.0 + 0.06 * erng.standard_normal())
            _grow(erng, vessels, pts, w0, 0.95, vein, 0, trunk, ctx)
            trunk += 1
    for up in (True, False):  # nasal vessels
        for vein in (False, True):
            heading = (-1.0 if up else 1.0) * erng.uniform(0.7, 1.25)
            start = disc + dd * np.array([0.15, (-0.1 if up else 0.1)])
            bend = -math.copysign(erng.uniform(0.4, 1.4), heading)  # curving back towards the horizontal
            pts = _walk(erng, start, heading, 0.7, sigma=0.05, curv=bend)
            w0 = (0.0078 if vein else 0.0060) * (1.0 + 0.06 * erng.standard_normal())
            _grow(erng, vessels, pts, w0, 0.7, vein, 0, trunk, ctx)
            trunk += 1
    for _ in range(int(erng.integers(1, 3))):  # small nasal vessels
        heading = erng.normal(0.0, 0.3)
        start = disc + np.array([0.3 * dd, 0.0])
        pts = _walk(erng, start, heading, 0.45, sigma=0.06, curv=erng.normal(0.0, 1.0))
        _grow(erng, vessels, pts, 0.0036 * erng.uniform(0.8, 1.2), 0.45, bool(erng.random() < 0.5), 1, trunk, ctx)
        trunk += 1
    to_f = math.atan2(fovea[1] - disc[1], fovea[0] - disc[0])
    for k in range(int(erng.integers(2, 4))):  # small papillomacular vessels
        side = -1.0 if k % 2 == 0 else 1.0
        heading = to_f + side * erng.uniform(0.25, 0.6)
        start = disc + 0.35 * dd * np.array([math.cos(heading), math.sin(heading)])
        pts = _walk(erng, start, heading, 0.28, sigma=0.05, curv=side * erng.uniform(0.5, 2.5))
        _grow(erng, vessels, pts, 0.0030 * erng.uniform(0.8, 1.2), 0.3, bool(k % 2), 1, trunk, ctx)
        trunk += 1

    lengths = [len(v.pts) for v in vessels]
    allp = np.vstack([v.pts for v in vessels])
    ends = np.cumsum(lengths) - 1
    d = np.empty_like(allp)
    d[:-1] = allp[1:] - allp[:-1]
    d[ends] = allp[ends] - allp[ends - 1]  # last point of each vessel: backward difference
    per_point = [np.repeat([getattr(v, name) for v in vessels], lengths) for name in ("vein", "gen", "trunk")]
    heading = np.arctan2(d[:, 1], d[:, 0])
    geo = _Geometry(fovea, disc, dd, aspect, cdr, tuple(vessels), allp, heading, *per_point)
    for arr in (geo.fovea, geo.disc, geo.pts, geo.heading, geo.vein, geo.gen, geo.trunk):
        arr.setflags(write=False)
    for v in geo.vessels:
        v.pts.setflags(write=False)
        v.width.setflags(write=False)
    return geo


# ----------------------------------------------------------------------------------------------------
# acquisition frame: canonical retina coordinates -> image pixels


class _Frame(NamedTuple):
    size: int
    m: np.ndarray  # 2x2, includes the mirror for left eyes and the image scale
    t: np.ndarray  # translation (pixels)
    sign: int
    gain: float
    tint: np.ndarray
    illum: tuple[float, float]  # illumination centre offset (pixels)

    def px(self, pts: np.ndarray) -> np.ndarray:
        """Canonical points (n, 2) -> pixel coordinates (n, 2)."""
        return np.asarray(pts, dtype=np.float64) @ self.m.T + self.t

    def pt(self, p: np.ndarray) -> tuple[float, float]:
        """One canonical point -> pixel coordinates as Python floats (keeps float32 maths float32)."""
        x, y = self.px(p).tolist()
        return x, y

    def angle(self, heading: np.ndarray | float) -> np.ndarray:
        """Canonical heading (radians) -> image heading."""
        h = np.asarray(heading, dtype=np.float64)
        d = np.stack([np.cos(h), np.sin(h)], axis=-1) @ self.m.T
        return np.arctan2(d[..., 1], d[..., 0])


def _frame(size: int, sign: int, patient_seed: int, image_seed: int) -> _Frame:
    rng = _rng("acquisition", patient_seed, sign, image_seed)
    rot = rng.normal(0.0, 0.012)
    shift = rng.normal(0.0, 0.006, 2)
    c, s = math.cos(rot), math.sin(rot)
    m = size * np.array([[c, -s], [s, c]]) @ np.diag([float(sign), 1.0])
    t = size * (0.5 + shift)
    gain = float(np.clip(1.0 + rng.normal(0.0, 0.045), 0.88, 1.12))
    tint = (1.0 + rng.normal(0.0, 0.02, 3)).astype(np.float32)
    ix, iy = (rng.normal(0.0, 0.02, 2) * size).tolist()
    return _Frame(size, m, t, sign, gain, tint, (ix, iy))


# ----------------------------------------------------------------------------------------------------
# lesion sites (canonical coordinates), shared by the fundus and FFA renderers so they agree


def _in_field(geo: _Geometry, pts: np.ndarray, margin: float = 0.03) -> np.ndarray:
    r = np.hypot(pts[:, 0], pts[:, 1])
    dd = np.hypot(pts[:, 0] - geo.disc[0], pts[:, 1] - geo.disc[1])
    return (r < _FR - margin) & (dd > 0.75 * geo.dd)


def _around(rng: np.random.Generator, centre: np.ndarray, n: int, rmin: float, rmax: float) -> np.ndarray:
    """n points spread (stratified in angle) in an annulus."""
    ang = _TAU * (rng.permutation(n) + rng.random(n)) / max(n, 1)
    r = np.sqrt(rng.uniform(rmin * rmin, rmax * rmax, n))
    return centre + np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)


def _sites_posterior(
    geo: _Geometry, rng: np.random.Generator, n: int, rmin: float = 0.025, rmax: float = 0.24, pool: int = 90
) -> np.ndarray:
    cand = _around(rng, geo.fovea, pool, rmin, rmax)
    return cand[_in_field(geo, cand)][:n]


def _sites_everywhere(geo: _Geometry, rng: np.random.Generator, n: int, pool: int = 120) -> np.ndarray:
    centre = 0.5 * (geo.fovea + geo.disc)
    cand = _around(rng, centre, pool, 0.06, 0.42)
    return cand[_in_field(geo, cand)][:n]


def _sites_vessels(
    geo: _Geometry, rng: np.random.Generator, n: int, sel: np.ndarray, offset: float, pool: int = 120
) -> tuple[np.ndarray, np.ndarray]:
    """Points beside vessels (selected by the boolean `sel` over all vessel points) with local headings."""
    idx = np.flatnonzero(sel)
    if idx.size == 0:
        return np.zeros((0, 2)), np.zeros(0)
    pick = idx[rng.integers(0, idx.size, pool)]
    head = geo.heading[pick]
    off = rng.uniform(-offset, offset, pool)
    pts = geo.pts[pick] + off[:, None] * np.stack([-np.sin(head), np.cos(head)], axis=1)
    keep = _in_field(geo, pts)
    return pts[keep][:n], head[keep][:n]


def _dist_disc(geo: _Geometry) -> np.ndarray:
    return np.hypot(geo.pts[:, 0] - geo.disc[0], geo.pts[:, 1] - geo.disc[1])


def _brvo_trunk(patient_seed: int, sign: int) -> int:
    return 1 if _rng("brvo", patient_seed, sign).random() < 0.6 else 3  # superotemporal / inferotemporal vein


def _tangle(rng: np.random.Generator, centre: np.ndarray, spread: float, count: int) -> list[np.ndarray]:
    """Fine, looping new vessels (canonical coordinates)."""
    out = []
    for _ in range(count):
        start = centre + rng.normal(0.0, spread * 0.4, 2)
        heading = rng.uniform(0.0, _TAU)
        n = int(rng.integers(8, 18))
        curl = 0.25 if rng.random() < 0.5 else -0.25
        th = heading + np.cumsum(rng.normal(0.0, 0.45, n) + curl)
        steps = 0.35 * _STEP * np.stack([np.cos(th), np.sin(th)], axis=1)
        pts = np.vstack([start[None, :], start + np.cumsum(steps, axis=0)])
        out.append(pts)
    return out


# ----------------------------------------------------------------------------------------------------
# vessel rendering (shared by fundus and FFA)


def _polyline(draw: ImageDraw.ImageDraw, p: np.ndarray, w: np.ndarray, fill: int = 255) -> None:
    """Draw a polyline whose width varies along it (runs of equal integer width)."""
    n = len(p)
    if n < 2:
        return
    wq = np.maximum(1, np.rint(w[:-1])).astype(np.int64)
    cuts = (np.flatnonzero(np.diff(wq)) + 1).tolist()
    starts, ends = [0, *cuts], [*cuts, n - 1]
    flat = p.ravel().tolist()
    for a, b in zip(starts, ends, strict=True):
        width = int(wq[a])
        draw.line(flat[2 * a : 2 * b + 2], fill=fill, width=width)
        if width > 2:
            r, x, y = width / 2.0, flat[2 * a], flat[2 * a + 1]
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _vessel_masks(
    geo: _Geometry,
    fr: _Frame,
    *,
    art_scale: float = 1.0,
    vein_scale: float = 1.0,
    tort: float = 0.0,
    beading: float = 0.0,
    sector: int | None = None,
    core: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Artery, vein and (artery reflex | vein core) alpha masks at image resolution (float32, 0..1)."""
    size = fr.size
    ss = 2 if size <= 1024 else 1
    big = size * ss
    art, d_art = _mask(big)
    vein, d_vein = _mask(big)
    extra, d_extra = _mask(big)
    for k, v in enumerate(geo.vessels):
        p = fr.px(v.pts) * ss
        w = v.width * (size * ss)
        if v.vein:
            w = w * vein_scale
            amp = tort
            if sector is not None and v.trunk == sector:
                w = w * 1.35
                amp = max(amp, 1.0)
            if (amp > 0 or beading > 0) and v.gen <= 1 and len(p) > 4:
                s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(v.pts, axis=0).T))])
                if amp > 0:
                    d = np.gradient(p, axis=0)
                    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1) / (np.hypot(d[:, 0], d[:, 1])[:, None] + 1e-9)
                    wave = np.sin(_TAU * s / 0.045 + 1.7 * k) * _smooth(s / 0.08)
                    p = p + nrm * (amp * 0.0045 * size * ss * wave)[:, None]
                if beading > 0:
                    w = w * (1.0 + beading * np.sin(_TAU * s / 0.04 + 0.6 * np.sin(_TAU * s / 0.11) + k) ** 6)
            _polyline(d_vein, p, w)
            if core:
                _polyline(d_extra, p, w * 0.4)
        else:
            w = w * art_scale
            _polyline(d_art, p, w)
            if not core and v.gen <= 1 and v.width[0] * size * ss > 5.0:
                _polyline(d_extra, p, w * 0.22)
    out = [_as_alpha(img.reduce(ss) if ss > 1 else img) for img in (art, vein, extra)]
    return out[0], out[1], out[2]


@lru_cache(maxsize=4)
def _texture(patient_seed: int, sign: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Choroidal texture of one eye (anatomy: independent of image_seed): a mixed multi-scale texture
    (coarse illumination-like blotches, choroidal mottling, fine grain; about +-0.06) and the mid-scale
    component alone (about unit amplitude, for tessellation and other pattern-specific effects)."""
    rng = _rng("choroid", patient_seed, sign)
    half = max(16, size // 2)  # built at half resolution, then upsampled once (smooth anyway)
    coarse = _noise(rng, (half, half), (6, 6))
    mid = _noise(rng, (half, half), (28, 28))
    fine = _noise(rng, (half, half), (80, 80))
    mixed = 0.05 * coarse + 0.032 * mid + 0.014 * fine

    def up(arr: np.ndarray) -> np.ndarray:
        img = Image.fromarray(arr.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
        out = np.asarray(img, dtype=np.float32)
        out.setflags(write=False)
        return out

    return up(mixed), up(mid)


@lru_cache(maxsize=8)
def _field(size: int) -> np.ndarray:
    """Anti-aliased circular field stop (1 inside, 0 outside)."""
    yy, xx = _grid(size)
    r = np.sqrt((xx - size / 2.0) ** 2 + (yy - size / 2.0) ** 2)
    out = np.clip((_FR * size - r) / 1.2 + 0.5, 0.0, 1.0)
    out.setflags(write=False)
    return out


def _grain(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Cheap uniform sensor noise in [-1, 1]."""
    raw = np.frombuffer(rng.bytes(shape[0] * shape[1]), dtype=np.uint8).reshape(shape)
    return raw.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


# ----------------------------------------------------------------------------------------------------
# colour fundus photograph


def fundus_photo(
    patient_seed: int, eye: str, findings: Iterable[str] = (), image_seed: int = 0, size: int = 512
) -> Image.Image:
    """Phantom colour fundus photograph (RGB, `size` x `size`, circular field on black).

    Disc position and vessel tree depend only on (patient_seed, eye); the left eye is mirrored (disc on
    the nasal side: right of centre for a right eye). `image_seed` varies illumination, exposure, a tiny
    shift and lesion placement. `findings` are codes such as ``dr.moderate``, ``amd.wet``, ``vasc.crvo``.
    """
    size = _check_side(size)
    sign = _eye_sign(eye)
    codes = _codes(findings)
    patient_seed, image_seed = int(patient_seed), int(image_seed)
    geo = _geometry(patient_seed, sign)
    fr = _frame(size, sign, patient_seed, image_seed)

    def lrng(tag: str) -> np.random.Generator:
        return _rng("fundus-lesion", tag, patient_seed, sign, image_seed)

    grade = _dr_grade(codes)
    scale = size / 512.0
    dd_px = geo.dd * size
    fx, fy = fr.pt(geo.fovea)
    yy, xx = _grid(size)
    crao, crvo, rp = "vasc.crao" in codes, "vasc.crvo" in codes, "rp" in codes
    sector = _brvo_trunk(patient_seed, sign) if "vasc.brvo" in codes else None

    # --- background: orange-red choroid with vignetting and texture
    tex, m_tex = _texture(patient_seed, sign, size)
    cx, cy = size / 2.0 + fr.illum[0], size / 2.0 + fr.illum[1]
    rr2 = ((xx - cx) ** 2 + (yy - cy) ** 2) * np.float32(1.0 / (_FR * size) ** 2)
    vign = 1.0 - 0.45 * rr2 * np.sqrt(np.sqrt(rr2))
    lum = vign * (1.0 + tex)
    if "myopia.pathologic" in codes:  # tessellation: large choroidal vessels between pigmented spaces
        ridge = np.exp(-((m_tex * 2.2) ** 2))
        lum *= 0.9 + 0.14 * ridge
    if rp:
        lum *= 1.0 + 0.05 * m_tex * _smooth((np.sqrt(rr2) - 0.4) / 0.3)
    rgb = np.empty((3, size, size), dtype=np.float32)
    rgb[0] = 0.83 * lum
    rgb[1] = 0.37 * lum * (0.78 + 0.22 * vign)
    rgb[2] = 0.14 * lum * (0.75 + 0.25 * vign)

    # --- macula and fovea
    win = _window(fx, fy, 2.0 * dd_px, size, size)
    if win is not None:
        (sy, sx), ly, lx = win
        d2 = (lx - fx) ** 2 + (ly - fy) ** 2
        reg = rgb[:, sy, sx]
        _darken(reg, np.exp(-d2 / (2 * (0.6 * dd_px) ** 2)), (0.8, 0.7, 0.66))
        _darken(reg, np.exp(-d2 / (2 * (0.15 * dd_px) ** 2)), (0.85, 0.75, 0.72))
        if not (crao or "csc" in codes or "mh.full_thickness" in codes or "amd.wet" in codes):
            _tint(reg, 0.55 * np.exp(-d2 / (2 * (0.025 * dd_px + 0.6) ** 2)), (0.95, 0.78, 0.55))
            ring = np.exp(-(((np.sqrt(d2) - 0.9 * dd_px) / (0.08 * dd_px + 0.5)) ** 2))
            _tint(reg, 0.03 * ring, (0.95, 0.7, 0.55))

    # --- choroid / RPE level findings (under the retinal vessels)
    if "myopia.pathologic" in codes:
        _ppa(rgb, geo, fr, lrng("ppa"))
    if "tumour.choroidal_melanoma" in codes:
        _melanoma(rgb, geo, fr, lrng("melanoma"), patient_seed, sign)
    if "csc" in codes:
        rng = lrng("csc")
        c = fr.pt(geo.fovea + rng.normal(0.0, 0.01, 2))
        rad = dd_px * rng.uniform(0.75, 1.0)
        win = _window(c[0], c[1], rad * 1.3, size, size)
        if win is not None:
            (sy, sx), ly, lx = win
            q = np.sqrt((lx - c[0]) ** 2 + (ly - c[1]) ** 2) / rad
            _tint(rgb[:, sy, sx], 0.4 * _smooth((1.0 - q) / 0.2 + 0.5), (0.6, 0.36, 0.22))
            _tint(rgb[:, sy, sx], 0.3 * np.exp(-(((q - 1.0) / 0.045) ** 2)), (0.92, 0.64, 0.46))
    if "lesion.drusen" in codes or "amd.dry" in codes or "amd.wet" in codes:
        soft = "amd.dry" in codes or "amd.wet" in codes
        _drusen(rgb, geo, fr, lrng("drusen"), 45 if soft else 28, soft)
    if "amd.dry" in codes:
        rng = lrng("pigment")
        pts = fr.px(_sites_posterior(geo, rng, 10, 0.005, 0.07))
        img, draw = _mask(size)
        _dots(draw, pts, rng.uniform(0.8, 2.2, len(pts)) * scale, rng.integers(120, 220, len(pts)))
        _paint(rgb, img, 0.7 * scale, (0.35, 0.3, 0.3), multiply=True)
    if "amd.wet" in codes:
        _wet_amd(rgb, geo, fr, lrng("cnv"))
    if rp:
        _bone_spicules(rgb, geo, fr, lrng("rp"))
    if crao:
        win = _window(fx, fy, 4.5 * dd_px, size, size)
        if win is not None:
            (sy, sx), ly, lx = win
            d2 = (lx - fx) ** 2 + (ly - fy) ** 2
            white = np.exp(-d2 / (2 * (1.3 * dd_px) ** 2)) * (1.0 - np.exp(-d2 / (2 * (0.2 * dd_px) ** 2)))
            white *= 1.0 + 0.08 * m_tex[sy, sx]
            _tint(rgb[:, sy, sx], np.clip(0.72 * white, 0.0, 1.0), (0.9, 0.8, 0.7))
            _tint(rgb[:, sy, sx], 0.65 * np.exp(-d2 / (2 * (0.12 * dd_px) ** 2)), (0.74, 0.1, 0.06))

    # --- optic disc
    cdr = geo.cdr
    if "glaucoma" in codes:
        cdr = float(np.clip(0.8 + 0.05 * _rng("glaucoma", patient_seed, sign).standard_normal(), 0.7, 0.92))
    _disc(rgb, geo, fr, cdr, swollen=crvo, pale=rp)

    # --- retinal vessels
    art_scale, vein_scale = 1.0, 1.0
    if crao:
        art_scale, vein_scale = 0.55, 0.85
    if rp:
        art_scale, vein_scale = 0.5, 0.7
    if crvo:
        vein_scale = 1.45
    a, v, reflex = _vessel_masks(
        geo,
        fr,
        art_scale=art_scale,
        vein_scale=vein_scale,
        tort=1.0 if crvo else 0.0,
        beading=0.3 if grade >= 3 else 0.0,
        sector=sector,
    )
    _darken(rgb, v, (0.5, 0.24, 0.32))
    _darken(rgb, a, (0.8, 0.48, 0.52))
    _tint(rgb, reflex * 0.2, (0.95, 0.62, 0.45))

    # --- intraretinal lesions
    n_ma = [0, 8, 16, 26, 26][grade]
    if "lesion.microaneurysm" in codes:
        n_ma = max(n_ma, 12)
    n_blot = [0, 0, 8, 24, 24][grade]
    n_flame = [0, 0, 3, 8, 8][grade]
    if "lesion.haemorrhage" in codes:
        n_blot, n_flame = max(n_blot, 7), max(n_flame, 3)
    n_cws = [0, 0, 0, 4, 4][grade]
    if "lesion.cotton_wool_spot" in codes:
        n_cws = max(n_cws, 3)
    if crvo:
        n_cws = max(n_cws, 4)
    if sector is not None:
        n_cws = max(n_cws, 2)
    if grade >= 2 or "lesion.hard_exudate" in codes:
        _exudates(rgb, geo, fr, lrng("exudate"), heavy=grade >= 3)
    if n_ma:
        rng = lrng("ma")
        pts = fr.px(_sites_posterior(geo, rng, n_ma))
        img, draw = _mask(size)
        _dots(draw, pts, rng.uniform(1.0, 1.7, len(pts)) * scale, rng.integers(200, 256, len(pts)))
        _paint(rgb, img, 0.45 * scale, (0.55, 0.22, 0.25), multiply=True)
    img, draw = _mask(size)
    _haemorrhages(draw, geo, fr, lrng, n_blot, n_flame, spread=grade >= 3, crvo=crvo, sector=sector)
    _paint(rgb, img, 0.7 * scale, (0.5, 0.17, 0.2), multiply=True)
    if n_cws:
        rng = lrng("cws")
        ddisc = _dist_disc(geo)
        if sector is not None:
            sel = (geo.trunk == sector) & (ddisc > 0.1) & (ddisc < 0.32)
        else:
            sel = (geo.gen == 0) & (geo.trunk < 4) & (ddisc > 0.1) & (ddisc < 0.35)
        pts, head = _sites_vessels(geo, rng, n_cws, sel, 0.02)
        img, draw = _mask(size)
        for (x, y), h in zip(fr.px(pts).tolist(), fr.angle(head).tolist(), strict=True):
            a_len = rng.uniform(0.012, 0.022) * size
            draw.polygon(
                _poly(x, y, a_len, a_len * rng.uniform(0.45, 0.75), h, rng, 0.25, 16), fill=int(rng.integers(170, 235))
            )
        _paint(rgb, img, 2.6 * scale, (0.97, 0.9, 0.8))
    if grade >= 4 or "lesion.neovascularisation" in codes:
        _neovessels(rgb, geo, fr, lrng("nv"))
    if "mh.full_thickness" in codes:
        rng = lrng("mh")
        rad = dd_px * rng.uniform(0.14, 0.2)
        win = _window(fx, fy, rad * 3.0, size, size)
        if win is not None:
            (sy, sx), ly, lx = win
            q = np.sqrt((lx - fx) ** 2 + (ly - fy) ** 2) / rad
            reg = rgb[:, sy, sx]
            _tint(reg, 0.35 * _smooth((2.2 - q) / 0.8), (0.72, 0.5, 0.4))
            _tint(reg, 0.92 * _smooth((1.0 - q) / 0.15 + 0.5), (0.68, 0.16, 0.08))
            pts = np.array([[fx, fy]]) + rng.normal(0.0, rad * 0.35, (4, 2))
            img, draw = _mask(size)
            _dots(draw, pts, np.full(4, 0.9 * scale), np.full(4, 200))
            _paint(rgb, img, 0.4 * scale, (0.95, 0.85, 0.5))

    # --- in front of the retina
    if grade >= 4:
        rng = lrng("preretinal")
        if rng.random() < 0.6:
            ddisc = _dist_disc(geo)
            pts, _ = _sites_vessels(
                geo, rng, 1, (geo.trunk < 4) & (geo.gen == 0) & (ddisc > 0.12) & (ddisc < 0.3), 0.03
            )
            if len(pts):
                x, y = fr.pt(pts[0])
                r = rng.uniform(0.04, 0.07) * size
                img, draw = _mask(size)
                draw.chord((x - r, y - r, x + r, y + r), start=-12, end=192, fill=235)
                _paint(rgb, img, 0.8 * scale, (0.4, 0.1, 0.12), multiply=True)
    if "rd.rhegmatogenous" in codes:
        _detachment(rgb, fr, lrng("rd"), np.maximum(a, v))

    # --- acquisition: exposure, colour balance, sensor noise, circular field stop
    grain = _grain(_rng("fundus-noise", patient_seed, sign, image_seed), (size, size))
    grain *= 0.012
    field = _field(size)
    bands = []
    for c in range(3):
        ch = rgb[c]
        ch += grain
        ch *= field
        ch *= float(255.0 * fr.gain * fr.tint[c])
        ch += 0.5
        np.clip(ch, 0.0, 255.0, out=ch)
        bands.append(Image.fromarray(ch.astype(np.uint8)))
    return Image.merge("RGB", bands)


def _disc(rgb: np.ndarray, geo: _Geometry, fr: _Frame, cdr: float, *, swollen: bool, pale: bool) -> None:
    size = fr.size
    dx, dy = fr.pt(geo.disc)
    rx = 0.5 * geo.dd * size * (1.12 if swollen else 1.0)
    ry = rx * geo.disc_aspect
    win = _window(dx, dy, 1.7 * ry, size, size)
    if win is None:
        return
    (sy, sx), ly, lx = win
    reg = rgb[:, sy, sx]
    ex, ey = (lx - dx) / rx, (ly - dy) / ry
    q = np.sqrt(ex * ex + ey * ey)
    if swollen:  # blurred margins, hyperaemic, cup filled in
        _tint(reg, 0.3 * np.exp(-(((q - 1.0) / 0.35) ** 2)), (0.9, 0.55, 0.42))
        _tint(reg, 0.85 * _smooth((1.0 - q) / 0.5 + 0.5), (0.95, 0.55, 0.4))
        return
    _tint(reg, 0.1 * np.exp(-(((q - 1.02) / 0.05) ** 2)), (0.95, 0.8, 0.62))
    disc = 0.95 * _smooth((1.0 - q) / 0.09 + 0.5)
    shade = (1.0 - 0.06 * fr.sign * ex) * (0.9 + 0.12 * np.sqrt(np.clip(1.0 - q * q, 0.0, 1.0)))
    rim = (0.97, 0.84, 0.62) if pale else (0.98, 0.6, 0.36)
    for c in range(3):
        reg[c] += disc * (rim[c] * shade - reg[c])
    cx, cy = fr.pt(geo.disc + np.array([-0.06 * geo.dd, -0.02 * geo.dd]))
    qc = np.sqrt(((lx - cx) / max(cdr * rx, 1.0)) ** 2 + ((ly - cy) / max(cdr * ry * 1.05, 1.0)) ** 2)
    _tint(reg, 0.95 * _smooth((1.0 - qc) / 0.5 + 0.5), (1.0, 0.9, 0.62))


def _haemorrhages(
    draw: ImageDraw.ImageDraw,
    geo: _Geometry,
    fr: _Frame,
    lrng,
    n_blot: int,
    n_flame: int,
    *,
    spread: bool,
    crvo: bool,
    sector: int | None,
) -> None:
    """Dot/blot and flame haemorrhages (shared by the fundus photo and the FFA's blocked fluorescence)."""
    scale = fr.size / 512.0
    ddisc = _dist_disc(geo)
    if n_blot or n_flame:
        rng = lrng("haem")
        blots = _sites_everywhere(geo, rng, n_blot) if spread else _sites_posterior(geo, rng, n_blot, 0.04)
        _blots(draw, fr.px(blots), rng, scale)
        sel = (geo.gen <= 2) & (ddisc > 0.08)
        if not spread:
            sel &= np.hypot(geo.pts[:, 0] - geo.fovea[0], geo.pts[:, 1] - geo.fovea[1]) < 0.28
        pts, head = _sites_vessels(geo, rng, n_flame, sel, 0.012)
        _flames(draw, fr.px(pts), fr.angle(head), rng, scale)
    if crvo:
        rng = lrng("crvo")
        pts, head = _sites_vessels(geo, rng, 55, geo.vein & (geo.gen <= 2) & (ddisc > 0.04), 0.02, pool=160)
        _flames(draw, fr.px(pts), fr.angle(head), rng, scale * 1.2)
        _blots(draw, fr.px(_sites_everywhere(geo, rng, 16)), rng, scale)
    if sector is not None:
        rng = lrng("brvo")
        sel = (geo.trunk == sector) & (ddisc > 0.13)
        pts, head = _sites_vessels(geo, rng, 40, sel, 0.035)
        _flames(draw, fr.px(pts), fr.angle(head), rng, scale * 1.2)
        pts, _ = _sites_vessels(geo, rng, 10, sel, 0.04)
        _blots(draw, fr.px(pts), rng, scale)


def _blots(draw: ImageDraw.ImageDraw, pts: np.ndarray, rng: np.random.Generator, scale: float) -> None:
    for x, y in pts.tolist():
        r = rng.uniform(2.0, 6.0) * scale
        if rng.random() < 0.35:
            r *= 0.55
        draw.polygon(
            _poly(x, y, r, r * rng.uniform(0.7, 1.0), rng.uniform(0, _TAU), rng, 0.22, 12),
            fill=int(rng.integers(190, 256)),
        )


def _flames(
    draw: ImageDraw.ImageDraw, pts: np.ndarray, angles: np.ndarray, rng: np.random.Generator, scale: float
) -> None:
    for (x, y), h in zip(pts.tolist(), angles.tolist(), strict=True):
        length = rng.uniform(5.0, 11.0) * scale
        draw.polygon(
            _poly(x, y, length, length * rng.uniform(0.25, 0.42), h + rng.normal(0.0, 0.15), rng, 0.12, 16),
            fill=int(rng.integers(170, 245)),
        )


def _exudates(rgb: np.ndarray, geo: _Geometry, fr: _Frame, rng: np.random.Generator, heavy: bool) -> None:
    """Hard exudates: a circinate ring near the macula (two when heavy) and small clusters."""
    size = fr.size
    scale = size / 512.0
    pts_all, rad_all = [], []
    for ring in range(2 if heavy else 1):
        centre = geo.fovea + rng.normal(0.0, 0.035, 2) + (0.0 if ring == 0 else 0.1) * rng.normal(0.0, 1.0, 2)
        radius = rng.uniform(0.03, 0.05)
        k = int(rng.integers(22, 36))
        ang = rng.uniform(0.0, _TAU) + rng.uniform(3.6, 5.6) * rng.random(k)
        r = radius * (1.0 + rng.normal(0.0, 0.12, k))
        pts_all.append(centre + np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1))
        rad_all.append(rng.uniform(0.8, 2.6, k) * scale)
    for c in _sites_posterior(geo, rng, 2, 0.05, 0.2):
        k = int(rng.integers(5, 10))
        pts_all.append(c + rng.normal(0.0, 0.008, (k, 2)))
        rad_all.append(rng.uniform(0.8, 2.0, k) * scale)
    pts = np.vstack(pts_all)
    keep = _in_field(geo, pts)
    img, draw = _mask(size)
    _dots(draw, fr.px(pts[keep]), np.concatenate(rad_all)[keep], rng.integers(190, 256, int(keep.sum())))
    _paint(rgb, img, 0.45 * scale, (1.0, 0.9, 0.42))


def _drusen(rgb: np.ndarray, geo: _Geometry, fr: _Frame, rng: np.random.Generator, n: int, soft: bool) -> None:
    size = fr.size
    scale = size / 512.0
    r = np.abs(rng.normal(0.0, 0.05, n)) + 0.006
    ang = rng.uniform(0.0, _TAU, n)
    pts = geo.fovea + np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)
    radii = rng.uniform(1.0, 2.6, n) * scale
    if soft:
        radii[: n // 3] = rng.uniform(3.0, 5.5, n // 3) * scale
    img, draw = _mask(size)
    _dots(draw, fr.px(pts), radii, rng.integers(150, 230, n))
    _paint(rgb, img, 1.1 * scale, (0.98, 0.82, 0.45))


def _wet_amd(rgb: np.ndarray, geo: _Geometry, fr: _Frame, rng: np.random.Generator) -> None:
    """Grey-green subretinal membrane at the macula with a rim of subretinal blood."""
    size = fr.size
    c = fr.pt(geo.fovea + rng.normal(0.0, 0.01, 2))
    rad = rng.uniform(0.035, 0.05) * size
    img, draw = _mask(size)
    draw.polygon(_poly(c[0], c[1], rad, rad * rng.uniform(0.75, 1.0), rng.uniform(0, _TAU), rng, 0.18, 18), fill=200)
    _paint(rgb, img, 0.25 * rad, (0.42, 0.44, 0.3))
    img, draw = _mask(size)
    for _ in range(int(rng.integers(2, 4))):
        ang = rng.uniform(0.0, _TAU)
        hx, hy = c[0] + rad * math.cos(ang), c[1] + rad * math.sin(ang)
        hr = rad * rng.uniform(0.35, 0.6)
        draw.polygon(_poly(hx, hy, hr * 1.4, hr, ang + math.pi / 2, rng, 0.2, 14), fill=230)
    _paint(rgb, img, 0.08 * rad, (0.45, 0.14, 0.15), multiply=True)


def _bone_spicules(rgb: np.ndarray, geo: _Geometry, fr: _Frame, rng: np.random.Generator) -> None:
    size = fr.size
    scale = size / 512.0
    pts = _around(rng, 0.5 * (geo.fovea + geo.disc), 140, 0.27, 0.47)
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) < _FR - 0.01]
    img, draw = _mask(size)
    width = max(1, round(1.6 * scale))
    for x, y in fr.px(pts).tolist():
        fill = int(rng.integers(150, 240))
        for _ in range(int(rng.integers(3, 6))):
            ang = rng.uniform(0.0, _TAU)
            length = rng.uniform(2.5, 7.0) * scale
            mx, my = x + length * math.cos(ang), y + length * math.sin(ang)
            ang2 = ang + rng.normal(0.0, 0.6)
            ex, ey = mx + 0.6 * length * math.cos(ang2), my + 0.6 * length * math.sin(ang2)
            draw.line((x, y, mx, my, ex, ey), fill=fill, width=width)
    _paint(rgb, img, 0.5 * scale, (0.22, 0.2, 0.25), multiply=True)


def _melanoma_site(geo: _Geometry, patient_seed: int, sign: int) -> tuple[np.ndarray, float, float]:
    """Centre, radius and aspect of a choroidal melanoma (anatomy: fixed across visits)."""
    rng = _rng("melanoma-site", patient_seed, sign)
    site = geo.fovea + np.array([0.0, 0.2])
    for _ in range(30):
        cand = _around(rng, geo.fovea, 1, 0.14, 0.3)[0]
        if math.hypot(*(cand - geo.disc)) > 0.18 and math.hypot(*cand) < _FR - 0.13:
            site = cand
            break
    return site, float(rng.uniform(0.075, 0.11)), float(rng.uniform(0.75, 1.0))


def _melanoma(
    rgb: np.ndarray, geo: _Geometry, fr: _Frame, rng: np.random.Generator, patient_seed: int, sign: int
) -> None:
    """Dome-shaped grey-brown choroidal mass with orange pigment."""
    size = fr.size
    site, rad, aspect = _melanoma_site(geo, patient_seed, sign)
    c = fr.pt(site)
    rad *= size
    win = _window(c[0], c[1], rad * 1.25, size, size)
    if win is None:
        return
    (sy, sx), ly, lx = win
    ex, ey = (lx - c[0]) / rad, (ly - c[1]) / (rad * aspect)
    q2 = ex * ex + ey * ey
    inside = 0.9 * _smooth((1.0 - np.sqrt(q2)) / 0.12 + 0.5)
    h = np.sqrt(np.clip(1.0 - q2, 0.0, 1.0))
    shade = 0.72 + 0.32 * h - 0.2 * (ex + ey) * h
    mott = _noise(rng, inside.shape, (6, 6)) * 0.07
    reg = rgb[:, sy, sx]
    for ch, base in enumerate((0.5, 0.38, 0.27)):
        reg[ch] += inside * (base * shade + mott - reg[ch])
    img, draw = _mask((inside.shape[1], inside.shape[0]))
    k = int(rng.integers(8, 15))
    dots = rng.normal(0.0, 0.4, (k, 2))
    dots = dots[np.hypot(dots[:, 0], dots[:, 1]) < 0.8] * [rad, rad * aspect]
    dots += [c[0] - sx.start, c[1] - sy.start]
    _dots(draw, dots, rng.uniform(1.0, 3.0, len(dots)) * size / 512.0, rng.integers(120, 220, len(dots)))
    _tint(reg, _as_alpha(img, 0.8 * size / 512.0), (0.85, 0.45, 0.15))


def _ppa(rgb: np.ndarray, geo: _Geometry, fr: _Frame, rng: np.random.Generator) -> None:
    """Temporal peripapillary atrophy crescent (pathologic myopia)."""
    size = fr.size
    dx, dy = fr.pt(geo.disc)
    rx = 0.5 * geo.dd * size
    ry = rx * geo.disc_aspect
    width = rng.uniform(0.35, 0.7)
    px, py = fr.pt(geo.disc + np.array([-0.45 * width * geo.dd, 0.0]))
    ox, oy = px - dx, py - dy
    win = _window(dx, dy, 2.2 * ry, size, size)
    if win is None:
        return
    (sy, sx), ly, lx = win
    ex = (lx - dx - ox) / (rx * (1 + 0.9 * width))
    ey = (ly - dy - oy) / (ry * (1 + 0.4 * width))
    q = np.sqrt(ex * ex + ey * ey)
    reg = rgb[:, sy, sx]
    _tint(reg, 0.85 * _smooth((1.0 - q) / 0.08 + 0.5), (0.95, 0.83, 0.66))
    _darken(reg, 0.5 * np.exp(-(((q - 1.0) / 0.06) ** 2)), (0.45, 0.35, 0.3))


def _nv_centres(geo: _Geometry, rng: np.random.Generator) -> list[np.ndarray]:
    """New vessels at the disc and on one major vein."""
    centres = [geo.disc + rng.normal(0.0, 0.18 * geo.dd, 2)]
    ddisc = _dist_disc(geo)
    pts, _ = _sites_vessels(geo, rng, 1, geo.vein & (geo.gen <= 1) & (ddisc > 0.18) & (ddisc < 0.35), 0.01)
    centres.extend(pts)
    return centres


def _nv_masks(geo: _Geometry, fr: _Frame, rng: np.random.Generator, halo: float) -> tuple[Image.Image, Image.Image]:
    """Fine tangled new vessels (drawn at 2x, reduced) and a halo mask around each tuft."""
    size = fr.size
    img, draw = _mask(size * 2)
    haze, hdraw = _mask(size)
    width = max(2, round(2.4 * size / 512))
    for c in _nv_centres(geo, rng):
        for path in _tangle(rng, c, 0.025, int(rng.integers(12, 20))):
            draw.line((fr.px(path) * 2).ravel().tolist(), fill=int(rng.integers(170, 256)), width=width, joint="curve")
        x, y = fr.pt(c)
        r = halo * size
        hdraw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return img.reduce(2), haze


def _neovessels(rgb: np.ndarray, geo: _Geometry, fr: _Frame, rng: np.random.Generator) -> None:
    tufts, haze = _nv_masks(geo, fr, rng, 0.028)
    _paint(rgb, haze, 0.012 * fr.size, (0.85, 0.6, 0.5), strength=0.3)
    _paint(rgb, tufts, 0.3, (0.5, 0.22, 0.26), multiply=True)


def _detachment(rgb: np.ndarray, fr: _Frame, rng: np.random.Generator, vessels: np.ndarray) -> None:
    """A grey, elevated, wrinkled detached area coming in from the periphery, with a horseshoe tear."""
    size = fr.size
    centre = rng.uniform(-2.4, -0.6) if rng.random() < 0.7 else rng.uniform(0.6, 2.4)  # canonical angle
    half = rng.uniform(0.6, 1.0)
    ph1, ph2 = rng.uniform(0, _TAU), rng.uniform(0, _TAU)
    small = max(16, size // 2)  # smooth fields: computed at half resolution, then upsampled
    yy, xx = _grid(small)
    px = (xx - small / 2.0) * fr.sign
    py = yy - small / 2.0
    phi = np.arctan2(py, px)
    rr = np.sqrt(px * px + py * py) * np.float32(1.0 / (_FR * small))
    dphi = np.abs(np.remainder(phi - centre + math.pi, _TAU) - math.pi)
    reach = 0.45 + 0.05 * np.sin(3.0 * phi + ph1) + 0.03 * np.sin(7.0 * phi + ph2)
    reach += 0.6 * _smooth(dphi / half)
    alpha = 0.8 * _smooth((rr - reach) / 0.06 + 0.5)
    shade = 0.6 + 0.1 * np.sin(rr * 55.0 + 4.0 * np.sin(phi * 5.0))
    rows, cols = np.flatnonzero(alpha.max(axis=1) > 0.004), np.flatnonzero(alpha.max(axis=0) > 0.004)
    if rows.size == 0:
        return
    k = size / small
    y0, y1 = max(0, int(rows[0] * k) - 2), min(size, int((rows[-1] + 1) * k) + 2)
    x0, x1 = max(0, int(cols[0] * k) - 2), min(size, int((cols[-1] + 1) * k) + 2)
    box = (x0 / k, y0 / k, x1 / k, y1 / k)

    def up(arr: np.ndarray) -> np.ndarray:
        img = Image.fromarray(arr.astype(np.float32))
        img = img.resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR, box=box)
        return np.asarray(img, dtype=np.float32)

    alpha, shade = up(alpha), up(shade)
    reg = rgb[:, y0:y1, x0:x1]
    for c, tone in enumerate((1.0, 0.92, 0.86)):
        reg[c] += alpha * (shade * tone - reg[c])
    _darken(reg, alpha * vessels[y0:y1, x0:x1], (0.35, 0.25, 0.3))
    r_t = 0.7 * _FR * size
    tx = size / 2.0 + fr.sign * r_t * math.cos(centre)
    ty = size / 2.0 + r_t * math.sin(centre)
    img, draw = _mask(size)
    rad = 0.022 * size
    start = math.degrees(centre if fr.sign > 0 else math.pi - centre)
    draw.pieslice((tx - rad, ty - rad, tx + rad, ty + rad), start - 110, start + 110, fill=230)
    _paint(rgb, img, 0.8 * size / 512.0, (0.55, 0.15, 0.15), multiply=True)


# ----------------------------------------------------------------------------------------------------
# fluorescein angiography


def _ffa_levels(t: float) -> dict[str, float]:
    """Fluorescence of each compartment along the angiogram (phase 0 = early arterial, 1 = late)."""
    return {
        "choroid": 0.17 + 0.33 * _sstep(t / 0.2) - 0.17 * _sstep((t - 0.45) / 0.55),
        "artery": 0.72 + 0.26 * _sstep(t / 0.08) - 0.66 * _sstep((t - 0.3) / 0.7),
        "vein_edge": 0.1 + 0.8 * _sstep((t - 0.03) / 0.15) - 0.58 * _sstep((t - 0.4) / 0.6),
        "vein_core": 0.1 + 0.8 * _sstep((t - 0.12) / 0.2) - 0.58 * _sstep((t - 0.4) / 0.6),
        "disc": 0.3 + 0.45 * _sstep(t / 0.15) - 0.15 * _sstep((t - 0.4) / 0.6),
        "mottle": 0.26 - 0.18 * _sstep(t / 0.5),
    }


def _fmix(
    f: np.ndarray, img: Image.Image, blur: float, level: float, strength: float = 1.0, brighten_only: bool = True
) -> None:
    """Mix a grey-scale float image towards `level` where the mask is drawn."""
    reg = _region(img, blur)
    if reg is None:
        return
    (sy, sx), alpha = reg
    sub = f[sy, sx]
    delta = level - sub
    if brighten_only:
        np.maximum(delta, 0.0, out=delta)
    sub += (strength * alpha) * delta


def _fscale(f: np.ndarray, img: Image.Image, blur: float, k: float) -> None:
    """Darken a grey-scale float image by up to a factor (1 - k) where the mask is drawn."""
    reg = _region(img, blur)
    if reg is not None:
        (sy, sx), alpha = reg
        f[sy, sx] *= 1.0 - k * alpha


def ffa_frame(
    patient_seed: int, eye: str, findings: Iterable[str] = (), image_seed: int = 0, size: int = 512, phase: float = 0.5
) -> Image.Image:
    """Phantom fluorescein angiogram frame (grey-scale "L", `size` x `size`).

    Same disc and vessel geometry as :func:`fundus_photo` for (patient_seed, eye). `phase` runs from
    0 (early arterial: arteries filled, veins dark) to 1 (late: vessels fading, leakage at its largest).
    Findings: ``ffa.*`` codes plus ``dr.*``, ``vasc.*``, ``csc``, ``amd.*`` and a few others mapped to
    their usual angiographic signs.
    """
    size = _check_side(size)
    sign = _eye_sign(eye)
    codes = _codes(findings)
    patient_seed, image_seed = int(patient_seed), int(image_seed)
    t = float(np.clip(float(phase), 0.0, 1.0))
    geo = _geometry(patient_seed, sign)
    fr = _frame(size, sign, patient_seed, image_seed)

    def lrng(tag: str) -> np.random.Generator:
        return _rng("ffa-lesion", tag, patient_seed, sign, image_seed)

    def frng(tag: str) -> np.random.Generator:  # the colour photo's lesion sites, so both agree
        return _rng("fundus-lesion", tag, patient_seed, sign, image_seed)

    grade = _dr_grade(codes)
    scale = size / 512.0
    dd_px = geo.dd * size
    fx, fy = fr.pt(geo.fovea)
    yy, xx = _grid(size)
    lv = _ffa_levels(t)
    crao, crvo, rp = "vasc.crao" in codes, "vasc.crvo" in codes, "rp" in codes
    sector = _brvo_trunk(patient_seed, sign) if "vasc.brvo" in codes else None
    if crao:  # delayed, sluggish arterial and venous filling
        lv["artery"] = 0.12 + (lv["artery"] - 0.12) * 0.75 * _sstep((t - 0.1) / 0.5)
        lv["vein_edge"] = 0.1 + (lv["vein_edge"] - 0.1) * _sstep((t - 0.35) / 0.45)
        lv["vein_core"] = 0.1 + (lv["vein_core"] - 0.1) * _sstep((t - 0.45) / 0.45)
    if crvo:  # delayed venous filling
        lv["vein_edge"] = 0.1 + (lv["vein_edge"] - 0.1) * _sstep((t - 0.1) / 0.4)
        lv["vein_core"] = 0.1 + (lv["vein_core"] - 0.1) * _sstep((t - 0.2) / 0.4)

    # which signs are present
    n_ma = max(
        40 if "ffa.microaneurysm" in codes else 0,
        [0, 14, 30, 45, 45][grade],
        16 if "lesion.microaneurysm" in codes else 0,
    )
    leak = "ffa.leakage" in codes or grade >= 2
    nonperf = "ffa.non_perfusion" in codes or grade >= 3 or sector is not None or "lesion.cotton_wool_spot" in codes
    nv = "ffa.neovascularisation" in codes or grade >= 4 or "lesion.neovascularisation" in codes
    window = (
        "ffa.window_defect" in codes
        or "amd.dry" in codes
        or "mh.full_thickness" in codes
        or "myopia.pathologic" in codes
    )

    # --- background choroidal fluorescence (patchy early, even late)
    tex, m_tex = _texture(patient_seed, sign, size)
    lobules = _noise(_rng("ffa-lobules", patient_seed, sign), (size, size), (20, 20))
    cx, cy = size / 2.0 + fr.illum[0], size / 2.0 + fr.illum[1]
    rr2 = ((xx - cx) ** 2 + (yy - cy) ** 2) * np.float32(1.0 / (_FR * size) ** 2)
    f = 1.0 + lv["mottle"] * lobules + 0.05 * m_tex + 1.2 * tex
    f *= lv["choroid"] * (1.0 - 0.35 * rr2 * np.sqrt(np.sqrt(rr2)))
    win = _window(fx, fy, 1.8 * dd_px, size, size)
    if win is not None:  # macular pigment and the foveal avascular zone
        (sy, sx), ly, lx = win
        d2 = (lx - fx) ** 2 + (ly - fy) ** 2
        f[sy, sx] *= (
            1.0 - 0.45 * np.exp(-d2 / (2 * (0.55 * dd_px) ** 2)) - 0.35 * np.exp(-d2 / (2 * (0.14 * dd_px) ** 2))
        )
    if rp:  # mottled transmission defects in the mid periphery
        f *= 1.0 + 0.35 * np.clip(m_tex, 0.0, None) * _smooth((np.sqrt(rr2) - 0.45) / 0.25)

    # --- hypofluorescence: capillary non-perfusion, blocked fluorescence (under the large vessels)
    if nonperf:
        rng = lrng("nonperf")
        img, draw = _mask(size)
        if sector is not None:
            pts, _ = _sites_vessels(geo, rng, 4, (geo.trunk == sector) & (_dist_disc(geo) > 0.15), 0.05)
        else:
            cand = _around(rng, geo.fovea, 30, 0.22, 0.4)
            pts = cand[_in_field(geo, cand, 0.02)][: 4 if grade >= 3 or "ffa.non_perfusion" in codes else 2]
        for x, y in fr.px(pts).tolist():
            r = rng.uniform(0.04, 0.075) * size
            draw.polygon(_poly(x, y, r, r * rng.uniform(0.6, 0.95), rng.uniform(0, _TAU), rng, 0.25, 16), fill=230)
        if "ffa.non_perfusion" in codes or grade >= 3:  # enlarged, irregular foveal avascular zone
            r = 0.02 * size
            draw.polygon(_poly(fx, fy, r, r * 0.85, rng.uniform(0, _TAU), rng, 0.2, 12), fill=200)
        _fscale(f, img, 4.0 * scale, 0.6)
    img, draw = _mask(size)
    n_blot = [0, 0, 8, 24, 24][grade]
    n_flame = [0, 0, 3, 8, 8][grade]
    if "lesion.haemorrhage" in codes:
        n_blot, n_flame = max(n_blot, 7), max(n_flame, 3)
    _haemorrhages(draw, geo, fr, frng, n_blot, n_flame, spread=grade >= 3, crvo=crvo, sector=sector)
    if rp:  # pigment
        rng = lrng("rp")
        pts = _around(rng, 0.5 * (geo.fovea + geo.disc), 140, 0.27, 0.47)
        pts = pts[np.hypot(pts[:, 0], pts[:, 1]) < _FR - 0.01]
        for x, y in fr.px(pts).tolist():
            for _ in range(3):
                ang, ln = rng.uniform(0, _TAU), rng.uniform(2.5, 7.0) * scale
                draw.line(
                    (x, y, x + ln * math.cos(ang), y + ln * math.sin(ang)), fill=200, width=max(1, round(1.5 * scale))
                )
    if "ffa.blocked_fluorescence" in codes:
        rng = lrng("blocked")
        for x, y in fr.px(_sites_posterior(geo, rng, 2, 0.06, 0.22)).tolist():
            r = rng.uniform(0.025, 0.045) * size
            draw.polygon(_poly(x, y, r, r * rng.uniform(0.7, 1.0), 0.0, rng, 0.2, 14), fill=235)
    if "amd.wet" in codes:  # blood around the membrane
        rng = frng("cnv")
        c = fr.pt(geo.fovea + rng.normal(0.0, 0.01, 2))
        rad = rng.uniform(0.035, 0.05) * size
        for _ in range(3):
            ang = rng.uniform(0, _TAU)
            draw.polygon(
                _poly(
                    c[0] + 1.3 * rad * math.cos(ang),
                    c[1] + 1.3 * rad * math.sin(ang),
                    rad * 0.6,
                    rad * 0.4,
                    ang + math.pi / 2,
                    rng,
                    0.2,
                    14,
                ),
                fill=220,
            )
    if "tumour.choroidal_melanoma" in codes:  # pigment blocks early; the mass lights up late
        site, rad, aspect = _melanoma_site(geo, patient_seed, sign)
        x, y = fr.pt(site)
        rad *= size
        mimg, mdraw = _mask(size)
        mdraw.ellipse((x - rad, y - rad * aspect, x + rad, y + rad * aspect), fill=255)
        _fscale(f, mimg, 3.0 * scale, 0.55 * (1.0 - t))
    _fscale(f, img, 0.8 * scale, 0.8)

    # --- window defects: transmitted choroidal fluorescence, early and not growing
    if window:
        rng = lrng("window")
        img, draw = _mask(size)
        if "ffa.window_defect" in codes:
            for x, y in fr.px(_sites_posterior(geo, rng, 2, 0.03, 0.15)).tolist():
                r = rng.uniform(0.025, 0.045) * size
                draw.polygon(_poly(x, y, r, r * rng.uniform(0.6, 1.0), rng.uniform(0, _TAU), rng, 0.3, 16), fill=210)
        if "amd.dry" in codes:
            _dots(
                draw,
                fr.px(_sites_posterior(geo, rng, 30, 0.005, 0.09)),
                rng.uniform(1.0, 3.0, 30) * scale,
                rng.integers(120, 220, 30),
            )
        if "mh.full_thickness" in codes:
            r = 0.018 * size
            draw.ellipse((fx - r, fy - r, fx + r, fy + r), fill=200)
        if "myopia.pathologic" in codes:  # peripapillary atrophy
            x, y = fr.pt(geo.disc + np.array([-0.35 * geo.dd, 0.0]))
            r = 0.65 * dd_px
            draw.ellipse((x - r, y - r * 1.1, x + r, y + r * 1.1), fill=200)
        _fmix(f, img, 1.5 * scale, 2.2 * lv["choroid"])

    # --- optic disc
    dx, dy = fr.pt(geo.disc)
    rx = 0.5 * dd_px * (1.15 if crvo else 1.0)
    ry = rx * geo.disc_aspect
    win = _window(dx, dy, 2.2 * ry, size, size)
    if win is not None:
        (sy, sx), ly, lx = win
        q = np.sqrt(((lx - dx) / rx) ** 2 + ((ly - dy) / ry) ** 2)
        soft = 0.25 + (1.0 * t if crvo or grade >= 4 else 0.0)
        sub = f[sy, sx]
        sub += _smooth((1.0 - q) / soft + 0.5) * (lv["disc"] - sub)
        sub += 0.22 * t * np.exp(-(((q - 1.0) / 0.12) ** 2))  # late staining of the disc margin

    # --- retinal vessels (veins fill from the walls inwards: laminar flow)
    art_scale = 0.55 if crao or rp else 1.0
    vein_scale = 1.4 if crvo else (0.75 if rp else 1.0)
    a, v, core = _vessel_masks(
        geo,
        fr,
        art_scale=art_scale,
        vein_scale=vein_scale,
        tort=1.0 if crvo else 0.0,
        beading=0.3 if grade >= 3 else 0.0,
        sector=sector,
        core=True,
    )
    f += v * (lv["vein_edge"] - f)
    f += core * (lv["vein_core"] - f)
    f += a * (lv["artery"] - f)
    if crvo or sector is not None:  # late staining of the vein walls
        wall = _as_alpha(Image.fromarray((v * 255.0).astype(np.uint8)), 2.0 * scale)
        f += (0.3 * _sstep((t - 0.3) / 0.6)) * wall

    # --- hyperfluorescence
    if n_ma:
        rng = frng("ma")
        pts = fr.px(_sites_posterior(geo, rng, n_ma, pool=max(90, 2 * n_ma)))
        img, draw = _mask(size)
        _dots(draw, pts, rng.uniform(1.0, 1.6, len(pts)) * scale, rng.integers(200, 256, len(pts)))
        _fmix(f, img, (0.5 + 0.8 * t) * scale, 0.6 + 0.35 * _sstep(t / 0.15) - 0.15 * t, 0.95)
    if "ffa.staining" in codes:
        rng = lrng("staining")
        img, draw = _mask(size)
        for x, y in fr.px(_sites_posterior(geo, rng, 2, 0.04, 0.2)).tolist():
            r = rng.uniform(0.02, 0.04) * size
            draw.polygon(_poly(x, y, r, r * rng.uniform(0.6, 1.0), rng.uniform(0, _TAU), rng, 0.25, 16), fill=230)
        _fmix(f, img, 1.2 * scale, 0.2 + 0.72 * _sstep(t / 0.85))
    if "lesion.drusen" in codes or "amd.wet" in codes or "amd.dry" in codes:  # drusen stain late
        rng = frng("drusen")
        r = np.abs(rng.normal(0.0, 0.05, 30)) + 0.006
        ang = rng.uniform(0.0, _TAU, 30)
        pts = geo.fovea + np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)
        img, draw = _mask(size)
        _dots(draw, fr.px(pts), rng.uniform(1.0, 3.0, 30) * scale, rng.integers(150, 230, 30))
        _fmix(f, img, 1.0 * scale, 0.2 + 0.55 * _sstep(t / 0.8))
    if "ffa.pooling" in codes:
        rng = lrng("pooling")
        x, y = fr.pt(geo.fovea + rng.normal(0.0, 0.02, 2))
        r = rng.uniform(0.03, 0.05) * size
        img, draw = _mask(size)
        draw.polygon(_poly(x, y, r, r * rng.uniform(0.8, 1.0), 0.0, rng, 0.06, 24), fill=255)
        _fmix(f, img, 1.5 * scale, 0.12 + 0.85 * _sstep((t - 0.1) / 0.7))
    leaks: list[tuple[float, float, float]] = []  # x, y, base radius (pixels)
    if leak:
        rng = lrng("leakage")
        n = 3 if grade >= 3 else 2
        leaks.extend(
            (x, y, rng.uniform(0.012, 0.022) * size)
            for x, y in fr.px(_sites_posterior(geo, rng, n, 0.02, 0.16)).tolist()
        )
    if crvo:
        rng = lrng("crvo-leak")
        leaks.append((fx, fy, 0.03 * size))  # cystoid macular oedema
        leaks.extend((x, y, 0.015 * size) for x, y in fr.px(_sites_everywhere(geo, rng, 3)).tolist())
    if sector is not None:
        rng = lrng("brvo-leak")
        pts, _ = _sites_vessels(geo, rng, 3, (geo.trunk == sector) & (_dist_disc(geo) > 0.15), 0.03)
        leaks.extend((x, y, 0.016 * size) for x, y in fr.px(pts).tolist())
    if "amd.wet" in codes:  # classic CNV: a lacy network lit up early, leaking late
        rng = frng("cnv")
        centre = geo.fovea + rng.normal(0.0, 0.01, 2)
        img, draw = _mask(size * 2)
        for path in _tangle(lrng("cnv-net"), centre, 0.03, 22):
            draw.line((fr.px(path) * 2).ravel().tolist(), fill=255, width=max(2, round(3 * scale)), joint="curve")
        _fmix(f, img.reduce(2), (0.8 + 2.0 * t) * scale, 0.75 + 0.2 * t)
        x, y = fr.pt(centre)
        leaks.append((x, y, 0.025 * size))
    if leaks:
        img, draw = _mask(size)
        grow = 0.5 + 1.4 * t
        for x, y, r0 in leaks:
            r = r0 * grow
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        _fmix(f, img, (0.15 + 1.0 * t) * max(r0 for *_, r0 in leaks), 0.62 + 0.36 * _sstep(t / 0.6))
    if nv:
        tufts, haze = _nv_masks(geo, fr, frng("nv"), 0.03 * (0.6 + 1.2 * t))
        _fmix(f, tufts, 0.3, 0.95, 1.0 - 0.5 * t)
        _fmix(f, haze, (0.01 + 0.03 * t) * size, 0.25 + 0.7 * _sstep(t / 0.8))
    if "csc" in codes:
        rng = lrng("csc")
        x, y = fr.pt(geo.fovea + rng.normal(0.0, 0.025, 2))
        img, draw = _mask(size)
        r = 0.006 * size
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        if rng.random() < 0.5:  # smokestack: a plume rising, then spreading like an umbrella
            rise = 0.07 * size * _sstep(t / 0.7)
            half = 0.008 * size
            draw.rectangle((x - half, y - rise, x + half, y), fill=230)
            um = 0.03 * size * _sstep((t - 0.35) / 0.5)
            if um > 1:
                draw.ellipse((x - um, y - rise - um * 0.6, x + um, y - rise + um * 0.5), fill=220)
            blur = 3.0 * scale
        else:  # ink blot: grows concentrically
            r = 0.006 * size + 0.03 * size * _sstep(t / 0.9)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=235)
            blur = max(2.0 * scale, 0.35 * r)
        _fmix(f, img, blur, 0.5 + 0.45 * _sstep(t / 0.5))
        r = dd_px * 0.85  # faint late pooling in the serous detachment
        img, draw = _mask(size)
        draw.ellipse((fx - r, fy - r, fx + r, fy + r), fill=255)
        _fmix(f, img, 4.0 * scale, 1.0, 0.18 * _sstep((t - 0.5) / 0.5))
    if "tumour.choroidal_melanoma" in codes:  # late mottled hyperfluorescence with pinpoint leaks
        site, rad, aspect = _melanoma_site(geo, patient_seed, sign)
        x, y = fr.pt(site)
        rng = lrng("melanoma")
        img, draw = _mask(size)
        pts = np.array([[x, y]]) + rng.normal(0.0, 0.35 * rad * size, (18, 2))
        _dots(draw, pts, rng.uniform(1.5, 3.5, 18) * scale, rng.integers(150, 256, 18))
        _fmix(f, img, (1.0 + 2.0 * t) * scale, 0.35 + 0.55 * t)

    # --- acquisition: exposure, detector noise, circular field stop
    grain = _grain(_rng("ffa-noise", patient_seed, sign, image_seed), (size, size))
    grain *= 0.03
    f += grain
    f *= _field(size)
    f *= float(255.0 * fr.gain)
    f += 0.5
    np.clip(f, 0.0, 255.0, out=f)
    return Image.fromarray(f.astype(np.uint8))


# ----------------------------------------------------------------------------------------------------
# OCT B-scan


def oct_bscan(
    patient_seed: int, eye: str, findings: Iterable[str] = (), image_seed: int = 0, size: tuple[int, int] = (512, 384)
) -> Image.Image:
    """Phantom horizontal OCT B-scan through the fovea (grey-scale "L", `size` = (width, height)).

    Kermany OCT2017 look: speckled black background, layered retina with a foveal pit, bright RPE and
    choroid. Shape depends on (patient_seed, eye); noise and position on `image_seed`. Findings:
    ``oct.normal``, ``oct.cnv``, ``oct.dme``, ``oct.drusen``, ``oct.srf``, ``oct.erm``,
    ``mh.full_thickness``, ``csc`` (also ``amd.dry``/``lesion.drusen`` -> drusen, ``amd.wet`` -> CNV).
    """
    w, h = _check_side(size[0], "width"), _check_side(size[1], "height")
    sign = _eye_sign(eye)
    codes = _codes(findings)
    patient_seed, image_seed = int(patient_seed), int(image_seed)
    prng = _rng("oct-eye", patient_seed, sign)
    irng = _rng("oct-scan", patient_seed, sign, image_seed)

    def lrng(tag: str) -> np.random.Generator:
        return _rng("oct-lesion", tag, patient_seed, sign, image_seed)

    cnv = "oct.cnv" in codes or "amd.wet" in codes
    dme = "oct.dme" in codes
    drusen = "oct.drusen" in codes or "amd.dry" in codes or "lesion.drusen" in codes
    srf = "oct.srf" in codes
    erm = "oct.erm" in codes
    hole = "mh.full_thickness" in codes
    csc = "csc" in codes

    x = np.arange(w, dtype=np.float32) + 0.5
    u = (x - w * (0.5 + irng.normal(0.0, 0.025))) / w  # horizontal position relative to the fovea
    nasal = u * sign  # > 0 on the nasal side (towards the disc)
    T = h * prng.uniform(0.23, 0.27)  # retinal thickness away from the fovea (pixels)
    curv = prng.uniform(0.05, 0.13) + irng.normal(0.0, 0.01)
    tilt = prng.normal(0.0, 0.03) + irng.normal(0.0, 0.02)
    y_bm = h * (0.6 + irng.normal(0.0, 0.025)) - h * curv * (2.0 * u) ** 2 + h * tilt * (2.0 * u)
    pit_w = prng.uniform(0.07, 0.09)
    pit = np.exp(-(np.abs(u / pit_w) ** 2.4))
    bulge = np.exp(-((u / 0.07) ** 2))
    inner = 1.0 - 0.96 * pit  # inner layers vanish in the foveal pit
    thick = np.ones_like(u)  # extra inner thickening (oedema, membranes)
    if dme:
        thick += 0.65 * np.exp(-((u / 0.18) ** 2))
        inner = 1.0 - 0.3 * pit
    if erm:
        thick += 0.25 * np.exp(-((u / 0.25) ** 2))
        inner = 1.0 - 0.5 * pit
    if cnv:
        thick += 0.3 * np.exp(-((u / 0.15) ** 2))
        inner = 1.0 - 0.6 * pit
    if hole:
        inner = np.ones_like(u)
        thick += 0.45 * np.exp(-(((np.abs(u) - 0.06) / 0.05) ** 2))

    rnfl = T * (0.05 + 0.07 * _smooth(np.abs(u) / 0.4) + 0.09 * _smooth(nasal / 0.45)) * inner
    gcl = T * 0.13 * (1.0 + 0.35 * np.exp(-(((np.abs(u) - 0.1) / 0.06) ** 2))) * inner
    ipl = T * 0.10 * inner
    inl = T * 0.10 * inner * thick
    opl = T * 0.07 * (1.0 - 0.7 * pit * (inner < 0.9)) * thick
    onl = T * 0.22 * (1.0 + 0.45 * bulge) * thick
    myoid = T * 0.055 * (1.0 + 0.3 * bulge)
    elm = T * 0.012 + 0.0 * u
    ez = T * 0.035 + 0.0 * u
    outer_seg = T * 0.06 * (1.0 + 0.35 * bulge)
    rpe = T * 0.055 + 0.0 * u
    fluid = np.zeros_like(u)
    sub = np.zeros_like(u)  # sub-RPE material (drusen, PED)
    sub_int = np.full_like(u, 0.42)
    fluid_int = np.full_like(u, 0.03)
    ez_int = np.full_like(u, 0.82)

    if drusen:
        rng = lrng("drusen")
        for _ in range(int(rng.integers(4, 9))):
            c = rng.uniform(-0.3, 0.3)
            bw = rng.uniform(0.012, 0.03)
            sub += h * rng.uniform(0.012, 0.035) * np.exp(-(((u - c) / bw) ** 2))
        ez_int *= 1.0 - 0.5 * _smooth(sub / (0.03 * h))
    if srf or csc:
        rng = lrng("srf")
        c = rng.normal(0.0, 0.03)
        half = rng.uniform(0.2, 0.28) if csc else rng.uniform(0.1, 0.16)
        height = h * (rng.uniform(0.09, 0.14) if csc else rng.uniform(0.04, 0.08))
        fluid += height * np.clip(1.0 - ((u - c) / half) ** 2, 0.0, None) ** 0.75
        outer_seg *= 1.0 + 0.6 * _smooth(fluid / (0.02 * h))
        if csc:
            sub += h * rng.uniform(0.015, 0.03) * np.exp(-(((u - c - rng.normal(0, 0.05)) / 0.02) ** 2))
            sub_int = np.where(sub > 0.5, 0.05, sub_int)
    if cnv:
        rng = lrng("cnv")
        c = rng.normal(0.0, 0.03)
        ped = h * rng.uniform(0.05, 0.09) * np.exp(-((((u - c) / rng.uniform(0.05, 0.08)) ** 2) ** 1.5))
        sub += ped
        fluid += h * rng.uniform(0.02, 0.04) * np.clip(1.0 - ((u - c) / 0.17) ** 2, 0.0, None)
        shrm = np.exp(-(((u - c) / 0.045) ** 2))
        fluid += h * 0.03 * shrm
        fluid_int = 0.03 + 0.7 * shrm
        sub_int = 0.45 + 0.15 * np.cos(u * 180.0)

    # boundaries from the top (vitreous) down; intensities of the layer below each boundary
    layers = [
        (rnfl, 0.85),
        (gcl, 0.36),
        (ipl, 0.55),
        (inl, 0.16),
        (opl, 0.5),
        (onl, 0.07),
        (elm, 0.38),
        (myoid, 0.1),
        (ez, ez_int),
        (outer_seg, 0.24),
        (fluid, fluid_int),
        (rpe, 0.97),
        (sub, sub_int),
    ]
    if erm:  # the membrane wrinkles the inner retina
        rng = lrng("erm")
        wave = 0.012 * h * np.sin(u * rng.uniform(45, 70) + rng.uniform(0, _TAU)) * np.exp(-((u / 0.3) ** 2))
        rnfl += np.maximum(wave, -0.8 * rnfl)
    total = sum(t for t, _ in layers)
    y_ilm = y_bm - total
    yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    ramp = 0.9
    refl = np.zeros((h, w), dtype=np.float32)
    prev: np.ndarray | float = 0.0
    top = y_ilm
    bounds = {}
    for k, (thk, val) in enumerate(layers):
        bounds[k] = top
        step = np.asarray(val, dtype=np.float32) - prev
        refl += step * np.clip((yy - top) / ramp + 0.5, 0.0, 1.0)
        prev = np.asarray(val, dtype=np.float32)
        top = top + thk
    # choroid below Bruch's membrane, then sclera
    ch_t = T * prng.uniform(0.4, 0.6)
    depth = yy - y_bm
    vessels = np.clip((_noise(prng, (h, w), (max(4, h // 7), max(4, w // 28))) - 0.1) / 0.6, 0.0, 1.0)
    vessels *= _smooth(depth / (0.25 * ch_t))  # the choriocapillaris just under Bruch's is bright
    choroid = 0.45 * (1.0 - 0.8 * vessels) * np.exp(-np.clip(depth, 0.0, None) / (1.2 * ch_t))
    choroid *= np.clip(1.0 - (depth - ch_t) / (0.35 * ch_t), 0.08, 1.0)
    refl += (choroid - prev) * np.clip(depth / ramp + 0.5, 0.0, 1.0)
    if erm:
        d = yy - (y_ilm - 1.5 - 1.2 * (1.0 + np.sin(u * 37.0)))
        refl += 0.9 * np.exp(-((d / 0.9) ** 2)) * (np.abs(u) < 0.32)

    # intraretinal cysts
    cysts: list[tuple[float, float, float, float]] = []
    if dme or cnv or hole:
        rng = lrng("cysts")
        n = 14 if dme else (6 if hole else 4)
        for _ in range(n):
            cu = rng.uniform(-0.22, 0.22) if not hole else math.copysign(rng.uniform(0.03, 0.1), rng.normal())
            col = int(np.clip(np.searchsorted(u, cu), 0, w - 1))
            y_top, y_bot = float(bounds[3][col]), float(bounds[6][col])
            span = max(y_bot - y_top, 2.0)
            ry = rng.uniform(0.15, 0.4) * span
            cy = y_top + rng.uniform(ry, max(ry, span - ry))
            rx = ry * rng.uniform(0.8, 2.0) * w / 512.0 * 1.4
            cysts.append((x[col], cy, rx, ry))
    for cx, cy, rx, ry in cysts:
        win = _window(cx, cy, max(rx, ry) + 3, h, w)
        if win is None:
            continue
        sl, ly, lx = win
        q = np.sqrt(((lx - cx) / rx) ** 2 + ((ly - cy) / ry) ** 2)
        m = _smooth((1.0 - q) / 0.25 + 0.5)
        wall = np.exp(-(((q - 1.05) / 0.12) ** 2))
        refl[sl] = refl[sl] * (1.0 - m) + 0.02 * m + 0.15 * wall
    if dme:  # hyperreflective foci
        rng = lrng("foci")
        for _ in range(8):
            col = int(rng.integers(int(0.25 * w), int(0.75 * w)))
            cy = rng.uniform(float(bounds[1][col]), float(bounds[6][col]))
            win = _window(x[col], cy, 3, h, w)
            if win is not None:
                sl, ly, lx = win
                refl[sl] += 0.6 * np.exp(-(((lx - x[col]) ** 2 + (ly - cy) ** 2) / 2.0))
    if hole:
        rng = lrng("hole")
        xc = float(np.interp(0.0, u, x))  # the foveal column
        mid_hw, base_hw, flare = rng.uniform(0.015, 0.025) * w, rng.uniform(0.035, 0.055) * w, 0.025 * w
        y_top = float(np.interp(xc, x, y_ilm))
        y_base = float(np.interp(xc, x, bounds[11]))
        frac = np.clip((yy - y_top) / max(y_base - y_top, 1.0), 0.0, 1.0)
        hw = mid_hw + (base_hw - mid_hw) * frac**2 + flare * (1.0 - frac) ** 3
        gap = _smooth((hw - np.abs(x[None, :] - xc)) / 2.0 + 0.5) * (yy < y_base) * (yy > y_top - 0.1 * h)
        refl *= 1.0 - gap
        if rng.random() < 0.6:  # operculum
            oy = y_top - rng.uniform(0.1, 0.16) * h
            win = _window(xc, oy, 12, h, w)
            if win is not None:
                sl, ly, lx = win
                refl[sl] += 0.6 * np.exp(-(((lx - xc) / 7.0) ** 2 + ((ly - oy) / 2.5) ** 2))

    # speckle, noise floor, compression
    sp = irng.gamma(2.2, 1.0 / 2.2, (h, (w + 1) // 2)).astype(np.float32)
    speckle = np.asarray(Image.fromarray(sp).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
    floor = irng.gamma(1.3, 0.03, (h, w)).astype(np.float32)
    sig = refl * speckle * (0.95 + 0.1 * irng.random()) + floor
    img = np.sqrt(np.clip(sig, 0.0, None)) ** 1.6
    out = np.clip(img * 255.0 * prng.uniform(0.93, 1.03), 0.0, 255.0).astype(np.uint8)
    return Image.fromarray(out)
