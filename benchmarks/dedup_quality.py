"""Precision and recall of the near-duplicate decision on a labelled phantom benchmark.

Phantom fundus photographs (patients x 2 eyes x 2 visits, diseases shared between patients) are saved as
camera files, then copies are made with known transforms (re-encoding, resizing, crops, padding, exposure,
flips, quarter turns, compounds). Every file goes through the real intake (`imaging.fingerprint`). A pair is
a duplicate when both files come from one photograph; the hard negatives are the other visit of the same
eye, the other eye of the same patient (plain and mirrored) and the same disease in another patient.

    .venv/bin/python benchmarks/dedup_quality.py [--patients 40] [--out /tmp/dedup_bench]

Prints a threshold sweep, the recall of each transform and the false positives of each kind of negative
at the recipe defaults, and the same for the 256-bit pHash of the whole frame (ImageRef.phash) as a baseline.
"""

from __future__ import annotations

import argparse
import io
import itertools
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from retinal_reason_data.curation.hamming import hex_to_bytes, popcount_distance
from retinal_reason_data.ingest.fieldhash import ORIENTATIONS, orient
from retinal_reason_data.ingest.imaging import fingerprint
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.recipe import DedupSpec
from retinal_reason_data.schema import Modality

DISEASES = [
    ["dr.none"],
    ["dr.mild"],
    ["dr.moderate"],
    ["dr.severe"],
    ["dr.proliferative"],
    ["amd.wet"],
    ["amd.dry"],
    ["glaucoma"],
    ["vasc.crvo"],
    ["vasc.brvo"],
    ["myopia.pathologic"],
    ["rp"],
]


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _crop(image: Image.Image, share: float, corner: bool = False) -> Image.Image:
    w, h = image.size
    dx, dy = int(w * share), int(h * share)
    return image.crop((dx, 0, w, h - dy) if corner else (dx, dy, w - dx, h - dy))


