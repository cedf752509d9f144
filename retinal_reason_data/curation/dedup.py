"""Exact and near-duplicate images across cases and sources, the copy of each cluster that is kept, and the
clusters whose labels disagree.

- Exact: the same bytes (one SHA-256), or the same pixels after decoding (checked by decoding both files in
  full, only for candidate pairs of equal size that the hash already matched).
- Near: `near_hash` within `near_threshold` bits and `detail_hash` within `detail_threshold` bits, in the
  original orientation or, with `orientations`, after any flip or quarter turn (`fieldhash.orient`), all of
  them found in one search (`orbit_hamming`). Two eyes of one patient (same pseudonym, different eyes) are never
  duplicates, mirrored or not.
- A cluster is a connected set of matched images. The kept image is the first by the recipe's criteria
  (source priority, resolution, quality; then case id); a case is dropped when none of its images is kept,
  i.e. when everything it shows is already shown by a kept case. Every case of a cluster is linked for the
  splits, dropped or not.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retinal_reason_data.curation.copy_candidates import copy_candidates, signature_matrix
from retinal_reason_data.curation.filters import normalised_sharpness
from retinal_reason_data.curation.hamming import hex_to_bytes, near_pairs, popcount_distance
from retinal_reason_data.curation.orbit_hamming import Group, orbit_pairs
from retinal_reason_data.ingest.fieldhash import ORIENTATIONS, orientation_map
from retinal_reason_data.ingest.imaging import ImageError, open_image
from retinal_reason_data.recipe import DedupSpec
from retinal_reason_data.schema import Case, Eye, ImageRef

if TYPE_CHECKING:
    from retinal_reason_data.curation.copy_verification import CopyVerdict

log = logging.getLogger(__name__)

# the flips and quarter turns as signed permutations of the 256 bits of near_hash and detail_hash
ORIENTATION_GROUP = Group([orientation_map(name) for name in ORIENTATIONS])
# a near match in an orientation (a's hashes are b's turned by it) as `CopyVerdict` describes a copy: b is a
# mirrored left to right (or not), then turned counter-clockwise by this many degrees
ORIENTATION_GEOMETRY = {
    "identity": (0.0, False),
    "mirror": (0.0, True),
    "flip": (180.0, True),
    "rot180": (180.0, False),
    "transpose": (90.0, True),
    "rot90": (-90.0, False),
    "rot270": (90.0, False),
    "transverse": (-90.0, True),
}
_PIXEL_CHECK_BITS = 8  # equal-size pairs this close are decoded in full to test for identical pixels
_PARALLEL_FROM = 200_000  # images from which the search uses one process per core
_VERIFY_PARALLEL_FROM = 48  # candidate pairs from which copy verification uses one process per core


class UnionFind:
    """Disjoint sets over hashable keys, with path halving."""

    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, key: object) -> object:
        parent = self.parent.setdefault(key, key)
        while parent != key:
            grand = self.parent.setdefault(parent, parent)
            self.parent[key] = grand
            key, parent = parent, grand
        return key

    def union(self, a: object, b: object) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            # the smaller key becomes the root, so component ids do not depend on insertion order
            low, high = sorted((root_a, root_b), key=str)
            self.parent[high] = low

    def groups(self) -> dict[object, list[object]]:
        members: dict[object, list[object]] = defaultdict(list)
        for key in self.parent:
            members[self.find(key)].append(key)
        return members


@dataclass
class CaseInfo:
    """What deduplication needs to know of a case."""

    case_id: str
    source: str
    patient_id: str
    eye: Eye
    labels: tuple[str, ...]
    images: tuple[str, ...]  # sha256 of each image


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What deduplication needs of one image file: about 0.5 kB in memory, where its `ImageRef` takes 2.4."""

    sha256: str
    path: str
    width: int
    height: int
    near_hash: str | None
    detail_hash: str | None
    sharpness: float  # Laplacian variance over squared contrast (0 without quality measures)
    copy_hash: str | None = None


def image_facts(image: ImageRef) -> ImageFacts:
    return ImageFacts(
        image.sha256,
        image.path,
        image.width,
        image.height,
        image.near_hash,
        image.detail_hash,
        normalised_sharpness(image),
        image.copy_hash,
    )


@dataclass
class ImageInfo:
    """One distinct image file (by SHA-256) and the cases that show it."""

    ref: ImageFacts
    cases: set[str] = field(default_factory=set)
    unusable: set[str] = field(default_factory=set)  # cases in which it fails the image quality filters


