"""Copy verification on real photographs: the margins of its decision and its cost per image and per pair.

Positives (copies): every kind of `phantoms.copies.COPY_KINDS` made of EyePACS 256 px photographs and of
full-size photographs (CHASE_DB1, IDRiD, EyePACS camera originals, APTOS, HRF); attacks (a copy mirrored, turned,
cropped, shrunk and made grey at once; grey; green channel only; histogram-equalised; Ben Graham's high-pass
preprocessing; a third of the size); copies of rimless photographs (cropped inside the field, so no field edge
is in view); and the re-releases found in the real-data folder itself (EyePACS camera originals and their 256 px
EyeQ copies, one FFA frame released twice by its repository, one OCTDL B-scan filed under three patients).

Negatives: all left/right pairs of the EyeQ-labelled EyePACS set, random pairs of distinct patients, every pair
of CHASE_DB1 (14 left/right pairs among them) and of the EyePACS camera originals, every pair of FFA frames
(frames of one eye at other phases and times are the stand-in for repeat visits), the FFA pairs whose retina
matches cropped inside the field (rimless re-takes), and every pair of OCTDL B-scans (3 same-patient pairs).

    .venv/bin/python benchmarks/copy_verification.py [--realdata ../shared/realdata] [--eyepacs 300]
        [--full 90] [--distinct 2000] [--json out.json]

Prints per group the share verified, per statistic the weakest copy against the strongest non-copy (the margin
of each threshold), the kinds found per copy kind with the largest angle and scale errors, and the cost:
features per image (decoding included), verification per pair, bytes of features per image. OpenCV runs on one
thread (`cv2.setNumThreads(1)`: one process per core is how a pipeline would use it).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from retinal_reason_data.curation.copy_verification import (
    DEFAULT_LIMITS,
    CopyFeatures,
    CopyVerdict,
    copy_features,
    features_of_image,
    verify_copy,
)
from retinal_reason_data.phantoms.copies import COPY_KINDS, field_box, make_copy

FULL_SIZE = [
    "CHASEDB1/*.jpg",
    "IDRiD_segmentation_train/*.jpg",
    "EyePACS_kaggle_sample/*.jpeg",
    "EyeQ_EyePACS_originals/*.jpeg",
    "APTOS2019/grade_*/*.png",
    "HRF_fullres_VascX/*.jpg",
    "HRF_healthy_downscaled_milosz08/*.jpg",
]
RIMLESS_KINDS = ("photometric", "resample", "crop10", "rot10", "rot30", "mirror", "rot90")
# one B-scan under three patient ids in the OCTDL sample (seen by this benchmark, then by eye): copies
OCTDL_ONE_SCAN = {"vid_1258159_1", "vid_1416874_2", "vid_5203547_1"}
# the same frame twice in huapu4/FFA (re-encoded): a copy, not a negative
FFA_RELEASED_TWICE = {
    ("01.phase_identification/venous_phase/BRVO0594.jpg", "03.area_segmentation/voc_data/JPEGImages/11-3 _026.jpg")
}


@dataclass
class Timing:
    features: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    pairs: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    nbytes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class Record:
    group: str  # e.g. "copy:eyepacs256", "negative:left_right"
    kind: str  # copy kind, attack or negative kind
    verdict: CopyVerdict
    name: str
    expected: dict = field(default_factory=dict)


TIMING = Timing()


def _features(image: Image.Image | Path, label: str) -> CopyFeatures:
    started = time.process_time()
    features = copy_features(image) if isinstance(image, Path) else features_of_image(image)
    TIMING.features[label].append(time.process_time() - started)
    TIMING.nbytes[label].append(features.nbytes)
    return features


def _verify(a: CopyFeatures, b: CopyFeatures) -> CopyVerdict:
    started = time.process_time()
    verdict = verify_copy(a, b)
    TIMING.pairs["copy" if verdict.is_copy else "refused"].append(time.process_time() - started)
    return verdict


class Cache:
    """Features of files, computed once each."""

    def __init__(self, label: str) -> None:
        self.label, self.known = label, {}

    def __call__(self, path: Path) -> CopyFeatures:
        if path not in self.known:
            self.known[path] = _features(path, self.label)
        return self.known[path]


# ---------------------------------------------------------------------------------------------- positives


def _attacks(image: Image.Image, rng: random.Random) -> dict[str, tuple[Image.Image, dict]]:
    w, h = image.size
    angle = rng.uniform(5, 40) * rng.choice((-1, 1))
    box = tuple(round(v) for v in (0.07 * w, 0.05 * h, 0.94 * w, 0.96 * h))
    combo = ImageOps.mirror(image).rotate(angle, resample=Image.BICUBIC).crop(box)
    combo = combo.resize((max(16, combo.width // 2), max(16, combo.height // 2)), Image.LANCZOS).convert("L")
    pixels = np.asarray(image.convert("RGB")).astype(np.float32)
    sigma = 10 * max(w, h) / 512
    graham = np.clip(4 * pixels - 4 * cv2.GaussianBlur(pixels, (0, 0), sigma) + 128, 0, 255).astype(np.uint8)
    return {
        "mirror+turn+crop+shrink+grey": (combo, {"angle": angle, "mirrored": True}),
        "grey": (image.convert("L"), {}),
        "green_channel": (Image.fromarray(np.ascontiguousarray(pixels[:, :, 1].astype(np.uint8))), {}),
        "equalised": (ImageOps.equalize(image.convert("RGB")), {}),
        "graham_highpass": (Image.fromarray(graham), {}),
        "third_size": (image.resize((max(16, w // 3), max(16, h // 3)), Image.BILINEAR), {}),
    }


def _copies(originals: list[Path], group: str, attacks: int, label: str) -> Iterable[Record]:
    for index, path in enumerate(originals):
        image = Image.open(path).convert("RGB")
        original = _features(path, label)
        for kind in COPY_KINDS:
            copied, done = make_copy(image, kind, random.Random(f"{path.name}-{kind}"))
            yield Record(group, kind, _verify(original, _features(copied, "copy")), path.name, done)
        if index < attacks:
            for kind, (copied, done) in _attacks(image, random.Random(f"{path.name}-attack")).items():
                yield Record(f"{group}:attack", kind, _verify(original, _features(copied, "copy")), path.name, done)


def _inscribed(image: Image.Image) -> Image.Image:
    """The largest square inside the field (no field edge in view), a little inset."""
    left, top, right, bottom = field_box(image)
    radius = (right - left) / 2
    cx, cy = (left + right) / 2, (top + bottom) / 2
    half = min(radius / np.sqrt(2), (bottom - top) / 2) * 0.96
    return image.crop(tuple(round(v) for v in (cx - half, cy - half, cx + half, cy + half)))


def _rimless_copies(originals: list[Path]) -> Iterable[Record]:
    for path in originals:
        image = _inscribed(Image.open(path).convert("RGB"))
        original = _features(image, "rimless")
        for kind in RIMLESS_KINDS:
            copied, done = make_copy(image, kind, random.Random(f"{path.name}-rimless-{kind}"))
            yield Record("copy:rimless", kind, _verify(original, _features(copied, "copy")), path.name, done)


def _real_releases(realdata: Path, eyepacs: Cache, full: Cache, ffa: Cache) -> Iterable[Record]:
    for camera in sorted((realdata / "EyePACS_kaggle_sample").glob("*.jpeg")):
        release = realdata / "EyePACS_256px_EyeQ_labelled" / "images" / camera.name
        if release.exists():
            verdict = _verify(full(camera), eyepacs(release))
            yield Record("copy:real_release", "eyepacs_camera_vs_256px", verdict, camera.name)
    root = realdata / "FFA_huapu4" / "origin_data"
    for first, second in sorted(FFA_RELEASED_TWICE):
        yield Record("copy:real_release", "ffa_frame_twice", _verify(ffa(root / first), ffa(root / second)), first)


# ---------------------------------------------------------------------------------------------- negatives


def _eyepacs_rows(realdata: Path) -> list[dict[str, str]]:
    with open(realdata / "EyePACS_256px_EyeQ_labelled" / "labels.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _negatives(
    realdata: Path, distinct: int, ffa_frames: int, eyepacs: Cache, full: Cache, ffa: Cache
) -> Iterable[Record]:
    images = realdata / "EyePACS_256px_EyeQ_labelled" / "images"
    rows = _eyepacs_rows(realdata)
    eyes: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        eyes[row["patient_id"]][row["eye"]] = row["image"]
    for patient in sorted(eyes):
        if len(eyes[patient]) == 2:
            left, right = eyes[patient]["left"], eyes[patient]["right"]
            verdict = _verify(eyepacs(images / left), eyepacs(images / right))
            yield Record("negative", "eyepacs_left_right", verdict, left)
    rng = random.Random(7)
    for _ in range(distinct):
        first, second = rng.sample(rows, 2)
        while first["patient_id"] == second["patient_id"]:
            first, second = rng.sample(rows, 2)
        verdict = _verify(eyepacs(images / first["image"]), eyepacs(images / second["image"]))
        yield Record("negative", "eyepacs_distinct_patients", verdict, first["image"])
    patient_of = {"CHASEDB1": lambda stem: stem[:-1], "EyePACS_kaggle_sample": lambda stem: stem.split("_")[0]}
    for folder, pattern in (("CHASEDB1", "*.jpg"), ("EyePACS_kaggle_sample", "*.jpeg")):
        files = sorted((realdata / folder).glob(pattern))
        for first, second in itertools.combinations(files, 2):
            same = patient_of[folder](first.stem) == patient_of[folder](second.stem)
            kind = f"{folder}_{'left_right' if same else 'distinct'}"
            yield Record("negative", kind, _verify(full(first), full(second)), first.name)
    root = realdata / "FFA_huapu4" / "origin_data"
    frames = sorted(root.glob("0[12]*/*/*.jpg")) + sorted(root.glob("03*/voc_data/JPEGImages/*.jpg"))
    frames = frames[:: max(1, len(frames) // ffa_frames)] if ffa_frames else frames
    retina_matches = []
    for first, second in itertools.combinations(frames, 2):
        if (str(first.relative_to(root)), str(second.relative_to(root))) in FFA_RELEASED_TWICE:
            continue
        verdict = _verify(ffa(first), ffa(second))
        if verdict.inliers >= DEFAULT_LIMITS.min_inliers:
            retina_matches.append((first, second))
        yield Record("negative", "ffa_frames", verdict, f"{first.name}|{second.name}")
    for first, second in retina_matches:
        a = _features(_inscribed(Image.open(first).convert("RGB")), "rimless")
        b = _features(_inscribed(Image.open(second).convert("RGB")), "rimless")
        yield Record("negative", "ffa_same_eye_rimless", _verify(a, b), f"{first.name}|{second.name}")
    octdl = sorted((realdata / "OCT_OCTDL_AMD_and_MH_samples" / "data" / "sample_images").glob("*/*"))
    oct_cache = Cache("oct")
    for first, second in itertools.combinations(octdl, 2):
        verdict, name = _verify(oct_cache(first), oct_cache(second)), f"{first.name}|{second.name}"
        if first.stem in OCTDL_ONE_SCAN and second.stem in OCTDL_ONE_SCAN:
            yield Record("copy:real_release", "octdl_one_scan_three_ids", verdict, name)
            continue
        same = first.stem.rsplit("_", 1)[0] == second.stem.rsplit("_", 1)[0]
        yield Record("negative", "octdl_same_patient" if same else "octdl_distinct", verdict, name)


# ---------------------------------------------------------------------------------------------- report


def _angle_error(found: float, expected: float) -> float:
    return abs((found - expected + 180) % 360 - 180)


EXPECTED_ANGLE = {"rot90": 90.0, "rot180": 180.0, "flip": 180.0, "mirror": 0.0}
EXPECTED_PARTS: dict[str, Callable[[set[str]], bool]] = {
    "photometric": lambda parts: parts == {"same_frame"},
    "resample": lambda parts: parts == {"same_frame"},
    "crop8": lambda parts: "rescale" in parts and parts <= {"crop", "reframe", "rescale"},
    "crop10": lambda parts: "rescale" in parts and parts <= {"crop", "reframe", "rescale"},
    "rot5": lambda parts: "rotation" in parts and parts <= {"rotation", "crop"},
    "rot10": lambda parts: "rotation" in parts and parts <= {"rotation", "crop"},
    "rot30": lambda parts: "rotation" in parts and parts <= {"rotation", "crop"},
    "mirror": lambda parts: parts == {"mirror"},
    "flip": lambda parts: parts == {"mirror", "rotation"},
    "rot90": lambda parts: parts == {"rotation"},
    "rot180": lambda parts: parts == {"rotation"},
    "pad_square": lambda parts: parts in ({"reframe"}, {"same_frame"}),
    "bbox_crop": lambda parts: parts in ({"reframe"}, {"same_frame"}),
}


def _geometry_right(record: Record) -> tuple[bool, float | None]:
    """Whether a `make_copy` copy's verdict has the right kind, mirror flag, angle (1 degree) and scale (3 %);
    and its angle error."""
    kind, verdict, done = record.kind, record.verdict, record.expected
    angle = done.get("angle", EXPECTED_ANGLE.get(kind, 0.0))
    error = _angle_error(verdict.angle_deg, angle)
    if kind in ("crop8", "crop10"):
        scale = float(np.sqrt(1 / ((1 - done["left"] - done["right"]) * (1 - done["top"] - done["bottom"]))))
    else:
        scale = 1.0
    right = (
        EXPECTED_PARTS[kind](set(verdict.kind.split("+")))
        and verdict.mirrored == (kind in ("mirror", "flip"))
        and error <= 1.0
        and abs(verdict.scale / scale - 1) <= 0.03
    )
    return right, error


def _statistics(verdict: CopyVerdict) -> dict[str, float | None]:
    """The decision's statistics of a verdict, None where that stage was not reached or does not apply."""
    reached = verdict.inliers >= DEFAULT_LIMITS.min_inliers and verdict.overlap > 0
    return {
        "inliers": float(verdict.inliers),
        "agreement": verdict.agreement if reached else None,
        "rim_agreement": verdict.rim_agreement if reached else None,
        "illumination_agreement": verdict.illumination_agreement if reached and verdict.rim_agreement is None else None,
    }