def _pad(image: Image.Image, share: float) -> Image.Image:
    w, h = image.size
    dx = int(w * share)
    canvas = Image.new("RGB", (w + 2 * dx, h + dx))
    canvas.paste(image, (dx, dx // 2))
    return canvas


def _squash(image: Image.Image) -> Image.Image:
    """Clip the field top and bottom (a 4:3 camera frame), then resize to a square, as compilations do."""
    w, h = image.size
    return image.crop((0, h // 8, w, h - h // 8)).resize((512, 512), Image.Resampling.BICUBIC)


T = Image.Transpose
TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "png_resave": lambda im: im,
    "jpeg_q90": lambda im: _jpeg(im, 90),
    "jpeg_q50": lambda im: _jpeg(im, 50),
    "resize_half": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
    "resize_quarter": lambda im: im.resize((im.width // 4, im.height // 4), Image.Resampling.BILINEAR),
    "upscale_1.6": lambda im: im.resize((int(im.width * 1.6), int(im.height * 1.6)), Image.Resampling.BICUBIC),
    "squash_to_square": _squash,
    "crop_3pct": lambda im: _crop(im, 0.03),
    "crop_6pct": lambda im: _crop(im, 0.06),
    "crop_8pct_corner": lambda im: _crop(im, 0.08, corner=True),
    "pad_10pct": lambda im: _pad(im, 0.10),
    "brightness_+25": lambda im: ImageEnhance.Brightness(im).enhance(1.25),
    "brightness_-30": lambda im: ImageEnhance.Brightness(im).enhance(0.7),
    "contrast_+30": lambda im: ImageEnhance.Contrast(im).enhance(1.3),
    "contrast_-30": lambda im: ImageEnhance.Contrast(im).enhance(0.7),
    "gamma_0.7": lambda im: im.point(lambda v: int(255 * (v / 255) ** 0.7)),
    "saturation_-50": lambda im: ImageEnhance.Color(im).enhance(0.5),
    "blur_1px": lambda im: im.filter(ImageFilter.GaussianBlur(1.0)),
    "mirror": ImageOps.mirror,
    "flip": ImageOps.flip,
    "rot90": lambda im: im.transpose(T.ROTATE_90),
    "rot180": lambda im: im.transpose(T.ROTATE_180),
    "rot270": lambda im: im.transpose(T.ROTATE_270),
    "transpose": lambda im: im.transpose(T.TRANSPOSE),
    "rot90+jpeg75+resize": lambda im: _jpeg(im.transpose(T.ROTATE_90), 75).resize(
        (320, 320), Image.Resampling.BILINEAR
    ),
    "mirror+brightness+crop": lambda im: _crop(ImageEnhance.Brightness(ImageOps.mirror(im)).enhance(1.2), 0.04),
    "crop+jpeg60+contrast": lambda im: ImageEnhance.Contrast(_jpeg(_crop(im, 0.05), 60)).enhance(1.2),
}
NOT_CLAIMED = {"rotate_5deg": lambda im: im.rotate(5, resample=Image.Resampling.BILINEAR)}


def build(folder: Path, patients: int, size: int, copies_per_original: int, seed: int) -> list[dict]:
    """Write originals and transformed copies; return one record per file."""
    rng = np.random.default_rng(seed)
    names = list(TRANSFORMS)
    records = []
    for patient in range(patients):
        disease = DISEASES[patient % len(DISEASES)]
        patient_seed = int(rng.integers(1 << 31))
        for eye in ("right", "left"):
            for visit in range(2):
                origin = (patient, eye, visit)
                image = fundus_photo(patient_seed, eye, disease, image_seed=int(rng.integers(1 << 20)), size=size)
                stem = f"p{patient:03d}_{eye}_{visit}"
                path = folder / f"{stem}.jpg"
                image.save(path, quality=95)
                base = {"origin": origin, "disease": disease[0], "transform": "original", "path": path}
                records.append(base)
                camera = Image.open(path).convert("RGB")
                chosen = rng.choice(names, size=copies_per_original, replace=False).tolist()
                if "png_resave" not in chosen and rng.random() < 0.3:
                    chosen.append("png_resave")
                for name in [*chosen, *NOT_CLAIMED]:
                    transform = TRANSFORMS.get(name) or NOT_CLAIMED[name]
                    copy = transform(camera)
                    suffix = ".png" if name == "png_resave" else ".jpg"
                    copy_path = folder / f"{stem}__{name}{suffix}"
                    copy.save(copy_path, **({} if suffix == ".png" else {"quality": 92}))
                    records.append({**base, "transform": name, "path": copy_path})
    return records


def pair_kind(a: dict, b: dict) -> str:
    (pa, ea, _), (pb, eb, _) = a["origin"], b["origin"]
    if a["origin"] == b["origin"]:
        return "duplicate"
    if pa == pb and ea == eb:
        return "other_visit"
    if pa == pb:
        return "other_eye"
    if a["disease"] == b["disease"]:
        return "same_disease_other_patient"
    return "other_patient"


def distances(near: np.ndarray, detail: np.ndarray, i: np.ndarray, j: np.ndarray, orientations: bool) -> np.ndarray:
    """(pairs, orientations, 2) near and detail distances of pairs (i, j), j turned by each orientation."""
    names = ORIENTATIONS if orientations else ("identity",)
    out = np.zeros((len(i), len(names), 2), dtype=np.int32)
    for k, name in enumerate(names):
        turned_near, turned_detail = orient(near, name), orient(detail, name)
        out[:, k, 0] = popcount_distance(near[i], turned_near[j])
        out[:, k, 1] = popcount_distance(detail[i], turned_detail[j])
    return out


def decide(d: np.ndarray, near_threshold: int, detail_threshold: int) -> np.ndarray:
    return ((d[:, :, 0] <= near_threshold) & (d[:, :, 1] <= detail_threshold)).any(axis=1)


def scores(match: np.ndarray, truth: np.ndarray) -> tuple[float, float, int, int]:
    tp = int((match & truth).sum())
    fp = int((match & ~truth).sum())
    fn = int((~match & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, fp, fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--size", type=int, default=768, help="side of the phantom camera files")
    parser.add_argument("--copies", type=int, default=7, help="transformed copies per photograph")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.out or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        records = build(folder, args.patients, args.size, args.copies, args.seed)
        made = time.perf_counter() - started
        started = time.perf_counter()
        refs = [fingerprint(r["path"], Modality.CFP) for r in records]
        hashed = time.perf_counter() - started
    print(f"{len(records)} files ({made:.0f} s to draw), fingerprinted in {hashed:.1f} s")
    near = hex_to_bytes([r.near_hash or "" for r in refs])
    detail = hex_to_bytes([r.detail_hash or "" for r in refs])
    phash = hex_to_bytes([r.phash for r in refs])
    i, j = map(np.array, zip(*itertools.combinations(range(len(records)), 2), strict=True))
    kinds = np.array([pair_kind(records[a], records[b]) for a, b in zip(i.tolist(), j.tolist(), strict=True)])
    kept_out = {k for k, r in enumerate(records) if r["transform"] in NOT_CLAIMED}
    claimed = np.array([a not in kept_out and b not in kept_out for a, b in zip(i.tolist(), j.tolist(), strict=True)])
    i, j, kinds = i[claimed], j[claimed], kinds[claimed]
    truth = kinds == "duplicate"
    print(f"{len(i)} pairs: {Counter(kinds.tolist())}")

    d_all = distances(near, detail, i, j, orientations=True)
    defaults = DedupSpec()
    print("\nnear_hash + detail_hash, all orientations: threshold sweep (precision / recall / FP / FN)")
    print("near_t | " + " | ".join(f"detail<={t}" for t in (16, 20, 24, 28, 256)))
    for near_t in range(8, 26, 2):
        cells = []
        for detail_t in (16, 20, 24, 28, 256):
            p, r, fp, fn = scores(decide(d_all, near_t, detail_t), truth)
            cells.append(f"{p:.4f}/{r:.4f}/{fp}/{fn}")
        print(f"{near_t:6d} | " + " | ".join(cells))

    chosen = decide(d_all, defaults.near_threshold, defaults.detail_threshold)
    p, r, fp, fn = scores(chosen, truth)
    print(
        f"\ndefaults (near_threshold {defaults.near_threshold}, detail_threshold {defaults.detail_threshold}): "
        f"precision {p:.4f}, recall {r:.4f} ({fp} false positives, {fn} false negatives)"
    )
    transform_of = np.array(
        [
            records[b]["transform"] if records[a]["transform"] == "original" else "copy-copy"
            for a, b in zip(i.tolist(), j.tolist(), strict=True)
        ]
    )
    print("\nrecall against the original, per transform (max near / detail distance at the best orientation):")
    best = d_all.sum(axis=2).argmin(axis=1)
    best_d = d_all[np.arange(len(best)), best]
    for name in [*TRANSFORMS, "copy-copy"]:
        mask = truth & (transform_of == name)
        if mask.any():
            print(
                f"  {name:24s} {chosen[mask].mean():.3f}  ({mask.sum()} pairs; max {best_d[mask, 0].max()}"
                f" / {best_d[mask, 1].max()})"
            )
    print("\nfalse positives per kind of negative pair (min near distance over orientations):")
    for kind in ("other_visit", "other_eye", "same_disease_other_patient", "other_patient"):
        mask = kinds == kind
        if not mask.any():
            continue
        identity_min = d_all[mask, 0, 0].min()
        print(
            f"  {kind:28s} {int(chosen[mask].sum())} of {mask.sum()}  (min near distance {d_all[mask, :, 0].min()},"
            f" unturned {identity_min})"
        )
    unclaimed = _unclaimed(records, near, detail, defaults)
    print(f"\nnot claimed: rotation by 5 degrees found {unclaimed[0]} of {unclaimed[1]}")

    print("\nbaseline: 256-bit pHash of the whole frame (ImageRef.phash), unturned only:")
    d_phash = popcount_distance(phash[i], phash[j])
    best_f1 = max(
        (
            (2 * p * r / (p + r) if p + r else 0.0, t, p, r)
            for t in range(0, 60, 2)
            for p, r, *_ in [scores(d_phash <= t, truth)]
        ),
    )
    _, t, p, r = best_f1
    print(f"  best threshold {t}: precision {p:.4f}, recall {r:.4f}")
    per = defaultdict(list)
    for name in TRANSFORMS:
        mask = truth & (transform_of == name)
        if mask.any():
            per[name] = float((d_phash[mask] <= t).mean())
    print("  recall per transform: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()))


def _unclaimed(records: list[dict], near: np.ndarray, detail: np.ndarray, spec: DedupSpec) -> tuple[int, int]:
    originals = {r["origin"]: index for index, r in enumerate(records) if r["transform"] == "original"}
    pairs = [(originals[r["origin"]], k) for k, r in enumerate(records) if r["transform"] in NOT_CLAIMED]
    i, j = (np.array(x) for x in zip(*pairs, strict=True))
    found = decide(distances(near, detail, i, j, orientations=True), spec.near_threshold, spec.detail_threshold)
    return int(found.sum()), len(found)


if __name__ == "__main__":
    main()
