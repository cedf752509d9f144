"""Exact Hamming-distance search over binary hashes: every pair within a threshold, far from quadratic.

Multi-index hashing (Norouzi et al., 2012): the bits are dealt into `m` disjoint parts. Two hashes
within distance `r` differ in at most `floor(r / m)` bits of at least one part (pigeonhole), so every
such pair shares, in some part, a key that is equal or one bit away. Candidates are found by sorting
keys (one sort for equal keys, one per bit with that bit set aside for keys one bit apart), then
every candidate is verified on the full hash. Nothing is approximate: the result is exactly the pair
set of a brute-force comparison, which `brute_force_pairs` computes for small inputs and the tests.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

_PARTITION_SEED = 0x5EED  # the fixed deal of bits into parts (any deal is exact; a spread one is fast)
_BRUTE_FORCE_PAIRS = 4_000_000  # below this many pairs, a block-wise brute force is faster than an index
_BLOCK_CELLS = 8_000_000


@dataclass(frozen=True)
class Pairs:
    """Index pairs and their Hamming distances, sorted by (i, j). In a self search i < j."""

    i: np.ndarray
    j: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    def as_set(self) -> set[tuple[int, int]]:
        return set(zip(self.i.tolist(), self.j.tolist(), strict=True))


def hex_to_bytes(hex_hashes: Sequence[str]) -> np.ndarray:
    """Hex hashes of equal length as an (n, bytes) uint8 array (bit k = bit 7 - k % 8 of byte k // 8)."""
    if not hex_hashes:
        return np.zeros((0, 0), dtype=np.uint8)
    raw = b"".join(bytes.fromhex(h) for h in hex_hashes)
    width = len(raw) // len(hex_hashes)
    if width * len(hex_hashes) != len(raw):
        raise ValueError("hashes differ in length")
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(hex_hashes), width)


def popcount_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance of two (n, bytes) uint8 arrays."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int32)


def as_words(hashes: np.ndarray) -> np.ndarray:
    """(n, bytes) uint8 -> (n, words) uint64 view for fast popcounts (byte order does not change counts)."""
    width = hashes.shape[1]
    padded = width + (-width) % 8
    if padded != width:
        hashes = np.concatenate([hashes, np.zeros((len(hashes), padded - width), dtype=np.uint8)], axis=1)
    return np.ascontiguousarray(hashes).view(np.uint64)


def _empty() -> Pairs:
    nothing = np.zeros(0, dtype=np.int64)
    return Pairs(nothing, nothing.copy(), np.zeros(0, dtype=np.int32))


