"""Inputs of the copy stage of the 1M deduplication benchmark (`dedup_search.py --pipeline`): copy signatures that
look like real ones, copies planted among them, and real files for the candidate pairs to verify.

- The 128 projections behind `copy_hash` (`copy_signature.signature_features` times the shipped projection,
  less its offsets) are computed for real photographs; a Gaussian with their mean and (shrunk) covariance is
  drawn N times and the signs are the synthetic signatures, as `dedup_search.synthetic_hashes` does for
  `near_hash`. Distance percentiles of the real and the drawn signatures are printed side by side.
- A near copy of the synthetic set (found by the field hashes) gets its source's signature with as many bits
  flipped in each half as a real photometric copy's signature differs from its original's in that half (drawn
  from measured pairs of distances);
  a *re-framed* copy (`--reframed` of them: crops, rotations, padding, field box) gets an independent
  `near_hash` and its source's signature with the distance of a real copy of those kinds.
- Each candidate pair the copy search yields is then verified on real files: a pair of one family (a planted
  copy) on a fresh photometric copy and a fresh re-framed copy of one EyePACS 256 px photograph, any other pair
  on fresh photometric copies of two different photographs, so that every image's features are computed, as
  they would be, once.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from retinal_reason_data.curation.copy_candidates import half_distances
from retinal_reason_data.ingest.copy_signature import HALF_BITS, SIGNATURE_BITS, load_projection, signature_features
from retinal_reason_data.ingest.fieldhash import prepare
from retinal_reason_data.phantoms.copies import make_copy

REFRAMING = ("crop8", "crop10", "rot5", "rot10", "rot30", "pad_square", "bbox_crop")


def projections(images: list[Image.Image]) -> np.ndarray:
    """(m, 128) projections whose signs are the copy signatures of `images`."""
    projection = load_projection()
    rows = [signature_features(prepare(image.convert("L"))).astype(np.float32) for image in images]
    return np.array(rows) @ projection.weights - projection.offsets


def copy_distances(photos: list[Path], kinds: tuple[str, ...], seed: int) -> list[tuple[int, int]]:
    """Signature distances per half (whole, inner) between real photographs and copies of them of `kinds` (one
    copy per photograph, kinds in turn)."""
    rng = random.Random(seed)
    distances = []
    for number, path in enumerate(photos):
        with Image.open(path) as image:
            original = image.convert("RGB")
        copy, _ = make_copy(original, kinds[number % len(kinds)], rng)
        both = np.packbits(projections([original, copy]) > 0, axis=1)
        whole, inner = half_distances(both[0], both[1]).tolist()
        distances.append((whole, inner))
    return distances


def synthetic_signatures(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n signatures (n, 16) uint8: signs of draws from a Gaussian fitted to real projections."""
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0)
    sample = np.cov(real, rowvar=False)
    covariance = 0.9 * sample + 0.1 * np.diag(np.diag(sample))
    factor = np.linalg.cholesky(covariance + 1e-9 * np.eye(len(mean))).astype(np.float32)
    chunks = []
    for start in range(0, n, 100_000):
        draws = rng.standard_normal((min(100_000, n - start), len(mean)), dtype=np.float32) @ factor.T
        chunks.append(np.packbits(draws + mean.astype(np.float32) > 0, axis=1))
    return np.concatenate(chunks)


def flipped(signatures: np.ndarray, distances: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row with `distances[row, half]` of the bits of each half flipped at random."""
    flips = np.zeros((len(signatures), SIGNATURE_BITS), dtype=bool)
    for row, counts in enumerate(distances.tolist()):
        for half, count in enumerate(counts):
            flips[row, half * HALF_BITS + rng.choice(HALF_BITS, min(count, HALF_BITS), replace=False)] = True
    return signatures ^ np.packbits(flips, axis=1)


def plant_copies(
    near: np.ndarray,
    signatures: np.ndarray,
    near_sources: np.ndarray,
    photometric: list[tuple[int, int]],
    reframing: list[tuple[int, int]],
    reframed: int,
    seed: int,
) -> np.ndarray:
    """Copy signatures for the near copies (the last len(near_sources) rows, copies of `near_sources`) and for
    `reframed` re-framed copies planted among the other rows (their near hash stays their own); the family of
    every row (the row it is a copy of, else itself). Modifies `signatures` in place."""
    rng = np.random.default_rng(seed)
    n, copies = len(near), len(near_sources)
    family = np.arange(n)
    rows = np.arange(n - copies, n)
    family[rows] = near_sources
    signatures[rows] = flipped(signatures[near_sources], rng.choice(np.array(photometric), copies), rng)
    distinct = n - copies
    chosen = rng.choice(distinct, 2 * reframed, replace=False)
    planted, sources = chosen[:reframed], chosen[reframed:]
    family[planted] = sources
    signatures[planted] = flipped(signatures[sources], rng.choice(np.array(reframing), reframed), rng)
    return family


def verification_pool(
    photos: list[Path], same: int, different: int, folder: Path, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Fresh files: `same` pairs (a photometric and a re-framed copy of one photograph) and `different` pairs
    (photometric copies of two photographs), written to `folder` as PNG."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def write(path: Path, kind: str, name: str) -> str:
        with Image.open(path) as image:
            copy, _ = make_copy(image.convert("RGB"), kind, rng)
        out = folder / name
        copy.save(out, format="PNG", compress_level=1)
        return str(out)

    same_pairs, different_pairs = [], []
    for number in range(same):
        photo = photos[number % len(photos)]
        kind = REFRAMING[number % len(REFRAMING)]
        same_pairs.append((write(photo, "photometric", f"s{number}a.png"), write(photo, kind, f"s{number}b.png")))
    for number in range(different):
        first, second = rng.sample(photos, 2)
        different_pairs.append(
            (write(first, "photometric", f"d{number}a.png"), write(second, "photometric", f"d{number}b.png"))
        )
    return same_pairs, different_pairs
