"""How well the copy signature finds copies of real photographs, and what it costs.

Run:
    .venv/bin/python benchmarks/copy_signature.py [--realdata ../shared/realdata] [--photos 0] [--copies 1]
        [--all] [--search 100000,1000000]

- **EyePACS 256 px** (the held-out patients of `copy_signature_fit.py`, never seen by the fit; `--all` adds the
  training ones, reported apart): every photograph and `--copies` copies of every kind of `COPY_KINDS` (brightness
  and JPEG on top) and of kinds the fit never saw (a 45 degree turn, 12 % crops, a crop with a turn, JPEG 50,
  gamma, a 0.3 resample). Recall per kind: the share of copies within the threshold of their photograph in the
  closer half (`copy_candidates.closer_half_distance`).
  Candidates: every pair of signatures within the threshold that is not a photograph and its copy (copies of
  different photographs included), per image; the left and right eyes of one patient counted apart.
- **Full-size photographs** (CHASE_DB1, IDRiD, APTOS, HRF, EyePACS camera files): the same kinds through the
  reduced decode of a camera file (pad_square and bbox_crop reframe them for real: the 256 px set is square).
- **OCT B-scans and FFA frames**: how many have a rim, the pairs among them within the threshold (OCTDL
  same-patient pairs and FFA frames of one eye are not copies), and the recall of their own copies.
- `--search`: `copy_candidates` on N signatures (uniform bits, 1 in 10 a copy of another with bits flipped in
  one half as the measured copies' distances, the other half drawn anew) with both cores: seconds, pairs,
  planted copies within the threshold found (the search is exact: all of them) and peak memory (the largest of
  this process and of a worker).
Every image goes through the intake's decode and work image (`copy_signature_fit.work_of_file`).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from copy_signature_fit import EYEPACS, REPO, eyepacs_rows, held_out, work_of_file, work_of_image
from PIL import Image, ImageEnhance, ImageFilter

from retinal_reason_data.curation.copy_candidates import closer_half_distance, copy_candidates
from retinal_reason_data.curation.hamming import hex_to_bytes
from retinal_reason_data.ingest.copy_signature import HALF_BITS, SIGNATURE_BITS, copy_signature
from retinal_reason_data.ingest.field_rim import fit_rim
from retinal_reason_data.phantoms.copies import COPY_KINDS, make_copy
from retinal_reason_data.recipe import DedupSpec

FULL_SIZE = {
    "CHASEDB1": "*.jpg",
    "IDRiD_segmentation_train": "*.jpg",
    "HRF_fullres_VascX": "*.jpg",
    "HRF_healthy_downscaled_milosz08": "*.jpg",
    "APTOS2019": "*/*.png",
    "EyePACS_kaggle_sample": "*.jpeg",
    "EyeQ_EyePACS_originals": "*.jpeg",
}
OTHER_MODALITIES = {"OCT_OCTDL_AMD_and_MH_samples": "**/*.*", "FFA_huapu4": "**/*.jpg"}


def _unseen(transform: Callable[[Image.Image, random.Random], Image.Image]) -> Callable:
    def copy(image: Image.Image, rng: random.Random) -> Image.Image:
        copied, _ = make_copy(transform(image.convert("RGB"), rng), "photometric", rng)
        return copied

    return copy


def _crop_turn(image: Image.Image, rng: random.Random) -> Image.Image:
    cropped, _ = COPY_KINDS["crop8"](image, rng)
    return cropped.rotate(rng.uniform(1, 10) * rng.choice((-1, 1)), resample=Image.BICUBIC)


def _crop12(image: Image.Image, rng: random.Random) -> Image.Image:
    w, h = image.size
    left, top, right, bottom = (rng.uniform(0.10, 0.12) for _ in range(4))
    box = (round(left * w), round(top * h), w - round(right * w), h - round(bottom * h))
    return image.crop(box).resize(image.size, Image.LANCZOS)


UNSEEN = {  # kinds the projection was not fitted on (photometric copy on top of each)
    "rot45": _unseen(lambda im, rng: im.rotate(rng.uniform(30, 45) * rng.choice((-1, 1)), resample=Image.BICUBIC)),
    "crop12": _unseen(_crop12),
    "crop8+rot10": _unseen(_crop_turn),
    "gamma0.7": _unseen(lambda im, rng: im.point(lambda v: round(255 * (v / 255) ** 0.7))),
    "resample0.3": _unseen(lambda im, rng: im.resize((im.width * 3 // 10, im.height * 3 // 10)).resize(im.size)),
    "blur1": _unseen(lambda im, rng: im.filter(ImageFilter.GaussianBlur(1))),
    "contrast0.8": _unseen(lambda im, rng: ImageEnhance.Contrast(im).enhance(0.8)),
}


def copies_of(image: Image.Image, index: int, count: int, kinds: list[str]) -> list[tuple[str, str]]:
    """(kind, signature) of `count` copies of every kind."""
    found = []
    for kind in kinds:
        for number in range(count):
            rng = random.Random(f"bench-{index}-{kind}-{number}")
            copied = make_copy(image, kind, rng)[0] if kind in COPY_KINDS else UNSEEN[kind](image, rng)
            found.append((kind, copy_signature(work_of_image(copied)[1])))
    return found


def collect(paths: list[Path], groups: list[str], count: int, kinds: list[str]) -> dict[str, list]:
    """Signatures of the photographs and their copies: rows of (signature, source index, kind, group)."""
    rows: dict[str, list] = {"signature": [], "source": [], "kind": [], "group": [], "rim": []}
    rows["name"] = ["/".join(path.parts[-3:]) for path in paths]
    for index, (path, group) in enumerate(zip(paths, groups, strict=True)):
        image, work = work_of_file(path)
        rows["rim"].append(fit_rim(np.asarray(work.image.filter(ImageFilter.BoxBlur(2)))) is not None)  # as signed
        for kind, signature in [("original", copy_signature(work)), *copies_of(image, index, count, kinds)]:
            rows["signature"].append(signature)
            rows["source"].append(index)
            rows["kind"].append(kind)
            rows["group"].append(group)
    return rows


def report(name: str, rows: dict[str, list], threshold: int, sweep: list[int]) -> dict[str, object]:
    """Recall per kind and candidates per image, printed as a table; the copy distances are returned."""
    hashes = hex_to_bytes(rows["signature"])
    source, kind, group = (np.array(rows[key]) for key in ("source", "kind", "group"))
    original = np.flatnonzero(kind == "original")
    first = {s: i for i, s in zip(original.tolist(), source[original].tolist(), strict=True)}
    copy_rows = np.flatnonzero(kind != "original")
    distance = closer_half_distance(hashes[copy_rows], hashes[[first[s] for s in source[copy_rows]]])
    pairs = copy_candidates(hashes, max(sweep + [threshold]), workers=1)
    same_source = source[pairs.i] == source[pairs.j]
    same_group = (group[pairs.i] == group[pairs.j]) & ~same_source
    print(
        f"\n## {name}: {len(original)} photographs, {len(copy_rows)} copies, threshold {threshold} of "
        f"{HALF_BITS} bits in either half; rims found {sum(rows['rim'])} of {len(rows['rim'])}"
    )
    print("| kind | copies | recall | p50 / p90 / p97 / max distance |\n|---|---:|---:|---|")
    for name_of_kind in dict.fromkeys(kind[copy_rows].tolist()):
        d = distance[kind[copy_rows] == name_of_kind]
        q = np.percentile(d, [50, 90, 97])
        print(
            f"| {name_of_kind} | {len(d)} | {np.mean(d <= threshold):.3f} | "
            f"{q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f} / {d.max()} |"
        )
    print("| threshold | recall (all kinds) | candidates per image (other photographs) | pairs within a group |")
    print("|---:|---:|---:|---:|")
    for t in sorted(set(sweep + [threshold])):
        within = pairs.distance <= t
        other = np.count_nonzero(within & ~same_source & ~same_group)
        print(
            f"| {t} | {np.mean(distance <= t):.3f} | {2 * other / len(hashes):.4f} ({other} pairs) | "
            f"{np.count_nonzero(within & same_group)} |"
        )
    both_original = (kind[pairs.i] == "original") & (kind[pairs.j] == "original") & (pairs.distance <= threshold)
    print(
        f"Pairs of photographs (no copy) within {threshold}: {np.count_nonzero(both_original)} of "
        f"{len(original) * (len(original) - 1) // 2:,}"
    )
    for i, j, d in zip(pairs.i[both_original], pairs.j[both_original], pairs.distance[both_original], strict=True):
        print(f"- {rows['name'][source[i]]} and {rows['name'][source[j]]}: {d} bits")
    return {"distance": distance, "kind": kind[copy_rows]}


def eyepacs(args: argparse.Namespace, threshold: int, sweep: list[int]) -> dict[str, object]:
    rows = eyepacs_rows(args.realdata)
    parts = {"held-out": [r for r in rows if held_out(r["patient_id"])]}
    if args.all:
        parts["training"] = [r for r in rows if not held_out(r["patient_id"])]
    kinds = list(COPY_KINDS) + list(UNSEEN)
    result = {}
    for part, chosen in parts.items():
        chosen = chosen[: args.photos] if args.photos else chosen
        paths = [args.realdata / EYEPACS / "images" / r["image"] for r in chosen]
        started = time.perf_counter()
        collected = collect(paths, [r["patient_id"] for r in chosen], args.copies, kinds)
        print(
            f"\n({part}: signatures in {time.perf_counter() - started:.0f} s; 'pairs within a group' are the "
            "left and right eyes of one patient, and their copies)"
        )
        result[part] = report(f"EyePACS 256 px, {part} patients", collected, threshold, sweep)
    return result


def files_of(realdata: Path, folders: dict[str, str]) -> tuple[list[Path], list[str]]:
    paths, groups = [], []
    for folder, pattern in folders.items():
        for path in sorted((realdata / folder).glob(pattern)):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"):
                paths.append(path)
                groups.append(f"{folder}/{_patient(folder, path)}")
    return paths, groups


def _patient(folder: str, path: Path) -> str:
    """What makes two files of a collection 'one patient' for counting (CHASE: Image_01L/R; OCTDL: same
    patient id in the name; FFA: all frames, since the frames' eyes are not labelled; else the file)."""
    stem = path.stem
    if folder == "CHASEDB1":
        return stem.rstrip("LR")
    if folder == "FFA_huapu4":
        return "frames"
    if folder == "OCT_OCTDL_AMD_and_MH_samples":
        return stem.split("_")[1] if stem.count("_") >= 2 else stem
    if folder in ("EyePACS_kaggle_sample", "EyeQ_EyePACS_originals"):
        return stem.split("_")[0]
    return stem


def search(sizes: list[int], distances: np.ndarray, thresholds: list[int]) -> None:
    """Seconds, pairs and peak memory of `copy_candidates` on N signatures with planted copies."""
    print(
        "\n## copy_candidates at scale (uniform bits, 1 in 10 a copy of another at a measured copy distance in one "
        "half, the other half drawn anew)"
    )
    print("| signatures | threshold | seconds (2 workers) | pairs | planted copies within it found | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for size in sizes:
        hashes = rng.integers(0, 256, (size, SIGNATURE_BITS // 8), dtype=np.uint8)
        planted = rng.choice(size, size // 10, replace=False)
        sources = rng.choice(np.setdiff1d(np.arange(size), planted), len(planted))
        flips = rng.choice(distances, len(planted))
        bits = np.unpackbits(hashes[sources], axis=1)
        for row, count in enumerate(flips):
            kept = rng.integers(0, 2) * HALF_BITS
            bits[row, kept + rng.choice(HALF_BITS, count, replace=False)] ^= 1
            bits[row, HALF_BITS - kept : SIGNATURE_BITS - kept] = rng.integers(0, 2, HALF_BITS)
        hashes[planted] = np.packbits(bits, axis=1)
        for threshold in thresholds:
            started = time.perf_counter()
            pairs = copy_candidates(hashes, threshold, workers=2)
            seconds = time.perf_counter() - started
            found = pairs.as_set()
            wanted = [(min(a, b), max(a, b)) for a, b, f in zip(planted, sources, flips, strict=True) if f <= threshold]
            hits = sum(pair in found for pair in wanted)
            peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
            print(
                f"| {size:,} | {threshold} | {seconds:.1f} | {len(pairs):,} | {hits}/{len(wanted)} | "
                f"{peak / 1024:.0f} MB |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--photos", type=int, default=0, help="the first N EyePACS photographs of each part (0: all)")
    parser.add_argument("--copies", type=int, default=1, help="copies of each kind per photograph")
    parser.add_argument("--all", action="store_true", help="also the training patients (reported apart)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: eyepacs, fullsize, other")
    parser.add_argument("--search", default="", help="comma-separated sizes for the search timing")
    parser.add_argument("--search-thresholds", default="", help="comma-separated thresholds (default: the recipe's)")
    args = parser.parse_args()
    if not args.realdata.is_dir():
        sys.exit(f"{args.realdata}: real-data folder not found (pass --realdata)")
    threshold = DedupSpec().copy_threshold
    sweep = sorted({threshold - 2, threshold - 1, threshold, threshold + 1, threshold + 2, 2 * threshold})
    skip = set(args.skip.split(","))
    distances = np.array([threshold // 2])
    if "eyepacs" not in skip:
        distances = eyepacs(args, threshold, sweep)["held-out"]["distance"]
    if "fullsize" not in skip:
        paths, groups = files_of(args.realdata, FULL_SIZE)
        report("Full-size photographs", collect(paths, groups, args.copies, list(COPY_KINDS)), threshold, sweep)
    if "other" not in skip:
        paths, groups = files_of(args.realdata, OTHER_MODALITIES)
        kinds = ["photometric", "resample", "mirror", "rot90", "rot5", "crop8"]
        report("OCT B-scans and FFA frames", collect(paths, groups, args.copies, kinds), threshold, sweep)
    if args.search:
        thresholds = [int(t) for t in args.search_thresholds.split(",")] if args.search_thresholds else [threshold]
        search([int(s) for s in args.search.split(",")], np.asarray(distances), thresholds)


if __name__ == "__main__":
    main()