def _sorted_unique(i: np.ndarray, j: np.ndarray, d: np.ndarray, n_right: int) -> Pairs:
    if len(i) == 0:
        return _empty()
    code = i.astype(np.int64) * max(n_right, 1) + j
    code, first = np.unique(code, return_index=True)
    return Pairs(code // max(n_right, 1), code % max(n_right, 1), d[first].astype(np.int32))


def brute_force_pairs(hashes: np.ndarray, threshold: int, other: np.ndarray | None = None) -> Pairs:
    """Every pair within `threshold`, by comparing all of them (block-wise); the reference for `near_pairs`."""
    left = as_words(hashes)
    right = left if other is None else as_words(other)
    if len(left) == 0 or len(right) == 0:
        return _empty()
    block = max(1, _BLOCK_CELLS // (len(right) * right.shape[1]))
    found_i, found_j, found_d = [], [], []
    for start in range(0, len(left), block):
        chunk = left[start : start + block]
        distance = np.bitwise_count(chunk[:, None, :] ^ right[None, :, :]).sum(axis=-1, dtype=np.int32)
        rows, cols = np.nonzero(distance <= threshold)
        rows_global = rows + start
        if other is None:
            keep = rows_global < cols
            rows, cols, rows_global = rows[keep], cols[keep], rows_global[keep]
        found_i.append(rows_global)
        found_j.append(cols)
        found_d.append(distance[rows, cols])
    return _sorted_unique(np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d), len(right))


@dataclass(frozen=True)
class Plan:
    """How an index search is run: parts of the bits, and the key distance probed within each part."""

    parts: tuple[tuple[int, ...], ...]
    radius: int  # 0: equal keys only; 1: equal keys and keys one bit apart


def make_plan(n_left: int, n_right: int, bits: int, threshold: int) -> Plan:
    """The cheapest exact plan by a simple cost model: sorts plus expected candidates per part."""
    index_bits = max(1, math.ceil(math.log2(n_left + n_right + 1)))
    best: tuple[float, Plan] | None = None
    for radius in (0, 1):
        parts_needed = threshold // (radius + 1) + 1
        count = max(parts_needed, math.ceil(bits / (62 - index_bits - 2)))
        if count > bits:
            continue
        width = bits / count
        sorts = count * (1 + radius * width)
        # fundus hashes are far from uniform: count a part's bits at about 3/4 of their worth
        candidates = count * (1 + radius * width) * n_left * n_right / 2 ** (0.75 * width)
        cost = sorts * (n_left + n_right) * 30e-9 + candidates * 20e-9
        deal = np.random.default_rng(_PARTITION_SEED).permutation(bits)
        plan = Plan(tuple(tuple(sorted(deal[p::count].tolist())) for p in range(count)), radius)
        if best is None or cost < best[0]:
            best = (cost, plan)
    if best is None:
        raise ValueError(f"threshold {threshold} is too large for {bits}-bit hashes")
    return best[1]


def near_pairs(
    hashes: np.ndarray,
    threshold: int,
    other: np.ndarray | None = None,
    workers: int | None = 1,
    plan: Plan | None = None,
) -> Pairs:
    """Every pair of rows within Hamming distance `threshold`, exactly as `brute_force_pairs` finds them.

    `hashes` (and `other`) are (n, bytes) uint8 arrays (see `hex_to_bytes`). Without `other`, pairs
    i < j of `hashes`; with it, pairs (i of `hashes`, j of `other`). `workers` processes share the parts
    (None: one per core).
    """
    if threshold < 0:
        return _empty()
    n_left = len(hashes)
    n_right = n_left if other is None else len(other)
    if n_left == 0 or n_right == 0:
        return _empty()
    if other is not None and other.shape[1] != hashes.shape[1]:
        raise ValueError("hashes and other differ in length")
    pair_count = n_left * (n_left - 1) // 2 if other is None else n_left * n_right
    if plan is None and pair_count <= _BRUTE_FORCE_PAIRS:
        return brute_force_pairs(hashes, threshold, other)
    bits = hashes.shape[1] * 8
    plan = plan or make_plan(n_left, n_right, bits, threshold)
    if len(plan.parts) * (plan.radius + 1) <= threshold:
        raise ValueError("plan is not exact for this threshold")
    workers = os.cpu_count() or 1 if workers is None else workers
    joined = hashes if other is None else np.concatenate([hashes, other])
    tasks = [(part, plan.radius, threshold, n_left if other is not None else -1) for part in plan.parts]
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), initializer=_share, initargs=(joined,)) as pool:
            results = list(pool.map(_search_part_shared, tasks))
    else:
        results = [_search_part(joined, *task) for task in tasks]
    i = np.concatenate([r[0] for r in results])
    j = np.concatenate([r[1] for r in results])
    d = np.concatenate([r[2] for r in results])
    if other is not None:
        j = j - n_left
    return _sorted_unique(i, j, d, n_right)


_SHARED: np.ndarray | None = None


def _share(joined: np.ndarray) -> None:
    global _SHARED
    _SHARED = joined