@dataclass(frozen=True)
class Match:
    """Two distinct files that are one picture: by pixels, near (with distances and orientation), or a verified
    copy. Fields in the order of the catalog's `duplicate_matches` columns."""

    a: str
    b: str
    kind: str  # "pixels", "near" or "copy"
    near_distance: int
    detail_distance: int
    orientation: str  # the flip or quarter turn that turns b's hashes into a's ("identity" for a copy match)
    copy_kind: str | None = None  # "same_frame", "mirror", "rotation", "crop", "rotation+crop", ... (`CopyVerdict`)
    angle_deg: float | None = None  # b is a mirrored (if `mirrored`), then turned counter-clockwise by this
    scale: float | None = None  # pixels of b per pixel of a, where verification measured it
    mirrored: bool | None = None
    inliers: int | None = None  # verification's matched keypoints
    verification_score: float | None = None  # verification's decision statistic (0-1); None: not verified


@dataclass
class Cluster:
    """Connected duplicates, with the image kept and the cases it affects."""

    cluster_id: str
    images: list[str]
    kept_image: str
    cases: list[str]
    kept_cases: list[str]
    dropped_cases: list[str]
    sources: list[str]
    exact: bool  # every image has the same bytes or pixels as the kept one
    label_sets: dict[str, tuple[str, ...]]  # case id -> its labels

    @property
    def label_conflict(self) -> bool:
        return len({labels for labels in self.label_sets.values() if labels}) > 1


@dataclass
class DedupResult:
    exact_clusters: int = 0
    near_clusters: int = 0
    pixel_matches: int = 0
    dropped_cases: dict[str, str] = field(default_factory=dict)  # case id -> reason ("duplicate_image", ...)
    drop_details: dict[str, str] = field(default_factory=dict)
    linked_cases: list[list[str]] = field(default_factory=list)  # cases that share a cluster
    image_rows: list[dict[str, object]] = field(default_factory=list)
    match_rows: list[dict[str, object]] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)  # clusters spanning two or more cases
    cases: dict[str, CaseInfo] = field(default_factory=dict)  # every case seen, in its compact form
    copy_checks: int = 0  # candidate pairs put to copy verification
    copies_refused: int = 0  # of those, refused (two photographs, not one)

    @property
    def label_conflicts(self) -> list[Cluster]:
        return [cluster for cluster in self.clusters if cluster.label_conflict]


def case_info(case: Case) -> CaseInfo:
    labels = sorted({finding.code for finding in case.findings})
    if not labels and case.context.diagnosis:
        labels = [case.context.diagnosis.strip().lower()]
    return CaseInfo(
        case.case_id, case.source, case.patient_id, case.eye, tuple(labels), tuple(i.sha256 for i in case.images)
    )


def deduplicate(
    cases: Iterable[Case],
    spec: DedupSpec,
    image_usable: Callable[[Case, ImageRef], bool] = lambda case, image: True,
    pixel_digests: dict[str, str] | None = None,
    verify_near: bool = False,
) -> DedupResult:
    """Cluster the images of `cases` and choose what is kept (see the module docstring).

    `verify_near`: near matches too must pass copy verification (measured in benchmarks/dedup_copies.py).

    `image_usable` tells whether an image passes the quality filters (used by the `quality` keep criterion);
    `pixel_digests` (sha256 -> digest of decoded pixels) is read and extended, so callers can keep it.
    `cases` is read once, so it may stream from the catalog: the result keeps each case's `CaseInfo`.
    """
    infos: dict[str, CaseInfo] = {}
    images: dict[str, ImageInfo] = {}
    for case in cases:
        infos[case.case_id] = case_info(case)
        for image in case.images:
            entry = images.get(image.sha256)
            if entry is None:
                entry = images[image.sha256] = ImageInfo(image_facts(image))
            entry.cases.add(case.case_id)
            if not image_usable(case, image):
                entry.unusable.add(case.case_id)
    result = DedupResult(cases=infos)
    if not spec.enabled:
        return result
    shas = sorted(images)
    digests = pixel_digests if pixel_digests is not None else {}
    matches = _matches(shas, images, infos, spec, digests, result, verify_near)
    result.pixel_matches = sum(1 for m in matches if m.kind == "pixels")
    result.match_rows = [asdict(m) for m in matches]

    exact, near = UnionFind(), UnionFind()
    for sha in shas:
        exact.find(sha)
        near.find(sha)
    for match in matches:
        if images[match.a].cases == images[match.b].cases and len(images[match.a].cases) == 1:
            continue  # two pictures of one case: nothing to drop, the case is one group anyway
        near.union(match.a, match.b)
        if match.kind == "pixels":
            exact.union(match.a, match.b)
    exact_id = {sha: str(exact.find(sha))[:16] for sha in shas}
    rank = _ranker(spec, images, infos)
    kept_copies: set[tuple[str, str]] = set()  # (case id, sha256): the one copy kept of each cluster
    for root, members in sorted(near.groups().items(), key=lambda kv: str(kv[0])):
        shas_in = sorted(str(m) for m in members)
        owners = sorted(set().union(*(images[sha].cases for sha in shas_in)))
        keep_case, keep = min(((case, sha) for sha in shas_in for case in images[sha].cases), key=rank)
        kept_copies.add((keep_case, keep))
        cluster_id = str(root)[:16]
        for sha in shas_in:
            result.image_rows.append(
                {"sha256": sha, "exact_cluster": exact_id[sha], "near_cluster": cluster_id, "kept": sha == keep}
            )
        if len(owners) < 2:
            continue
        is_exact = len({exact_id[sha] for sha in shas_in}) == 1
        result.exact_clusters += is_exact
        result.near_clusters += not is_exact
        result.linked_cases.append(owners)
        result.clusters.append(
            Cluster(
                cluster_id=cluster_id,
                images=shas_in,
                kept_image=keep,
                cases=owners,
                kept_cases=[keep_case],
                dropped_cases=[],
                sources=sorted({infos[c].source for c in owners}),
                exact=is_exact,
                label_sets={c: infos[c].labels for c in owners},
            )
        )
    _choose_cases(result, infos, kept_copies, spec)
    return result