def _extreme(records: list[Record], statistic: str, pick: Callable) -> tuple[float, str] | None:
    values = [(v, f"{r.kind} {r.name}") for r in records if (v := _statistics(r.verdict)[statistic]) is not None]
    return pick(values, key=lambda t: t[0]) if values else None


def _margin_groups(positives: list[Record], negatives: list[Record]) -> list[tuple[str, list[Record], Callable]]:
    made = [r for r in positives if r.kind in COPY_KINDS and r.group in ("copy:eyepacs256", "copy:full_size")]
    groups: list[tuple[str, list[Record], Callable]] = [
        ("copies: COPY_KINDS, EyePACS 256 px and full size (min)", made, min),
        ("copies: attacks (min)", [r for r in positives if r.group.endswith(":attack")], min),
        ("copies: rimless (min)", [r for r in positives if r.group == "copy:rimless"], min),
        ("copies: real re-releases (min)", [r for r in positives if r.group == "copy:real_release"], min),
    ]
    for kind in sorted({r.kind for r in negatives}):
        groups.append((f"non-copies: {kind} (max)", [r for r in negatives if r.kind == kind], max))
    return groups


def report(records: list[Record]) -> dict:
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        groups[(record.group, record.kind)].append(record)
    summary: dict = {"groups": [], "margins": {}, "cost": {}}
    print(f"{'group':34s} {'kind':30s} {'pairs':>6s} {'copy':>6s}  right (kind, angle, scale)  max angle err  kinds")
    for (group, kind), members in sorted(groups.items()):
        copies = sum(r.verdict.is_copy for r in members)
        row = {"group": group, "kind": kind, "pairs": len(members), "verified": copies}
        line = f"{group:34s} {kind:30s} {len(members):6d} {copies:6d}"
        if kind in COPY_KINDS and group in ("copy:eyepacs256", "copy:full_size"):
            checks = [_geometry_right(r) for r in members if r.verdict.is_copy] or [(False, 0.0)]
            row["geometry_right"] = sum(ok for ok, _ in checks)  # of the copies verified
            row["max_angle_error"] = round(max(error for _, error in checks), 2)
            kinds = Counter(r.verdict.kind for r in members)
            row["kinds"] = dict(kinds)
            line += f"  {row['geometry_right']:6d}/{len(members):<6d}        {row['max_angle_error']:5.2f}        "
            line += ", ".join(f"{k or '-'} {n}" for k, n in kinds.most_common())
        elif group.startswith("copy") and "angle" in (members[0].expected or {}):
            error = max(
                (_angle_error(r.verdict.angle_deg, r.expected["angle"]) for r in members if r.verdict.is_copy),
                default=0.0,
            )
            row["max_angle_error"] = round(error, 2)
            line += f"  {'':22s}{error:5.2f}"
        print(line)
        summary["groups"].append(row)
    positives = [r for r in records if r.group.startswith("copy")]
    negatives = [r for r in records if r.group == "negative"]
    print("\nStatistics of the pairs that reached the photometric checks (geometry passed), per group:")
    print("  copies: the weakest value; non-copies: the strongest. Illumination counts where no field edge is seen.")
    columns = ("inliers", "agreement", "rim_agreement", "illumination_agreement")
    print(f"  {'group':52s} {'pairs':>6s} {'reached':>7s}" + "".join(f" {c[:12]:>12s}" for c in columns))
    for label, members, pick in _margin_groups(positives, negatives):
        reached = [r for r in members if _statistics(r.verdict)["agreement"] is not None]
        cells = {c: _extreme(members if c == "inliers" else reached, c, pick) for c in columns}
        summary["margins"][label] = {
            "pairs": len(members),
            "reached": len(reached),
            **{c: (v[0], v[1]) if v else None for c, v in cells.items()},
        }
        line = f"  {label:52s} {len(members):6d} {len(reached):7d}"
        print(line + "".join(f" {v[0]:12.3f}" if v else f" {'-':>12s}" for v in cells.values()))
    limits = DEFAULT_LIMITS
    print(
        f"  thresholds: inliers {limits.min_inliers}, agreement {limits.min_agreement}, rim {limits.min_rim_agreement},"
        f" illumination {limits.min_illumination_agreement} (where no field edge is in view)"
    )
    with_rim = [r for r in positives if r.verdict.rim_agreement is not None]
    rimless = [r for r in positives if r.verdict.rim_agreement is None and r.verdict.inliers >= 1]
    print(f"  copies with a field edge in view: {len(with_rim)}, without: {len(rimless)}")
    missed = [r for r in positives if not r.verdict.is_copy]
    merged = [r for r in negatives if r.verdict.is_copy]
    summary["missed_copies"] = [f"{r.group} {r.kind} {r.name}: {r.verdict.reason}" for r in missed]
    summary["false_merges"] = [f"{r.kind} {r.name}: score {r.verdict.score}" for r in merged]
    print(f"\nCopies missed: {len(missed)} of {len(positives)}")
    for line in summary["missed_copies"][:30]:
        print("  ", line)
    print(f"Non-copies merged: {len(merged)} of {len(negatives)}")
    for line in summary["false_merges"][:30]:
        print("  ", line)
    print("\nCost (CPU time of this process, one OpenCV thread):")
    for label, values in sorted(TIMING.features.items()):
        nbytes = TIMING.nbytes[label]
        summary["cost"][f"features_{label}"] = {
            "images": len(values),
            "median_ms": round(1000 * statistics.median(values), 2),
            "mean_bytes": round(statistics.mean(nbytes)),
        }
        print(
            f"  features, {label:9s}: {len(values):6d} images, median {1000 * statistics.median(values):6.1f} ms,"
            f" p90 {1000 * np.percentile(values, 90):6.1f} ms, {statistics.mean(nbytes) / 1000:5.1f} kB per image"
        )
    for label, values in sorted(TIMING.pairs.items()):
        summary["cost"][f"verify_{label}"] = {
            "pairs": len(values),
            "median_ms": round(1000 * statistics.median(values), 2),
        }
        print(
            f"  verify, {label:8s}: {len(values):6d} pairs, median {1000 * statistics.median(values):6.2f} ms,"
            f" p90 {1000 * np.percentile(values, 90):6.2f} ms"
        )
    return summary