def _search_part_shared(task: tuple[tuple[int, ...], int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    assert _SHARED is not None
    return _search_part(_SHARED, *task)


def _part_keys(hashes: np.ndarray, part: Sequence[int]) -> np.ndarray:
    key = np.zeros(len(hashes), dtype=np.uint64)
    for position, bit in enumerate(part):
        column = (hashes[:, bit // 8] >> np.uint8(7 - bit % 8)) & np.uint8(1)
        key |= column.astype(np.uint64) << np.uint64(position)
    return key


def _search_part(
    joined: np.ndarray, part: tuple[int, ...], radius: int, threshold: int, split: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verified pairs whose keys in this part are equal (or one bit apart, radius 1).

    `split` < 0: a self search over `joined`; else rows before `split` are the left set, the rest the right.
    """
    n = len(joined)
    words = as_words(joined)
    keys = _part_keys(joined, part)
    index_bits = max(1, math.ceil(math.log2(n + 1)))
    index = np.arange(n, dtype=np.uint64)
    side = np.zeros(n, dtype=np.uint64) if split < 0 else (index >= np.uint64(split)).astype(np.uint64)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    # equal keys: label = side (cross sides only in a two-set search)
    if split < 0:
        left, right = _pairs_within_runs(_sorted_codes(keys, np.zeros(n, np.uint64), 0, index, index_bits), index_bits)
    else:
        codes = _sorted_codes(keys, side, 1, index, index_bits)
        left, right = _cross_labels(codes, index_bits, 1, ((0, 1),))
    found.append(_verify(words, left, right, threshold))
    if radius == 1:
        one = np.uint64(1)
        for position in range(len(part)):
            bit = (keys >> np.uint64(position)) & one
            masked = keys & ~(one << np.uint64(position))
            if split < 0:
                codes = _sorted_codes(masked, bit, 1, index, index_bits)
                left, right = _cross_labels(codes, index_bits, 1, ((0, 1),))
            else:
                codes = _sorted_codes(masked, (side << one) | bit, 2, index, index_bits)
                left, right = _cross_labels(codes, index_bits, 2, ((0, 3), (1, 2)))
            found.append(_verify(words, left, right, threshold))
    i = np.concatenate([f[0] for f in found])
    j = np.concatenate([f[1] for f in found])
    d = np.concatenate([f[2] for f in found])
    if split < 0:
        low, high = np.minimum(i, j), np.maximum(i, j)
        return low, high, d
    return np.where(i < split, i, j), np.where(i < split, j, i), d


def _sorted_codes(
    keys: np.ndarray, labels: np.ndarray, label_bits: int, index: np.ndarray, index_bits: int
) -> np.ndarray:
    """Sort (key, label, row) packed in one uint64 per row."""
    codes = (((keys << np.uint64(label_bits)) | labels) << np.uint64(index_bits)) | index
    codes.sort()
    return codes


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + length) for each pair, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - offsets + np.repeat(starts, lengths)


def _segments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal values in a sorted array: (value, start, length)."""
    if len(values) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return values[:0], empty, empty
    breaks = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], breaks]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [len(values)]])).astype(np.int64)
    return values[starts], starts, lengths


def _pairs_within_runs(codes: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """All row pairs sharing a key (positions p < q inside each run), as row indices."""
    _, starts, lengths = _segments(codes >> np.uint64(index_bits))
    keep = lengths > 1
    starts, lengths = starts[keep], lengths[keep]
    rows = codes & np.uint64((1 << index_bits) - 1)
    positions = _ranges(starts, lengths)
    after = np.repeat(starts + lengths, lengths) - positions - 1  # partners after each position
    left = np.repeat(positions, after)
    right = _ranges(positions + 1, after)
    return rows[left].astype(np.int64), rows[right].astype(np.int64)


def _cross_labels(
    codes: np.ndarray, index_bits: int, label_bits: int, label_pairs: tuple[tuple[int, int], ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (a, b) with equal keys, a labelled la and b labelled lb, for each (la, lb)."""
    segment_codes, starts, lengths = _segments(codes >> np.uint64(index_bits))
    labels = (segment_codes & np.uint64((1 << label_bits) - 1)).astype(np.int64)
    rows = codes & np.uint64((1 << index_bits) - 1)
    lefts, rights = [], []
    for first, second in label_pairs:
        chosen = np.flatnonzero(labels == first)
        target = segment_codes[chosen] + np.uint64(second - first)
        where = np.searchsorted(segment_codes, target)
        where = np.minimum(where, len(segment_codes) - 1)
        hit = segment_codes[where] == target
        a_start, a_len = starts[chosen[hit]], lengths[chosen[hit]]
        b_start, b_len = starts[where[hit]], lengths[where[hit]]
        left = np.repeat(_ranges(a_start, a_len), np.repeat(b_len, a_len))
        right = _ranges(np.repeat(b_start, a_len), np.repeat(b_len, a_len))
        lefts.append(rows[left])
        rights.append(rows[right])
    return np.concatenate(lefts).astype(np.int64), np.concatenate(rights).astype(np.int64)


def _verify(
    words: np.ndarray, left: np.ndarray, right: np.ndarray, threshold: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep candidate pairs within `threshold` on the whole hash, checking one word at a time."""
    distance = np.zeros(len(left), dtype=np.int32)
    alive = np.arange(len(left))
    for word in range(words.shape[1]):
        column = words[:, word]
        distance[alive] += np.bitwise_count(column[left[alive]] ^ column[right[alive]]).astype(np.int32)
        alive = alive[distance[alive] <= threshold]
        if len(alive) == 0:
            break
    return left[alive], right[alive], distance[alive]
