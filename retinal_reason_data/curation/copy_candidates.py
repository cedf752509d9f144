"""Copy candidates: every pair of images whose copy signatures (`ImageRef.copy_hash`) lie within a threshold in
either half (the whole rings' 64 bits or the inner rings' 64 bits: `ingest/copy_signature.py`).

The signature is invariant to flips, turns by any angle, crops into the field and re-framing, so one exact
Hamming search per half over the set finds the candidates of every orientation at once; a crop that takes arcs
off the outer rings still meets its photograph in the inner half. Each candidate still needs a verification (a
left and a right eye of one patient, or two visits of one eye, can be candidates). Images without a signature
(catalogs fingerprinted before it existed) are left out by `signature_matrix`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retinal_reason_data.curation.hamming import Pairs, hex_to_bytes, popcount_distance
from retinal_reason_data.curation.orbit_hamming import Group, orbit_pairs
from retinal_reason_data.ingest.copy_signature import HALF_BITS, SIGNATURE_BITS

SIGNATURE_BYTES = SIGNATURE_BITS // 8
HALF_BYTES = HALF_BITS // 8
HALVES = (slice(0, HALF_BYTES), slice(HALF_BYTES, SIGNATURE_BYTES))  # the whole half's bytes, the inner half's
# the signature has no orientation to search: the one-element group makes `orbit_pairs` a plain exact search, in
# bounded memory (sliced, screened candidates); both halves at 7 search 1M signatures in about the time one
# search of all 128 bits at 15 took (benchmarks/README.md, issue 18)
_AS_IS = Group([(np.arange(HALF_BITS), np.zeros(HALF_BITS, dtype=bool))])


def copy_candidates(hashes: np.ndarray, threshold: int, workers: int | None = None) -> Pairs:
    """Pairs i < j of rows of `hashes` ((n, 16) uint8 copy signatures) within Hamming distance `threshold` in
    either half, exactly (a multi-index search per half); the distance is the smaller half's
    (`closer_half_distance`). `workers` processes (None: one per core)."""
    if hashes.ndim != 2 or (len(hashes) and hashes.shape[1] != SIGNATURE_BYTES):
        raise ValueError(f"copy signatures must be an (n, {SIGNATURE_BYTES}) uint8 array, got shape {hashes.shape}")
    if not 0 <= threshold < HALF_BITS // 2:
        raise ValueError(f"copy threshold {threshold} must be within 0-{HALF_BITS // 2 - 1} (bits of a 64-bit half)")
    halves = [orbit_pairs(np.ascontiguousarray(hashes[:, half]), threshold, _AS_IS, workers=workers) for half in HALVES]
    return _union(halves, len(hashes))


def half_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row by row, the Hamming distances of the whole and the inner half of (n, 16) uint8 signatures: (n, 2)."""
    return np.stack([popcount_distance(first[..., half], second[..., half]) for half in HALVES], axis=-1)


def closer_half_distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row by row, the smaller of the two halves' Hamming distances (what `copy_candidates` compares with its
    threshold)."""
    return half_distances(first, second).min(axis=-1)


def _union(found: Sequence[Pairs], n: int) -> Pairs:
    """The pairs found in any of `found`, each once with its smallest distance, sorted by (i, j)."""
    i = np.concatenate([pairs.i for pairs in found]).astype(np.int64)
    j = np.concatenate([pairs.j for pairs in found]).astype(np.int64)
    distance = np.concatenate([pairs.distance for pairs in found])
    code = i * n + j
    order = np.lexsort((distance, code))
    first = np.ones(len(order), dtype=bool)
    first[1:] = code[order][1:] != code[order][:-1]
    keep = order[first]
    return Pairs(i[keep], j[keep], distance[keep])


def signature_matrix(copy_hashes: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(signatures, rows): the (m, 16) uint8 signatures of the images that have one, and their positions in
    `copy_hashes` (so that a candidate pair (i, j) is images rows[i] and rows[j])."""
    rows = np.array([k for k, value in enumerate(copy_hashes) if value], dtype=np.int64)
    present = [copy_hashes[k] for k in rows.tolist()]
    if not present:
        return np.zeros((0, SIGNATURE_BYTES), dtype=np.uint8), rows
    wrong = next((value for value in present if len(value) != 2 * SIGNATURE_BYTES), None)
    if wrong is not None:
        raise ValueError(f"copy signature {wrong!r} is not {2 * SIGNATURE_BYTES} hex digits")
    return hex_to_bytes(present), rows
