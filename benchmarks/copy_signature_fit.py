"""Fit the copy signature's projection on copies of real photographs (retinal_reason_data/data/copy_signature.npz).

Run:
    .venv/bin/python benchmarks/copy_signature_fit.py [--realdata ../shared/realdata] [--write]

The 1,614 EyePACS photographs (256 px, EyeQ-labelled) are split by patient as the quality gate's fit splits them
(SHA-256 of the patient id mod 10 below 3: held out, both eyes, never seen here). For every training photograph
the intake's work image is made from the file (the same reduced decode and 256 px reduction as `fingerprint`),
and one copy of every kind of `phantoms.copies.COPY_KINDS` (brightness and JPEG on top) plus JITTER copies that
keep the pixels but move the fitted field by JITTER_SHARE of its radius (centre and each axis: the fit's own
error on a crop or a turn) give the ways a copy differs from its photograph. Camera frames that cut the field
(HRF, APTOS, IDRiD: wider fields than frames) are taught by a framed version of each photograph (its top and
bottom cut by 8-20 % of its height) with copies of the FRAMED_KINDS (padded to a square, turned, cropped, ...):
one more photograph, with copies of its own. The projection is linear discriminant analysis: features
standardised on the training photographs, the copy-minus-photograph covariance shrunk by SHRINK towards its mean
variance, and the directions that maximise the spread of photographs over the spread of copies, best first;
a bit is the sign of a direction relative to its median over the training photographs (framed ones included).
Each half of the signature (the whole rings' features, the inner rings': `ingest/copy_signature.py`) is fitted
apart; `--write` stores the first HALF_BITS directions of each (float16, block-diagonal) with how they were
fitted.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from retinal_reason_data.ingest.copy_signature import (
    FEATURE_COUNT,
    HALF_BITS,
    INNER_RINGS,
    PROJECTION_FILE,
    RINGS,
    SIGNATURE_BITS,
    WHOLE_FEATURES,
    half_features,
    polar_samples,
    signature_features,
    signature_geometry,
)
from retinal_reason_data.ingest.fieldhash import Field, WorkImage, prepare
from retinal_reason_data.ingest.imaging import DRAFT_MIN_SIDE, _decode
from retinal_reason_data.phantoms.copies import COPY_KINDS, make_copy

REPO = Path(__file__).resolve().parent.parent
PROJECTION_PATH = REPO / "retinal_reason_data" / "data" / PROJECTION_FILE
EYEPACS = "EyePACS_256px_EyeQ_labelled"
HELD_OUT_TENTHS = 3  # as benchmarks/quality_gate_fit.py: the same patients are held out
JITTER, JITTER_SHARE = 8, 0.015
FRAMED_KINDS = ("photometric", "pad_square", "rot5", "rot10", "rot30", "crop10", "mirror", "bbox_crop")
FRAME_CUT = (0.08, 0.2)  # share of the height cut from the top and from the bottom
SHRINK = 0.1


def held_out(patient: str) -> bool:
    return int(hashlib.sha256(patient.encode()).hexdigest(), 16) % 10 < HELD_OUT_TENTHS


def eyepacs_rows(realdata: Path) -> list[dict[str, str]]:
    """The label rows of the 256 px EyePACS photographs (image, patient_id, eye, eyeq_quality_name, ...)."""
    with (realdata / EYEPACS / "labels.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def work_of_file(path: Path) -> tuple[Image.Image, WorkImage]:
    """The decoded image and its work image, as `imaging.fingerprint` makes them from the file."""
    image, _ = _decode(path.read_bytes(), path, reduce_to=DRAFT_MIN_SIDE)
    return image, prepare(image.convert("L") if image.mode != "L" else image)


def work_of_image(image: Image.Image) -> tuple[Image.Image, WorkImage]:
    """The decoded image and work image of an in-memory copy (`make_copy` returns a decoded JPEG): a large one
    is saved as a JPEG (quality 95) and decoded as intake decodes a file (reduced JPEG decode), a small one is
    reduced directly."""
    if max(image.size) < 2 * DRAFT_MIN_SIDE:  # no reduced decode below this: the same pixels either way
        return image, prepare(image.convert("L"))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    decoded, _ = _decode(buffer.getvalue(), "copy.jpg", reduce_to=DRAFT_MIN_SIDE)
    return decoded, prepare(decoded.convert("L") if decoded.mode != "L" else decoded)


def jittered(field: Field, rng: np.random.Generator) -> Field:
    radius = (field.rx + field.ry) / 2
    dx, dy = rng.normal(0.0, JITTER_SHARE * radius, 2)
    sx, sy = 1 + rng.normal(0.0, JITTER_SHARE, 2)
    return Field(field.cx + dx, field.cy + dy, field.rx * sx, field.ry * sy)


def framed(image: Image.Image, rng: random.Random) -> Image.Image:
    """The photograph in a frame that cuts its field at the top and bottom (as HRF's and APTOS's cameras do)."""
    cut = round(rng.uniform(*FRAME_CUT) * image.height)
    return image.convert("RGB").crop((0, cut, image.width, image.height - cut))


class Example(NamedTuple):
    """One training photograph's features: its own, its copies', its framed version's and that one's copies'."""

    original: np.ndarray
    copies: list[np.ndarray]
    framed: np.ndarray
    framed_copies: list[np.ndarray]


