"""Copy candidates: every pair of images whose copy signatures (`ImageRef.copy_hash`) lie within a threshold.

The signature is invariant to flips, turns by any angle, crops into the field and re-framing
(`ingest/copy_signature.py`), so one exact Hamming search over the set finds the candidates of every
orientation at once; each candidate still needs a verification (a left and a right eye of one patient, or two
visits of one eye, can be candidates). Images without a signature (catalogs fingerprinted before it existed)
are left out by `signature_matrix`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retinal_reason_data.curation.hamming import Pairs, hex_to_bytes
from retinal_reason_data.curation.orbit_hamming import Group, orbit_pairs
from retinal_reason_data.ingest.copy_signature import SIGNATURE_BITS

SIGNATURE_BYTES = SIGNATURE_BITS // 8
# the signature has no orientation to search: the one-element group makes `orbit_pairs` a plain exact search, in
# bounded memory (sliced, screened candidates): at 1M signatures 8.7 s and 125 MB against 14 s and 290 MB for
# `hamming.near_pairs` (benchmarks/README.md, issue 18)
_AS_IS = Group([(np.arange(SIGNATURE_BITS), np.zeros(SIGNATURE_BITS, dtype=bool))])


def copy_candidates(hashes: np.ndarray, threshold: int, workers: int | None = None) -> Pairs:
    """Pairs i < j of rows of `hashes` ((n, 16) uint8 copy signatures) within Hamming distance `threshold`,
    exactly (multi-index search, one pass); `workers` processes (None: one per core)."""
    if hashes.ndim != 2 or (len(hashes) and hashes.shape[1] != SIGNATURE_BYTES):
        raise ValueError(f"copy signatures must be an (n, {SIGNATURE_BYTES}) uint8 array, got shape {hashes.shape}")
    if not 0 <= threshold < SIGNATURE_BITS // 2:
        raise ValueError(f"copy threshold {threshold} must be within 0-{SIGNATURE_BITS // 2 - 1}")
    return orbit_pairs(np.ascontiguousarray(hashes, dtype=np.uint8), threshold, _AS_IS, workers=workers)


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