def _matches(
    shas: Sequence[str],
    images: dict[str, ImageInfo],
    infos: dict[str, CaseInfo],
    spec: DedupSpec,
    digests: dict[str, str],
    result: DedupResult,
    verify_near: bool = False,
) -> list[Match]:
    """Every matched pair of distinct files (a < b by SHA-256)."""
    missing = [images[sha].ref.path for sha in shas if not images[sha].ref.near_hash]
    if missing:
        raise ValueError(
            f"{len(missing)} images have no near_hash (fingerprinted by an older version), e.g. {missing[0]}: "
            "run `rrd ingest RECIPE` to fingerprint them again"
        )
    if len(shas) < 2:
        return []
    near = hex_to_bytes([images[sha].ref.near_hash or "" for sha in shas])
    detail = hex_to_bytes([images[sha].ref.detail_hash or "" for sha in shas])
    workers = None if len(shas) >= _PARALLEL_FROM else 1
    found: dict[tuple[int, int], Match] = {}
    for a, b, d_near, d_detail, orientation in _near_matches(near, detail, spec, workers):
        if not _other_eye(images[shas[a]], images[shas[b]], infos):
            angle, mirrored = ORIENTATION_GEOMETRY[orientation]
            # what the hashes tell of the copy: its flip or quarter turn (not whether it is cropped or re-framed)
            kind = "+".join(part for part, present in (("mirror", mirrored), ("rotation", angle != 0)) if present)
            found[(a, b)] = Match(
                shas[a], shas[b], "near", d_near, d_detail, orientation, kind or None, angle, None, mirrored
            )
    matches = []
    for key in sorted(found):
        match = found[key]
        if match.orientation == "identity" and match.near_distance <= _PIXEL_CHECK_BITS:
            first, second = images[match.a].ref, images[match.b].ref
            if (first.width, first.height) == (second.width, second.height):
                digest = _digest(first, digests)
                if digest is not None and digest == _digest(second, digests):
                    match = Match(match.a, match.b, "pixels", 0, 0, "identity", "same_frame", 0.0, 1.0, False)
        matches.append(match)
    if spec.verify_copies and verify_near:
        matches = _verified_near(matches, images, spec, result)
    if spec.verify_copies:
        matches = sorted(
            matches + _copy_matches(matches, shas, images, infos, spec, near, detail, result, workers),
            key=lambda m: (m.a, m.b),
        )
    return matches