def _write_pairs(records: list[Record], path: Path) -> None:
    fields = ("inliers", "agreement", "rim_agreement", "illumination_agreement", "overlap", "is_copy", "kind", "reason")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "pair_kind", "name", *fields])
        for r in records:
            writer.writerow([r.group, r.kind, r.name, *(getattr(r.verdict, f) for f in fields)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realdata", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realdata")
    parser.add_argument("--eyepacs", type=int, default=300, help="EyePACS 256 px originals copied (each kind)")
    parser.add_argument("--full", type=int, default=90, help="full-size originals copied (each kind)")
    parser.add_argument("--attacks", type=int, default=40, help="originals of each set given the attacks too")
    parser.add_argument("--distinct", type=int, default=2000, help="random pairs of distinct EyePACS patients")
    parser.add_argument("--ffa", type=int, default=0, help="FFA frames paired (every pair of them; 0: all 160)")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--pairs", type=Path, help="write every pair's statistics here (CSV), to try other thresholds")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    realdata = args.realdata
    eyepacs, full, ffa = Cache("eyepacs256"), Cache("full_size"), Cache("ffa")
    names = sorted(row["image"] for row in _eyepacs_rows(realdata))
    random.Random(2).shuffle(names)
    originals_256 = [realdata / "EyePACS_256px_EyeQ_labelled" / "images" / n for n in names[: args.eyepacs]]
    originals_full = [p for pattern in FULL_SIZE for p in sorted(realdata.glob(pattern))][: args.full]
    started = time.perf_counter()
    records: list[Record] = []
    records += _copies(originals_256, "copy:eyepacs256", args.attacks, "eyepacs256")
    records += _copies(originals_full, "copy:full_size", args.attacks, "full_size")
    records += _rimless_copies(originals_full[:: max(1, len(originals_full) // 30)])
    records += _real_releases(realdata, eyepacs, full, ffa)
    records += _negatives(realdata, args.distinct, args.ffa, eyepacs, full, ffa)
    print(f"{len(records)} pairs in {time.perf_counter() - started:.0f} s wall\n")
    summary = report(records)
    summary["arguments"] = {k: str(v) for k, v in vars(args).items()}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    if args.pairs:
        _write_pairs(records, args.pairs)


if __name__ == "__main__":
    main()