def training_example(task: tuple[int, Path]) -> Example:
    """The features of one training photograph and of its copies (see module); seeded by its index."""
    index, path = task
    rng = np.random.default_rng(index)
    image, work = work_of_file(path)
    blurred, field, edges = signature_geometry(work)
    original = half_features(polar_samples(blurred, field, edges))
    copies = []
    for kind in COPY_KINDS:
        copied, _ = make_copy(image, kind, random.Random(f"fit-{index}-{kind}"))
        copies.append(signature_features(work_of_image(copied)[1]))
    copies += [half_features(polar_samples(blurred, jittered(field, rng), edges)) for _ in range(JITTER)]
    cut = framed(image, random.Random(f"cut-{index}"))
    framed_copies = []
    for kind in FRAMED_KINDS:
        copied, _ = make_copy(cut, kind, random.Random(f"fitcut-{index}-{kind}"))
        framed_copies.append(signature_features(work_of_image(copied)[1]))
    return Example(original, copies, signature_features(work_of_image(cut)[1]), framed_copies)


def training_set(paths: list[Path], workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(originals, copies, source: the original each copy belongs to, photographs): the framed versions are
    originals after the photographs, and copies of both."""
    with ProcessPoolExecutor(workers) as pool:
        examples = list(pool.map(training_example, enumerate(paths), chunksize=8))
    originals = [example.original for example in examples] + [example.framed for example in examples]
    copies, source = [], []
    for index, example in enumerate(examples):
        copies += example.copies
        source += [index] * len(example.copies)
        copies += example.framed_copies
        source += [len(examples) + index] * len(example.framed_copies)
    return np.array(originals), np.array(copies), np.array(source), len(examples)


def fit_half(originals: np.ndarray, copies: np.ndarray, source: np.ndarray) -> dict[str, np.ndarray]:
    """LDA of photographs against copy differences on one half's features: the HALF_BITS directions' weights
    (for raw features), their offsets (medians over the originals) and signal/noise spreads (see module)."""
    mean, scale = originals.mean(axis=0), originals.std(axis=0) + 1e-9
    standard = (originals - mean) / scale
    noise = (copies - mean) / scale - standard[source]
    between = np.cov(standard.T)
    within = noise.T @ noise / len(noise)
    within = (1 - SHRINK) * within + SHRINK * np.trace(within) / len(within) * np.eye(len(within))
    values, vectors = np.linalg.eigh(within)
    whiten = vectors / np.sqrt(values)
    spread, directions = np.linalg.eigh(whiten.T @ between @ whiten)
    order = np.argsort(spread)[::-1][:HALF_BITS]
    projection = whiten @ directions[:, order]
    weights = (projection / scale[:, None]).astype(np.float16)
    medians = np.median(originals @ weights.astype(np.float64), axis=0)
    return {"weights": weights, "offsets": medians.astype(np.float32), "spread": spread[order]}


def fit_projection(originals: np.ndarray, copies: np.ndarray, source: np.ndarray) -> dict[str, np.ndarray]:
    """Both halves fitted apart (`fit_half`) and put together: block-diagonal weights, offsets and spreads in bit
    order (the whole half's features give bits 0-63, the inner half's bits 64-127)."""
    columns = (slice(0, WHOLE_FEATURES), slice(WHOLE_FEATURES, FEATURE_COUNT))
    halves = [fit_half(originals[:, part], copies[:, part], source) for part in columns]
    weights = np.zeros((FEATURE_COUNT, SIGNATURE_BITS), dtype=np.float16)
    for index, (part, half) in enumerate(zip(columns, halves, strict=True)):
        weights[part, index * HALF_BITS : (index + 1) * HALF_BITS] = half["weights"]
    return {
        "weights": weights,
        "offsets": np.concatenate([half["offsets"] for half in halves]),
        "spread": np.concatenate([half["spread"] for half in halves]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--limit", type=int, default=0, help="fit on the first N training photographs only")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--write", action="store_true", help=f"store the projection in data/{PROJECTION_FILE}")
    args = parser.parse_args()
    if not (args.realdata / EYEPACS).is_dir():
        sys.exit(f"{args.realdata / EYEPACS}: not found (pass --realdata)")
    rows = [row for row in eyepacs_rows(args.realdata) if not held_out(row["patient_id"])]
    rows = rows[: args.limit] if args.limit else rows
    paths = [args.realdata / EYEPACS / "images" / row["image"] for row in rows]
    started = time.perf_counter()
    originals, copies, source, photographs = training_set(paths, args.workers)
    fitted = fit_projection(originals, copies, source)
    spread = fitted.pop("spread")
    print(
        f"{photographs} photographs (and as many framed), {len(copies)} copies, {FEATURE_COUNT} features, "
        f"{time.perf_counter() - started:.0f} s; signal/noise of directions 1, 8, 32, 64: "
        + "; ".join(
            f"{name} half " + ", ".join(f"{np.sqrt(spread[start + k - 1]):.1f}" for k in (1, 8, 32, 64))
            for name, start in (("whole", 0), ("inner", HALF_BITS))
        )
    )
    about = {
        "data": f"{EYEPACS}: photographs of patients not held out (SHA-256(patient id) mod 10 >= {HELD_OUT_TENTHS})",
        "photographs": photographs,
        "copies": {"kinds": list(COPY_KINDS), "jitter": JITTER, "jitter_share": JITTER_SHARE},
        "framed": {"cut": list(FRAME_CUT), "kinds": list(FRAMED_KINDS)},
        "shrink": SHRINK,
        "bits": SIGNATURE_BITS,
        "halves": {"whole": {"rings": RINGS, "bits": HALF_BITS}, "inner": {"rings": INNER_RINGS, "bits": HALF_BITS}},
        "features": FEATURE_COUNT,
    }
    if args.write:
        np.savez_compressed(PROJECTION_PATH, about=np.array(json.dumps(about)), **fitted)
        print(f"wrote {PROJECTION_PATH.relative_to(REPO)} ({PROJECTION_PATH.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