def _copy_matches(
    matches: list[Match],
    shas: Sequence[str],
    images: dict[str, ImageInfo],
    infos: dict[str, CaseInfo],
    spec: DedupSpec,
    near: np.ndarray,
    detail: np.ndarray,
    result: DedupResult,
    workers: int | None,
) -> list[Match]:
    """The copies the field hashes miss: copy-signature candidates that no match already links (directly or
    through others) and that are not two eyes of one patient, confirmed by copy verification."""
    signatures, rows = signature_matrix([images[sha].ref.copy_hash for sha in shas])
    if len(rows) < len(shas):  # left out of this pass (the field hashes still searched them), and said so
        missing = next(images[sha].ref.path for sha in shas if not images[sha].ref.copy_hash)
        log.warning(
            "%d images have no copy_hash (fingerprinted before it existed), e.g. %s: their crops and turned copies "
            "are not searched; run `rrd ingest RECIPE` to fingerprint them again",
            len(shas) - len(rows),
            missing,
        )
    candidates = copy_candidates(signatures, spec.copy_threshold, workers=workers)
    index = {sha: k for k, sha in enumerate(shas)}
    linked = UnionFind()
    for match in matches:
        linked.union(index[match.a], index[match.b])
    pairs = [
        (a, b)
        for a, b in zip(rows[candidates.i].tolist(), rows[candidates.j].tolist(), strict=True)
        if linked.find(a) != linked.find(b) and not _other_eye(images[shas[a]], images[shas[b]], infos)
    ]
    result.copy_checks += len(pairs)
    if not pairs:
        return []
    # OpenCV is loaded only when a pair needs verifying (so the near search's forked workers never carry it)
    from retinal_reason_data.curation.copy_verification import limits_of
    from retinal_reason_data.curation.verify_pairs import verify_pairs

    paths = [images[sha].ref.path for sha in shas]
    parallel = None if len(pairs) >= _VERIFY_PARALLEL_FROM else 1
    verdicts = verify_pairs(pairs, paths, limits_of(spec), workers=parallel)
    found = []
    for (a, b), verdict in zip(pairs, verdicts, strict=True):
        if not verdict.is_copy:
            result.copies_refused += 1
            continue
        d_near, d_detail, orientation = _closest_orientation(near, detail, a, b)
        found.append(_with_verdict(Match(shas[a], shas[b], "copy", d_near, d_detail, orientation), verdict))
    return found


def _closest_orientation(near: np.ndarray, detail: np.ndarray, a: int, b: int) -> tuple[int, int, str]:
    """The hash distances of a pair in the orientation where `near_hash` is closest (for the record)."""
    turned = [ORIENTATION_GROUP.apply(near[b : b + 1], e)[0] for e in range(len(ORIENTATIONS))]
    distances = [int(popcount_distance(near[a], t)) for t in turned]
    element = int(np.argmin(distances))
    d_detail = int(popcount_distance(detail[a], ORIENTATION_GROUP.apply(detail[b : b + 1], element)[0]))
    return distances[element], d_detail, ORIENTATIONS[element]


def _verified_near(
    matches: list[Match], images: dict[str, ImageInfo], spec: DedupSpec, result: DedupResult
) -> list[Match]:
    """Near matches kept only where copy verification confirms them, with its measures."""
    from retinal_reason_data.curation.copy_verification import limits_of
    from retinal_reason_data.curation.verify_pairs import verify_pairs

    near = [m for m in matches if m.kind == "near"]
    paths = sorted({images[sha].ref.path for m in near for sha in (m.a, m.b)})
    place = {path: k for k, path in enumerate(paths)}
    pairs = [(place[images[m.a].ref.path], place[images[m.b].ref.path]) for m in near]
    parallel = None if len(pairs) >= _VERIFY_PARALLEL_FROM else 1
    verdicts = iter(verify_pairs(pairs, paths, limits_of(spec), workers=parallel))
    result.copy_checks += len(near)
    kept = []
    for match in matches:
        if match.kind != "near":
            kept.append(match)
            continue
        verdict = next(verdicts)
        if verdict.is_copy:
            kept.append(_with_verdict(match, verdict))
        else:
            result.copies_refused += 1
    return kept


def _with_verdict(match: Match, verdict: CopyVerdict) -> Match:
    return replace(
        match,
        copy_kind=verdict.kind,
        angle_deg=verdict.angle_deg,
        scale=verdict.scale,
        mirrored=verdict.mirrored,
        inliers=verdict.inliers,
        verification_score=verdict.score,
    )


