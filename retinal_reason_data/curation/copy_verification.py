"""Verification of a candidate pair: is image B a copy of image A, and what kind of copy?

A copy (a re-release of one photograph: re-encoded, resampled, cropped, padded, turned, mirrored, its contrast
stretched) shows the same pixels as its original under a 2-D affine map. A re-take of the same eye (another
visit, another frame of an angiogram) shows the same retina at best, with its own noise and dye, and with the
camera's field of view and shading in another place on the retina; the other eye or another patient shows
another retina (though the same camera's dust spots and field edge may line up).

- `copy_features(path)` reads one image once: ORB keypoints and descriptors inside its field of view at 512 px,
  a 192 px grey thumbnail and the outline of the field (about 40 kB), and the 512 px work image, from which the
  keypoints of its mirror image (ORB is not mirror invariant) are found the first time a pair needs them
  (`CopyFeatures.nbytes`). It never raises and never returns None: an image that cannot
  be read or gives too few features has `problem` set, which its verdicts give as their reason.
- `verify_copy(a, b)` matches the descriptors (ratio test), fits an affine map with RANSAC and refits it by least
  squares on its inliers (a crop resized back scales the two axes differently: more than a similarity), warps
  one thumbnail onto the other and correlates them, raw and as ranks: band-passed over the fields' common
  interior (the retina's detail: refuses another retina however the features lined up), band-passed along the
  fields' edges where one is in view, and low-passed (the shading) where none is. The edge and the shading belong
  to the camera: in a copy they move with the retina, in a re-take they do not, which refuses a re-take even
  where the retina matches.

The verdict names the kind of copy (same frame, mirror, rotation and its angle, crop, re-framing, rescale and its
scale) or why it is not one. Verdicts are symmetric (the pair is measured in one order whichever is asked) and do
not depend on OpenCV's thread count (ORB, the matcher and RANSAC give the same output on 1 or 4 threads: a test
checks it; RANSAC draws from OpenCV's fixed-seed generator). Margins and cost: benchmarks/copy_verification.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from retinal_reason_data.ingest.imaging import ImageError, open_image, read_image_file
from retinal_reason_data.recipe import DedupSpec

WORK_SIDE = 512  # keypoints are found on the grey image resized to this longest side
THUMB_SIDE = 192  # the photometric checks compare thumbnails of this longest side
FEATURES = 500  # ORB keypoints kept per image, and as many of its mirror image
MIN_FEATURES = 12  # an image with fewer keypoints in its field cannot be verified
DIRECT_SETTLES = 2  # a direct fit with this many times `min_inliers` is taken without fitting the mirror image
# (a mirror-image fit of an unmirrored copy finds chance inliers only; ORB of the mirror image is a third of the
# cost of a pair of new images: benchmarks/README.md, "Copy verification")
FAST_THRESHOLDS = (10, 3)  # ORB's corner threshold, and the lower one tried where it finds under FEATURES / 4
RIM_SHARE = 0.03  # keypoints this close to the field's edge (share of the work side) are dropped: the edge
# belongs to the camera, and two photographs by one camera share it
RATIO = 0.8  # Lowe's ratio test on Hamming distances
RANSAC_PX = 4.0  # inlier distance of the affine fit, in work pixels
REFIT_PX = (4.0, 3.0, 2.0, 2.0)  # the fit is then redone on the matches within these distances
RIM_BAND = 3  # thumbnail pixels either side of a field's edge compared by the rim check
MIN_RIM_PIXELS = 150  # fewer rim pixels in view than this: no rim check
TURNED_DEG = 0.5  # a fitted angle beyond this is a rotation
RESCALED = 0.02  # a scale beyond 1 +- this is a rescale
CROP_SHARE = 0.005  # a share of one field beyond this outside the other image's frame: a crop
REFRAME_SHARE = 0.02  # a share of one frame beyond this outside the other frame (and no crop): a re-framing
_SCALE_FACTOR = 1.2  # ORB's pyramid step (its default)
SURROUND = 0.3  # the surround of a field of view is darker than this share of the field's mean grey
FIELD_LEVELS = ((0.08, 15), (0.25, 7))  # shares of the way from dark to bright tried as the field's edge, each
# with the size of the opening (thumbnail pixels) that keeps a speckled surround out of the field


class CopyLimits(NamedTuple):
    """The thresholds of `verify_copy` (recipe keys `dedup.copy_min_inliers`, ...; see `limits_of`)."""

    min_inliers: int = 12  # RANSAC inliers of the affine fit
    min_agreement: float = 0.88  # band-passed agreement over the fields' common interior
    min_rim_agreement: float = 0.75  # band-passed agreement along the fields' edges, where one is in view
    min_illumination_agreement: float = 0.99  # low-passed agreement over the interior, where no edge is in view
    min_overlap: float = 0.2  # share of the smaller field that the other image covers


DEFAULT_LIMITS = CopyLimits()


@dataclass(frozen=True, slots=True, eq=False)
class CopyFeatures:
    """What verification needs of one image, computed once: keypoints (work pixels, float32 n x 2) and their
    ORB descriptors (uint8 n x 32), a grey thumbnail, the outline of its field in thumbnail pixels, and `problem`
    when the image cannot be verified (unreadable, or too few features). The keypoints of its mirror image
    (mapped back to the unmirrored frame) are found from the kept work image the first time a pair needs them
    (`mirror_points`, `mirror_descriptors`): only a mirrored copy or a pair the direct fit does not settle does."""

    path: str
    size: tuple[int, int]  # width, height of the file (after its EXIF orientation)
    work_size: tuple[int, int]
    points: np.ndarray
    descriptors: np.ndarray
    thumbnail: np.ndarray
    outline: np.ndarray  # the field's convex hull in thumbnail pixels (float32 k x 2)
    problem: str | None = None
    work: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0), np.uint8), repr=False)
    mirror: tuple[np.ndarray, np.ndarray] | None = dataclasses.field(default=None, repr=False)

    @property
    def mirror_points(self) -> np.ndarray:
        """Keypoints of the mirror image in the unmirrored frame (found on first use)."""
        return self._mirrored()[0]

    @property
    def mirror_descriptors(self) -> np.ndarray:
        """ORB descriptors of the mirror image's keypoints (found on first use)."""
        return self._mirrored()[1]

    def _mirrored(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mirror is None:  # found once, then the work image is let go
            found = _mirror_orb(self.work, self.thumbnail, self.outline) if self.work.size else _no_keypoints()
            object.__setattr__(self, "mirror", found)
            object.__setattr__(self, "work", np.zeros((0, 0), np.uint8))
        return self.mirror  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (what a cache of features costs per image, less Python's overhead)."""
        arrays = [self.points, self.descriptors, self.thumbnail, self.outline, self.work, *(self.mirror or ())]
        return sum(a.nbytes for a in arrays)


class CopyVerdict(BaseModel):
    """Whether B is a copy of A, and how: B is A mirrored left to right (`mirrored`), then turned
    counter-clockwise by `angle_deg` (as PIL's `rotate`), then scaled by `scale` (pixels of B per pixel of A),
    cropped or re-framed. `kind` names the parts: "same_frame" (re-encoded or resampled only), else parts joined
    by "+" out of mirror, rotation, crop (field content of one is missing from the other), reframe (the frames
    differ, padding or background cut off), rescale; "" when not a copy. `score` is the lower of the two
    agreements that decide: the interior one, and the rim one where a field edge is in view (else the
    illumination one); each has its own threshold (`CopyLimits`)."""

    model_config = ConfigDict(frozen=True)

    is_copy: bool
    kind: str = ""
    angle_deg: float = 0.0
    scale: float = 1.0
    mirrored: bool = False
    inliers: int = 0
    agreement: float = 0.0  # band-passed correlation of the aligned thumbnails over the fields' interior
    rim_agreement: float | None = None  # the same along the fields' edges; None where no edge is in view
    illumination_agreement: float = 0.0  # low-passed correlation over the interior (shading, vignetting)
    overlap: float = 0.0  # share of the smaller field that the other image covers
    score: float = 0.0
    reason: str | None = None


def limits_of(spec: DedupSpec) -> CopyLimits:
    """The `CopyLimits` of a recipe's `dedup` section."""
    return CopyLimits(
        min_inliers=spec.copy_min_inliers,
        min_agreement=spec.copy_min_agreement,
        min_rim_agreement=spec.copy_min_rim_agreement,
        min_illumination_agreement=spec.copy_min_illumination_agreement,
        min_overlap=spec.copy_min_overlap,
    )


# ---------------------------------------------------------------------------------------------- features


def _grey(image: Image.Image) -> np.ndarray:
    """Grey levels (luma) as uint8: a grey copy of a colour photograph has the same."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return np.asarray(image if image.mode == "L" else image.convert("L"))


def _resized(grey: np.ndarray, side: int) -> np.ndarray:
    height, width = grey.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _pixel_scale(size: tuple[int, int], resized: np.ndarray) -> np.ndarray:
    """The 3x3 map from the pixels of an image of `size` (width, height) to its resized copy's (pixel centres)."""
    sx, sy = resized.shape[1] / size[0], resized.shape[0] / size[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])


def _mapped(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points (k x 2) through a 2x3 affine map."""
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


_EXTERNAL = (cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)


def field_outline(grey: np.ndarray) -> np.ndarray:
    """The convex hull (k x 2 float32, pixel coordinates) of the field of view: the largest region lit above a
    level between the 1st and the 90th percentile of grey (8 %, or 25 % where the lower level lets a speckled
    surround in), dark lesions inside it included; the whole frame where no dark surround is found (an image
    cropped inside the field, an OCT scan). The levels scale with brightness, so the edge of a brighter or darker
    copy is found at the same place."""
    height, width = grey.shape
    frame = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    cumulative = np.cumsum(np.bincount(grey.ravel(), minlength=256)) / grey.size
    low, high = int(np.searchsorted(cumulative, 0.01)), int(np.searchsorted(cumulative, 0.90))
    if high - low < 8:
        return frame
    for share, opening in FIELD_LEVELS:
        lit = (grey > low + share * (high - low)).astype(np.uint8)
        # opened: a speckled surround (some releases amplify the noise of the black) does not join the field
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (opening, opening))
        contours, _ = cv2.findContours(cv2.morphologyEx(lit, cv2.MORPH_OPEN, kernel), *_EXTERNAL)
        if not contours:
            continue
        hull = cv2.convexHull(max(contours, key=cv2.contourArea)).reshape(-1, 2).astype(np.float32)
        inside = _fill(hull, grey.shape).astype(bool)
        # a field of view has a dark surround; in an image without one the darker parts are content
        if np.count_nonzero(~inside) >= 0.01 * grey.size and grey[~inside].mean() <= SURROUND * grey[inside].mean():
            return hull
    return frame


def _fill(outline: np.ndarray, shape: tuple[int, int], inset: int = 0) -> np.ndarray:
    """A uint8 0/1 mask of the convex polygon `outline` (pixel coordinates) on a canvas of `shape`, less a band
    of `inset` pixels inside its edge."""
    mask = np.zeros(shape, np.uint8)
    polygon = np.round(outline * 16).astype(np.int32)
    cv2.fillConvexPoly(mask, polygon, 1, lineType=cv2.LINE_8, shift=4)
    if inset > 0:
        cv2.polylines(mask, [polygon], True, 0, thickness=2 * inset + 1, lineType=cv2.LINE_8, shift=4)
    return mask


_CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))


def _orb(work: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORB keypoints (float32 n x 2, pixel centres) and descriptors (uint8 n x 32) of `work` within `mask`."""
    mask = mask * np.uint8(255)  # OpenCV 4's ORB keeps only mask values above 254 on its coarser levels
    for threshold in FAST_THRESHOLDS:  # a dim or hazy photograph gets a lower corner threshold
        orb = cv2.ORB_create(nfeatures=FEATURES, scaleFactor=_SCALE_FACTOR, fastThreshold=threshold)
        keypoints, descriptors = orb.detectAndCompute(work, mask)
        if len(keypoints) >= FEATURES // 4:
            break
    if descriptors is None or not keypoints:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    points = np.array([k.pt for k in keypoints], dtype=np.float32)
    # ORB scales a keypoint found at pyramid level k by 1.2^k without the half-pixel shift of pixel centres:
    # uncorrected, a turned copy's points are off by up to 1.3 px, and its fitted angle and scale with them
    level_scale = np.array([_SCALE_FACTOR**k.octave for k in keypoints], dtype=np.float32)
    points += (0.5 * (level_scale - 1))[:, None]
    return points, np.ascontiguousarray(descriptors, dtype=np.uint8)


def _no_keypoints() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)


def _no_features(path: str, size: tuple[int, int], problem: str) -> CopyFeatures:
    points, descriptors = _no_keypoints()
    return CopyFeatures(path, size, (0, 0), points, descriptors, np.zeros((0, 0), np.uint8), points, problem)


def _work_mask(work_shape: tuple[int, int], thumbnail: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """Where keypoints are looked for: the field (its outline mapped to work pixels) less a band at its edge."""
    to_work = np.linalg.inv(_pixel_scale(work_shape[::-1], thumbnail))[:2]
    return _fill(_mapped(outline, to_work), work_shape, round(RIM_SHARE * WORK_SIDE))


def _mirror_orb(work: np.ndarray, thumbnail: np.ndarray, outline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORB keypoints of the mirror image of `work`, mapped back to the unmirrored frame, and their descriptors."""
    mask = _work_mask(work.shape, thumbnail, outline)
    points, descriptors = _orb(np.ascontiguousarray(work[:, ::-1]), np.ascontiguousarray(mask[:, ::-1]))
    points[:, 0] = work.shape[1] - 1 - points[:, 0]
    return points, descriptors


def features_of_image(image: Image.Image | np.ndarray, path: str = "<image>") -> CopyFeatures:
    """`copy_features` of an image already decoded: a PIL image, or grey levels as a 2-D uint8 array."""
    grey = image if isinstance(image, np.ndarray) else _grey(image)
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError(f"{path}: expected grey levels as a 2-D uint8 array, got {grey.dtype} {grey.shape}")
    height, width = grey.shape
    if min(height, width) < 16:
        return _no_features(path, (width, height), f"{path}: {width}x{height} pixels is too small to verify")
    resized = _resized(grey, WORK_SIDE)
    work = _CLAHE.apply(resized)
    thumbnail = _resized(resized, THUMB_SIDE)
    outline = field_outline(thumbnail)
    points, descriptors = _orb(work, _work_mask(work.shape, thumbnail, outline))
    problem = None
    if len(points) < MIN_FEATURES:
        problem = f"{path}: only {len(points)} keypoints in its field (blank, tiny or featureless image)"
    return CopyFeatures(
        path=path,
        size=(width, height),
        work_size=(work.shape[1], work.shape[0]),
        points=points,
        descriptors=descriptors,
        thumbnail=thumbnail,
        outline=outline,
        problem=problem,
        work=work,
    )


def copy_features(path: str | Path) -> CopyFeatures:
    """Keypoints, descriptors, thumbnail and field outline of one image file (JPEGs decoded at a reduced DCT
    scale where that still gives the work size). A file that cannot be read gives features with `problem` set
    and no keypoints: its verdicts say why, nothing raises."""
    try:
        data = read_image_file(path)
        image = open_image(data, path, reduce_to=WORK_SIDE)
    except ImageError as exc:
        return _no_features(str(path), (0, 0), str(exc))
    features = features_of_image(image, str(path))
    with Image.open(io.BytesIO(data)) as header:  # the size of the file, not of its reduced decode
        width, height = header.size
        if header.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientation: turned a quarter
            width, height = height, width
    return dataclasses.replace(features, size=(width, height))


# ---------------------------------------------------------------------------------------------- geometry

_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)


def _fit(a_points: np.ndarray, a_desc: np.ndarray, b_points: np.ndarray, b_desc: np.ndarray) -> tuple[np.ndarray, int]:
    """The affine map (2x3) from B's work pixels to A's fitted on ratio-test matches, and its inlier count
    (an identity map and 0 when there is nothing to fit)."""
    nothing = np.eye(2, 3), 0
    if len(a_desc) < 2 or len(b_desc) < 2:
        return nothing
    pairs = _MATCHER.knnMatch(b_desc, a_desc, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 3:
        return nothing
    source = b_points[[m.queryIdx for m in good]]
    target = a_points[[m.trainIdx for m in good]]
    matrix, inliers = cv2.estimateAffine2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000, confidence=0.995
    )
    if matrix is None or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:, :2])) < 1e-6:
        return nothing
    return _refined(matrix, source, target)


def _residuals(matrix: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.linalg.norm(source @ matrix[:, :2].T + matrix[:, 2] - target, axis=1)


def _refined(matrix: np.ndarray, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, int]:
    """RANSAC's map refitted by least squares on its inliers at shrinking distances (RANSAC stops at the first
    good-enough sample: a map 1 % off in scale still has most matches within 4 px), and its inliers at RANSAC_PX."""
    ones = np.ones((len(source), 1))
    for distance in REFIT_PX:
        near = _residuals(matrix, source, target) < distance
        if np.count_nonzero(near) < 6:
            break
        solution, *_ = np.linalg.lstsq(np.hstack([source[near], ones[near]]), target[near], rcond=None)
        if not np.all(np.isfinite(solution)) or abs(np.linalg.det(solution[:2].T)) < 1e-6:
            break
        matrix = solution.T
    return matrix, int(np.count_nonzero(_residuals(matrix, source, target) < RANSAC_PX))


def _decompose(linear: np.ndarray) -> tuple[float, float, bool]:
    """(angle, scale, mirrored) of a 2x2 map from A's pixels to B's read as: mirror left to right (when
    mirrored), turn counter-clockwise on screen by `angle` degrees, scale. Image rows point down, so a
    counter-clockwise turn is [[cos, sin], [-sin, cos]]."""
    mirrored = bool(np.linalg.det(linear) < 0)
    turn = linear @ np.diag([-1.0, 1.0]) if mirrored else linear
    u, singular, vt = np.linalg.svd(turn)
    rotation = u @ vt  # the closest rotation (polar decomposition)
    angle = math.degrees(math.atan2(rotation[0, 1], rotation[0, 0]))
    return angle, float(math.sqrt(singular[0] * singular[1])), mirrored


def _frame(shape: tuple[int, ...]) -> np.ndarray:
    """The corners of a canvas of `shape` (rows, columns) in continuous pixel coordinates."""
    height, width = shape[:2]
    return np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]], np.float32)


def _outside(polygon: np.ndarray, window: np.ndarray) -> float:
    """The share of the convex `polygon`'s area outside the convex `window`."""
    area = cv2.contourArea(polygon)
    if area <= 0:
        return 0.0
    inside, _ = cv2.intersectConvexConvex(polygon, window)
    return max(0.0, 1.0 - inside / area)


def _kind(a: CopyFeatures, b: CopyFeatures, thumb_map: np.ndarray, angle: float, scale: float, mirrored: bool) -> str:
    """The parts of a copy's kind, from the map of B's thumbnail onto A's."""
    parts = ["mirror"] if mirrored else []
    quarter = abs(angle / 90 - round(angle / 90)) * 90 <= TURNED_DEG
    if abs(angle) > TURNED_DEG:
        parts.append("rotation")
    b_frame, b_field = _mapped(_frame(b.thumbnail.shape), thumb_map), _mapped(b.outline, thumb_map)
    a_frame = _frame(a.thumbnail.shape)
    if max(_outside(a.outline, b_frame), _outside(b_field, a_frame)) > CROP_SHARE:
        parts.append("crop")
    elif quarter and max(_outside(a_frame, b_frame), _outside(b_frame, a_frame)) > REFRAME_SHARE:
        parts.append("reframe")  # a turn by other angles re-frames as a matter of course
    if abs(scale - 1) > RESCALED:
        parts.append("rescale")
    return "+".join(parts) or "same_frame"


# ---------------------------------------------------------------------------------------------- photometry


def _masked_blur(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `image` over the pixels where `weight` is 1 (normalised convolution)."""
    blurred = cv2.GaussianBlur(image * weight, (0, 0), sigma)
    return blurred / np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-3)


def _bands(thumbnail: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels band-passed (difference of Gaussians, sigma 1 and 4 thumbnail pixels: vessels, lesions, the
    field's edge) and low-passed (sigma 4: illumination, shading), over the pixels `inside` both frames: the
    border of a cropped or turned frame is no edge."""
    image, weight = thumbnail.astype(np.float32), inside.astype(np.float32)
    low = _masked_blur(image, weight, 4.0)
    return _masked_blur(image, weight, 1.0) - low, low


def _ranks(grey: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Grey levels replaced by their rank (0-1) among the pixels of `region`: any increasing remap of the levels
    (contrast stretch, gamma, equalisation, another mix of the colour channels) gives the same ranks."""
    counts = np.bincount(grey[region > 0], minlength=256).astype(np.float64)
    below = np.cumsum(counts) - counts / 2
    return (below / max(1.0, counts.sum())).astype(np.float32)[grey]


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    return float(np.dot(x, y)) / denominator if denominator > 0 else 0.0


_RIM_KERNEL = np.ones((2 * RIM_BAND + 1, 2 * RIM_BAND + 1), np.uint8)


def _edge_band(field: np.ndarray) -> np.ndarray:
    """The pixels within RIM_BAND of the edge of a 0/1 field mask."""
    return cv2.morphologyEx(field, cv2.MORPH_GRADIENT, _RIM_KERNEL)


class Agreement(NamedTuple):
    """How well two aligned thumbnails agree (correlations, -1 to 1), and how much of the fields they share."""

    interior: float  # band-passed, over the fields' common interior
    rim: float | None  # band-passed, along the fields' edges; None where no edge is in view
    illumination: float  # low-passed, over the common interior
    overlap: float  # share of the smaller field that the common interior covers


def _agreement(a: CopyFeatures, b: CopyFeatures, thumb_map: np.ndarray) -> Agreement:
    """The agreement of A's thumbnail and B's warped onto it (or the other way round: the image that shows the
    field larger is warped onto the other one)."""
    if np.linalg.det(thumb_map[:, :2]) < 1:
        a, b, thumb_map = b, a, cv2.invertAffineTransform(thumb_map)
    shape = a.thumbnail.shape
    warped = cv2.warpAffine(b.thumbnail, thumb_map, (shape[1], shape[0]), flags=cv2.INTER_LINEAR)
    frames = _fill(_mapped(_frame(b.thumbnail.shape), thumb_map), shape, inset=1)  # within A's canvas
    frames[[0, -1], :] = 0
    frames[:, [0, -1]] = 0
    a_field, b_field = _fill(a.outline, shape), _fill(_mapped(b.outline, thumb_map), shape)
    interior = (_fill(a.outline, shape, inset=2) & _fill(_mapped(b.outline, thumb_map), shape, inset=2) & frames) > 0
    smaller = min(cv2.contourArea(a.outline), cv2.contourArea(_mapped(b.outline, thumb_map)))
    overlap = min(1.0, np.count_nonzero(interior) / smaller) if smaller > 0 else 0.0
    if np.count_nonzero(interior) < 100:
        return Agreement(0.0, None, 0.0, overlap)
    edges = _edge_band(a_field) | _edge_band(b_field)
    rim = (edges & _fill(_mapped(_frame(b.thumbnail.shape), thumb_map), shape, inset=RIM_BAND + 1)) > 0
    rim[: RIM_BAND + 1], rim[-RIM_BAND - 1 :], rim[:, : RIM_BAND + 1], rim[:, -RIM_BAND - 1 :] = 0, 0, 0, 0
    # raw grey levels, and their ranks: a copy whose contrast was stretched, equalised or re-mixed from the colour
    # channels agrees in ranks, one high-passed (Ben Graham's preprocessing) in raw levels; the better counts
    inner, illumination = -1.0, -1.0
    rim_agreement = -1.0 if np.count_nonzero(rim) >= MIN_RIM_PIXELS else None
    for x, y in ((a.thumbnail, warped), (_ranks(a.thumbnail, frames), _ranks(warped, frames))):
        (x_band, x_low), (y_band, y_low) = _bands(x, frames), _bands(y, frames)
        inner = max(inner, _correlation(x_band[interior], y_band[interior]))
        illumination = max(illumination, _correlation(x_low[interior], y_low[interior]))
        if rim_agreement is not None:
            rim_agreement = max(rim_agreement, _correlation(x_band[rim], y_band[rim]))
    return Agreement(inner, rim_agreement, illumination, overlap)


# ---------------------------------------------------------------------------------------------- verdict


def verify_copy(a: CopyFeatures, b: CopyFeatures, limits: CopyLimits = DEFAULT_LIMITS) -> CopyVerdict:
    """Whether B is a copy of A (see the module's docstring), with what was measured either way. Symmetric:
    `verify_copy(b, a)` gives the same decision and statistics, with the inverse angle and scale."""
    for features in (a, b):
        if features.problem:
            return CopyVerdict(is_copy=False, reason=features.problem)
    if _order_key(b) < _order_key(a):  # matching and RANSAC are measured in one order whichever is asked
        return _inverse(_verify(b, a, limits))
    return _verify(a, b, limits)


def _order_key(features: CopyFeatures) -> bytes:
    return hashlib.blake2b(features.descriptors.tobytes() + features.points.tobytes(), digest_size=16).digest()


def _inverse(verdict: CopyVerdict) -> CopyVerdict:
    """The verdict of (B, A) from that of (A, B): a mirrored copy turned by t is undone by a mirror and the same
    turn, an unmirrored one by the opposite turn."""
    angle = verdict.angle_deg if verdict.mirrored else -verdict.angle_deg
    angle = 180.0 if angle <= -180 else angle
    return verdict.model_copy(update={"angle_deg": angle, "scale": round(1 / verdict.scale, 4)})


def _verify(a: CopyFeatures, b: CopyFeatures, limits: CopyLimits) -> CopyVerdict:
    work_map, inliers = _fit(a.points, a.descriptors, b.points, b.descriptors)
    if inliers < DIRECT_SETTLES * limits.min_inliers:  # else no mirror fit could beat it: not computed
        mirror = _fit(a.points, a.descriptors, b.mirror_points, b.mirror_descriptors)
        work_map, inliers = (work_map, inliers) if inliers >= mirror[1] else mirror
    if inliers < limits.min_inliers:
        return CopyVerdict(
            is_copy=False,
            inliers=inliers,
            reason=f"no common geometry: {inliers} RANSAC inliers < {limits.min_inliers}",
        )
    forward = cv2.invertAffineTransform(work_map)  # A's work pixels to B's
    angle, work_scale, mirrored = _decompose(forward[:, :2])
    scale = work_scale * (b.size[0] / b.work_size[0]) / (a.size[0] / a.work_size[0])
    thumb_map = _pixel_scale(a.work_size, a.thumbnail) @ np.vstack([work_map, [0, 0, 1]])
    thumb_map = (thumb_map @ np.linalg.inv(_pixel_scale(b.work_size, b.thumbnail)))[:2]
    agreement = _agreement(a, b, thumb_map)
    # where a field edge is in view it tells a re-take from a copy; where none is, the shading does (it belongs
    # to the camera too), but a high-passed copy has none left: it is verified only with an edge in view
    second = agreement.rim if agreement.rim is not None else agreement.illumination
    measured = {
        "angle_deg": round(angle, 2),
        "scale": round(scale, 4),
        "mirrored": mirrored,
        "inliers": inliers,
        "agreement": round(agreement.interior, 4),
        "rim_agreement": None if agreement.rim is None else round(agreement.rim, 4),
        "illumination_agreement": round(agreement.illumination, 4),
        "overlap": round(agreement.overlap, 4),
        "score": round(max(0.0, min(agreement.interior, second)), 4),
    }
    if agreement.overlap < limits.min_overlap:
        reason = f"the images share {agreement.overlap:.0%} of the smaller field < {limits.min_overlap:.0%}"
    elif agreement.rim is not None and agreement.rim < limits.min_rim_agreement:
        reason = (
            f"field edges disagree ({agreement.rim:.3f} < {limits.min_rim_agreement}): the same retina in another"
            " photograph"
        )
    elif agreement.interior < limits.min_agreement:
        reason = f"pixels disagree after alignment ({agreement.interior:.3f} < {limits.min_agreement}): another image"
    elif agreement.rim is None and agreement.illumination < limits.min_illumination_agreement:
        reason = (
            f"shading disagrees ({agreement.illumination:.3f} < {limits.min_illumination_agreement}, no field edge"
            " in view): the same retina in another photograph"
        )
    else:
        return CopyVerdict(is_copy=True, kind=_kind(a, b, thumb_map, angle, scale, mirrored), **measured)
    return CopyVerdict(is_copy=False, reason=reason, **measured)