def _near_matches(
    near: np.ndarray, detail: np.ndarray, spec: DedupSpec, workers: int | None
) -> list[tuple[int, int, int, int, str]]:
    """Pairs (a < b, near distance, detail distance, orientation) within both thresholds in some orientation
    (`hash(a)` close to `hash(b)` turned by it); of several, the one with the smallest sum of distances (the first
    in `ORIENTATIONS` on ties). All orientations are searched in one pass (`orbit_hamming`)."""
    if spec.orientations:
        pairs = orbit_pairs(near, spec.near_threshold, ORIENTATION_GROUP, workers=workers)
        elements = range(len(ORIENTATIONS))
    else:
        pairs = near_pairs(near, spec.near_threshold, workers=workers)
        elements = range(1)
    i, j = pairs.i, pairs.j
    if len(i) == 0:
        return []
    far = np.iinfo(np.int32).max
    best_sum = np.full(len(i), far, dtype=np.int64)
    best = np.zeros((3, len(i)), dtype=np.int64)  # near distance, detail distance, element
    for element in elements:
        near_b = ORIENTATION_GROUP.apply(near[j], element) if element else near[j]
        detail_b = ORIENTATION_GROUP.apply(detail[j], element) if element else detail[j]
        d_near, d_detail = popcount_distance(near[i], near_b), popcount_distance(detail[i], detail_b)
        total = np.where((d_near <= spec.near_threshold) & (d_detail <= spec.detail_threshold), d_near + d_detail, far)
        better = total < best_sum
        best_sum[better] = total[better]
        best[:, better] = np.stack([d_near, d_detail, np.full(len(i), element)])[:, better]
    keep = best_sum < far
    rows = zip(i[keep].tolist(), j[keep].tolist(), *best[:, keep].tolist(), strict=True)
    return [(a, b, d_near, d_detail, ORIENTATIONS[element]) for a, b, d_near, d_detail, element in rows]


def _other_eye(first: ImageInfo, second: ImageInfo, infos: dict[str, CaseInfo]) -> bool:
    """Both images belong only to cases of one patient (pseudonyms are keyed by patient namespace), and their
    eyes are known and differ."""
    cases = [infos[c] for c in first.cases | second.cases]
    patients = {c.patient_id for c in cases}
    if len(patients) != 1:
        return False
    eyes_a = {infos[c].eye for c in first.cases}
    eyes_b = {infos[c].eye for c in second.cases}
    known = {Eye.LEFT, Eye.RIGHT}
    return len(eyes_a) == 1 and len(eyes_b) == 1 and eyes_a <= known and eyes_b <= known and eyes_a != eyes_b


def pixel_digest(path: str | Path) -> str | None:
    """SHA-256 of the decoded pixels (after EXIF orientation), with mode and size; None if unreadable."""
    try:
        data = Path(path).read_bytes()
        image = open_image(data, path)
    except (OSError, ImageError):
        return None
    header = f"{image.mode}:{image.width}x{image.height}:".encode()
    return hashlib.sha256(header + image.tobytes()).hexdigest()


def _digest(image: ImageFacts, digests: dict[str, str]) -> str | None:
    if image.sha256 not in digests:
        digest = pixel_digest(image.path)
        if digest is None:
            return None
        digests[image.sha256] = digest
    return digests[image.sha256]


def _ranker(
    spec: DedupSpec, images: dict[str, ImageInfo], infos: dict[str, CaseInfo]
) -> Callable[[tuple[str, str]], tuple[object, ...]]:
    """Sort key of one copy (case id, sha256) of a clustered image: smaller is kept first."""
    priority = {name: index for index, name in enumerate(spec.source_priority)}

    def rank(copy: tuple[str, str]) -> tuple[object, ...]:
        case_id, sha = copy
        entry = images[sha]
        key: list[object] = []
        for criterion in spec.keep:
            if criterion == "source_priority":
                key.append(priority.get(infos[case_id].source, len(priority)))
            elif criterion == "resolution":
                key.append(-entry.ref.width * entry.ref.height)
            else:
                key.extend([case_id in entry.unusable, -round(entry.ref.sharpness, 6)])
        return (*key, case_id, sha)

    return rank


def _choose_cases(
    result: DedupResult, infos: dict[str, CaseInfo], kept_copies: set[tuple[str, str]], spec: DedupSpec
) -> None:
    """Drop the cases none of whose images is a kept copy; with on_label_conflict 'drop', every case of such a
    cluster."""
    kept_with = {sha: cluster.kept_cases for cluster in result.clusters for sha in cluster.images}
    for case_id, info in infos.items():
        if info.images and not any((case_id, sha) in kept_copies for sha in info.images):
            kept = sorted({c for sha in info.images for c in kept_with.get(sha, []) if c != case_id})
            result.dropped_cases[case_id] = "duplicate_image"
            result.drop_details[case_id] = f"its images are duplicates of images kept with {', '.join(kept[:3])}"
    if spec.on_label_conflict == "drop":
        for cluster in result.label_conflicts:
            for case_id in cluster.cases:
                result.dropped_cases[case_id] = "label_conflict"
                result.drop_details[case_id] = f"duplicates in cluster {cluster.cluster_id} disagree on labels"
    for cluster in result.clusters:
        cluster.dropped_cases = [c for c in cluster.cases if c in result.dropped_cases]
        cluster.kept_cases = [c for c in cluster.kept_cases if c not in result.dropped_cases]
