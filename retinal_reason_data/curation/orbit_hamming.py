"""Exact Hamming search up to a group of signed bit permutations, in one pass: every pair of hashes within a
threshold in *some* orientation (the flips and quarter turns of `fieldhash`), without one search per orientation.

A group element g maps a hash h to g(h)[k] = h[source[k]] ^ invert[k] (`fieldhash.orientation_map`). A pair
(a, b) matches when min over g of d(a, g(b)) <= r. The bits are dealt into parts that are unions of the orbits
of the permutations (a bit and its transposed bit stay together), so each g maps a part's key to a key of the
same part. By the pigeonhole principle, a matching pair is within floor(r / m) bits in some part of m, for the
g that matches. Keys are then made orientation-canonical (the smallest over the group), which finds:

- radius 0: keys equal in some orientation, as equal canonical keys;
- radius 1: keys one bit apart in some orientation. For each orbit of bit positions (a bit and its transpose),
  every key is entered once per position of the orbit with that bit taken out; the canonical form of (key, hole)
  is the smallest over the group of the key with the bit at the moved hole taken out (the hole's place in the
  orbit included), and the taken-out bit is the label. Two keys one bit apart at the hole in some orientation
  have equal canonical forms and different labels. When the label is ambiguous (an orientation flips only the
  hole bit), the two keys are equal in another orientation and the radius-0 pass finds them.

Each part sorts as many codes as one plain radius-1 search (one per bit of the part), so every orientation costs
about what one orientation cost before (1.8 times at 1M fundus-like hashes), against seven searches. Sorted codes
are searched a slice at a time, candidates screened on one 64-bit word under every orientation and verified on
the whole hash, so a part holds about 90 MB at 1M hashes; the result is exactly `brute_force_orbit_pairs`, which
the tests compare. With a one-element group (the identity) it is a plain exact search (`copy_candidates`).
Parts are searched by this process and forked workers, which share the hashes' memory.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retinal_reason_data.curation.hamming import (
    Pairs,
    _ranges,
    _sorted_unique,
    as_words,
    brute_force_pairs,
)

_PARTITION_SEED = 0x5EED
_BRUTE_FORCE_PAIRS = 4_000_000  # below this many pairs (per orientation) a block-wise brute force is faster
_CANDIDATE_CHUNK = 1 << 18  # candidate pairs made and verified at a time (bounds the temporaries)
_SLICE = 1 << 18  # sorted codes searched at a time

SignedPermutation = tuple[np.ndarray, np.ndarray]  # (source bit of each bit, bits to invert), as numpy arrays


@dataclass(frozen=True)
class OrbitPairs(Pairs):
    """Pairs i < j with d = min over the group of d(hashes[i], g(hashes[j])); `element[k]`: the first g (index
    in the group) that reaches it."""

    element: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))


@dataclass(frozen=True)
class OrbitPlan:
    """Parts of the bits (each a union of permutation orbits) and the key distance probed in each."""

    parts: tuple[tuple[int, ...], ...]
    radius: int


class Group:
    """A group of signed bit permutations over `bits` bits, with what the search needs of it."""

    def __init__(self, elements: Sequence[SignedPermutation]) -> None:
        self.elements = [(np.asarray(s, dtype=np.int64), np.asarray(v, dtype=bool)) for s, v in elements]
        self.bits = len(self.elements[0][0])
        identity = np.arange(self.bits)
        if not any(np.array_equal(s, identity) and not v.any() for s, v in self.elements):
            raise ValueError("the group has no identity element")
        seen = {(s.tobytes(), v.tobytes()) for s, v in self.elements}
        for s1, v1 in self.elements:  # closed under composition: g1(g2(h))[k] = h[s2[s1[k]]] ^ v2[s1[k]] ^ v1[k]
            for s2, v2 in self.elements:
                if (s2[s1].tobytes(), (v2[s1] ^ v1).tobytes()) not in seen:
                    raise ValueError("the signed permutations are not closed under composition")
        self.permutations: list[np.ndarray] = []  # distinct permutations
        self.classes: list[int] = []  # per element: index of its permutation
        for source, _ in self.elements:
            for index, known in enumerate(self.permutations):
                if np.array_equal(known, source):
                    self.classes.append(index)
                    break
            else:
                self.classes.append(len(self.permutations))
                self.permutations.append(source)

    def orbits(self) -> list[tuple[int, ...]]:
        """Orbits of the bit positions under the permutations, each sorted, in order of their first bit."""
        seen: set[int] = set()
        orbits = []
        for bit in range(self.bits):
            if bit in seen:
                continue
            orbit = sorted({int(source[bit]) for source in self.permutations})
            seen.update(orbit)
            orbits.append(tuple(orbit))
        return orbits

    def apply(self, hashes: np.ndarray, element: int) -> np.ndarray:
        """g(hashes) for (n, bytes) uint8 hashes."""
        source, invert = self.elements[element]
        return np.packbits(np.unpackbits(hashes, axis=1)[:, source] ^ invert.astype(np.uint8), axis=1)


def brute_force_orbit_pairs(hashes: np.ndarray, threshold: int, group: Group) -> OrbitPairs:
    """The reference: for every element a brute-force two-set search of `hashes` against g(hashes)."""
    best: dict[tuple[int, int], tuple[int, int]] = {}
    for element in range(len(group.elements)):
        found = brute_force_pairs(hashes, threshold, other=group.apply(hashes, element))
        for i, j, d in zip(found.i.tolist(), found.j.tolist(), found.distance.tolist(), strict=True):
            if i < j and ((i, j) not in best or d < best[(i, j)][0]):
                best[(i, j)] = (d, element)
    return _orbit_pairs_from(best)


def _orbit_pairs_from(best: dict[tuple[int, int], tuple[int, int]]) -> OrbitPairs:
    keys = sorted(best)
    i = np.array([k[0] for k in keys], dtype=np.int64)
    j = np.array([k[1] for k in keys], dtype=np.int64)
    distance = np.array([best[k][0] for k in keys], dtype=np.int32)
    element = np.array([best[k][1] for k in keys], dtype=np.int8)
    return OrbitPairs(i, j, distance, element)


def make_orbit_plan(n: int, group: Group, threshold: int, hashes: np.ndarray | None = None) -> OrbitPlan:
    """The cheapest exact plan by the cost model of `hamming.make_plan`; parts are unions of whole orbits.

    With `hashes`, orbits are dealt so that every part holds about the same information (by the collision
    entropy of its bits in these hashes: fundus hashes have bits that almost never differ, and a part made of them
    collides often); any deal is exact, a balanced one is faster (20-30 % fewer candidates on fundus-like hashes)."""
    index_bits = max(1, math.ceil(math.log2(n + 1)))
    orbits = group.orbits()
    largest = max(len(o) for o in orbits)
    hole_bits = max(1, math.ceil(math.log2(largest)))
    key_room = 63 - index_bits - hole_bits - 1  # key, hole's place in its orbit, label, row
    weights = None if hashes is None else bit_weights(hashes)
    best: tuple[float, OrbitPlan] | None = None
    for radius in (0, 1):
        count = max(threshold // (radius + 1) + 1, math.ceil(group.bits / (key_room - largest)))
        if count > len(orbits):
            continue
        parts = _deal(orbits, count, weights)
        width = min(len(p) for p in parts)
        if max(len(p) for p in parts) > key_room:
            continue
        # every orientation multiplies the chance that two keys collide; the skewed bits of fundus hashes
        # make the non-identity ones rare, so count them at twice, not eight times, the identity's chance
        candidates = 2 * count * (1 + radius * width) * n * n / 2 / 2 ** (0.75 * width)
        cost = count * (1 + radius * width) * n * 60e-9 + candidates * 20e-9
        if best is None or cost < best[0]:
            best = (cost, OrbitPlan(parts, radius))
    if best is None:
        raise ValueError(f"threshold {threshold} is too large for {group.bits}-bit hashes")
    return best[1]


def bit_weights(hashes: np.ndarray, sample: int = 65_536) -> np.ndarray:
    """Collision entropy of each bit, -log2(p^2 + (1 - p)^2), over an evenly spaced sample of the hashes."""
    rows = hashes[:: max(1, len(hashes) // sample)]
    share = np.unpackbits(rows, axis=1).mean(axis=0)
    return -np.log2(np.maximum(share**2 + (1 - share) ** 2, 1e-12))


def _deal(orbits: list[tuple[int, ...]], count: int, weights: np.ndarray | None = None) -> tuple[tuple[int, ...], ...]:
    """Orbits dealt into `count` parts: without `weights`, of about equal size (a fixed shuffle, then the emptiest
    part first); with them, of about equal total weight (heaviest orbit first to the lightest part)."""
    order = np.random.default_rng(_PARTITION_SEED).permutation(len(orbits)).tolist()
    size = [float(len(o)) if weights is None else float(weights[list(o)].sum()) for o in orbits]
    parts: list[list[int]] = [[] for _ in range(count)]
    load = [0.0] * count
    for index in sorted(order, key=lambda k: -size[k]):
        lightest = min(range(count), key=lambda p: (load[p], len(parts[p]), p))
        parts[lightest].extend(orbits[index])
        load[lightest] += size[index]
    return tuple(tuple(sorted(p)) for p in parts)


def orbit_pairs(
    hashes: np.ndarray,
    threshold: int,
    group: Group,
    workers: int | None = 1,
    plan: OrbitPlan | None = None,
) -> OrbitPairs:
    """Every pair i < j with min over `group` of d(hashes[i], g(hashes[j])) <= `threshold`, exactly as
    `brute_force_orbit_pairs` finds them. `hashes`: (n, bytes) uint8 (`hamming.hex_to_bytes`); `workers`
    processes share the parts (None: one per core; they are forked, so they share the hashes' memory)."""
    n = len(hashes)
    if threshold < 0 or n < 2:
        return _orbit_pairs_from({})
    if hashes.shape[1] * 8 != group.bits:
        raise ValueError(f"hashes have {hashes.shape[1] * 8} bits, the group acts on {group.bits}")
    if plan is None and n * (n - 1) // 2 <= _BRUTE_FORCE_PAIRS:
        return brute_force_orbit_pairs(hashes, threshold, group)
    plan = plan or make_orbit_plan(n, group, threshold, hashes)
    if len(plan.parts) * (plan.radius + 1) <= threshold:
        raise ValueError("plan is not exact for this threshold")
    workers = os.cpu_count() or 1 if workers is None else workers
    searcher = _Searcher(hashes, group, threshold)  # made before the workers fork: they share its arrays
    tasks = [(part, plan.radius) for part in plan.parts]
    workers = min(workers, len(tasks))
    if workers > 1:
        # this process and workers - 1 forked ones take the next part to search until none is left
        context = multiprocessing.get_context("fork")
        taken = context.Value("i", 0)
        with ProcessPoolExecutor(
            workers - 1, mp_context=context, initializer=_share, initargs=(searcher, tasks, taken)
        ) as pool:
            theirs = [pool.submit(_search_remaining) for _ in range(workers - 1)]
            _share(searcher, tasks, taken)
            results = _search_remaining()
            for future in theirs:
                results += future.result()
    else:
        results = [searcher.search_part(*task) for task in tasks]
    i = np.concatenate([r[0] for r in results])
    j = np.concatenate([r[1] for r in results])
    d = np.concatenate([r[2] for r in results])
    e = np.concatenate([r[3] for r in results])
    unique = _sorted_unique(i, j, np.arange(len(i)), n)  # a pair's distance and element are the same in every part
    chosen = unique.distance
    return OrbitPairs(unique.i, unique.j, d[chosen].astype(np.int32), e[chosen].astype(np.int8))


_SHARED: dict[str, Any] = {}


def _share(searcher: _Searcher, tasks: list[tuple[tuple[int, ...], int]], taken: Any) -> None:
    _SHARED.update(searcher=searcher, tasks=tasks, taken=taken)


def _search_remaining() -> list[tuple[np.ndarray, ...]]:
    """Search parts until every part is taken (by this process or another)."""
    searcher, tasks, taken = _SHARED["searcher"], _SHARED["tasks"], _SHARED["taken"]
    results = []
    while True:
        with taken.get_lock():
            number = taken.value
            taken.value += 1
        if number >= len(tasks):
            return results
        results.append(searcher.search_part(*tasks[number]))


def _bit_columns(hashes: np.ndarray, bits: Sequence[int]) -> np.ndarray:
    """uint64 keys whose bit `position` is hash bit `bits[position]` (bit k = bit 7 - k % 8 of byte k // 8): one
    lookup per byte that holds some of the bits."""
    key = np.zeros(len(hashes), dtype=np.uint64)
    by_byte: dict[int, list[tuple[int, int]]] = {}
    for position, bit in enumerate(bits):
        by_byte.setdefault(bit // 8, []).append((position, 7 - bit % 8))
    values = np.arange(256, dtype=np.uint64)
    for byte, taken in sorted(by_byte.items()):
        table = np.zeros(256, dtype=np.uint64)
        for position, shift in taken:
            table |= ((values >> np.uint64(shift)) & np.uint64(1)) << np.uint64(position)
        key |= table[hashes[:, byte]]
    return key


class _Searcher:
    """The search of one part at a time over shared arrays: per distinct permutation, the permuted hashes (as
    64-bit words) and their screening word.

    Most candidates are far apart: the 64 bits of one word under every element rule them out (their smallest
    distance there already exceeds the threshold). The screening word is the one that rules out most random
    pairs of these hashes; it is read in the order of the sorted codes, so that a run's partners are adjacent in
    memory. Only the candidates that pass are compared on the whole hash."""

    def __init__(self, hashes: np.ndarray, group: Group, threshold: int) -> None:
        if not np.array_equal(group.permutations[0], np.arange(group.bits)):
            raise ValueError("the group's first element must be the identity")
        self.hashes, self.group, self.threshold = hashes, group, threshold
        self.words = [as_words(_permute(hashes, source)) for source in group.permutations]
        width = hashes.shape[1]
        self.masks = [as_words(np.packbits(invert.astype(np.uint8))[None, :width])[0] for _, invert in group.elements]
        self.screen = self._screening_word()
        self.screen_words = [np.ascontiguousarray(words[:, self.screen]) for words in self.words]

    def _screening_word(self, sample: int = 8192) -> int:
        rng = np.random.default_rng(_PARTITION_SEED)
        i, j = rng.integers(0, len(self.hashes), (2, sample))
        passed = []
        for word in range(self.words[0].shape[1]):
            low = self._smallest(self.words[0][i, word], [words[j, word] for words in self.words], word)
            passed.append(int(np.count_nonzero(low <= self.threshold)))
        return int(np.argmin(passed))

    def _smallest(self, left: np.ndarray, right: list[np.ndarray], word: int) -> np.ndarray:
        """Per pair, the smallest distance over the elements within one word."""
        differences = [left ^ values for values in right]
        low: np.ndarray | None = None
        for klass, mask in zip(self.group.classes, self.masks, strict=True):
            distance = np.bitwise_count(differences[klass] ^ mask[word])
            low = distance if low is None else np.minimum(low, distance, out=low)
        assert low is not None
        return low

    def search_part(self, part: tuple[int, ...], radius: int) -> tuple[np.ndarray, ...]:
        """Verified pairs of one part: (i, j, distance, element), i < j, possibly repeated."""
        found = []
        index_bits = max(1, math.ceil(math.log2(len(self.hashes) + 1)))
        for codes, cross in _sorted_codes(self.hashes, self.group, part, radius, index_bits):
            for start, stop in _slices(codes, index_bits + cross, _SLICE):
                piece = codes[start:stop]
                rows = (piece & np.uint64((1 << index_bits) - 1)).view(np.int64)
                for left, right in _run_pairs(piece, index_bits, cross, rows, self):
                    found.append(self.verify(rows[left], rows[right]))
        if not found:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int8)
        return tuple(np.concatenate([f[k] for f in found]) for k in range(4))

    def verify(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, ...]:
        """Pairs (low, high) within the threshold on the whole hash under some element: (i, j, distance, element)."""
        keep = left != right  # a row against itself (two holes of one orbit)
        i, j = np.minimum(left[keep], right[keep]), np.maximum(left[keep], right[keep])
        a = self.words[0][i]
        best = np.full(len(i), 1 << 30, dtype=np.int32)
        best_element = np.zeros(len(i), dtype=np.int8)
        differences = [a ^ words[j] for words in self.words]
        for element, (klass, mask) in enumerate(zip(self.group.classes, self.masks, strict=True)):
            distance = np.bitwise_count(differences[klass] ^ mask).sum(axis=1, dtype=np.int32)
            better = distance < best
            best[better] = distance[better]
            best_element[better] = element
        close = best <= self.threshold
        return i[close], j[close], best[close], best_element[close]


def _sorted_codes(
    hashes: np.ndarray, group: Group, part: tuple[int, ...], radius: int, index_bits: int
) -> Iterator[tuple[np.ndarray, bool]]:
    """Sorted (canonical key, row) codes of one part: first the keys (pairs within runs are candidates), then with
    radius 1 per orbit of bit positions the holed keys (pairs labelled 0 and 1 across runs are candidates)."""
    n = len(hashes)
    place = {bit: position for position, bit in enumerate(part)}
    # the key of g(h) is a permutation of the key of h (one per distinct permutation) XOR a constant
    permuted = [_bit_columns(hashes, [int(source[bit]) for bit in part]) for source in group.permutations]
    element_keys = []  # per element: (its permutation's index, the mask it XORs onto the permuted key)
    for (_, invert), klass in zip(group.elements, group.classes, strict=True):
        mask = sum(1 << position for position, bit in enumerate(part) if invert[bit])
        element_keys.append((klass, np.uint64(mask)))
    index = np.arange(n, dtype=np.uint64)
    codes = _min_over(permuted, element_keys)
    codes <<= np.uint64(index_bits)
    codes |= index
    codes.sort()
    yield codes, False
    if radius == 0:
        return
    orbits = sorted({tuple(sorted(place[int(s[bit])] for s in group.permutations)) for bit in part})
    hole_bits = max(1, math.ceil(math.log2(max(len(o) for o in orbits))))
    scratch = np.empty(n, dtype=np.uint64)
    holed = [np.empty(n, dtype=np.uint64) for _ in permuted]
    for orbit in orbits:
        codes = np.empty(n * len(orbit), dtype=np.uint64)
        for number, hole in enumerate(orbit):
            # where the hole's bit goes under each permutation: the position whose source is the hole's bit
            moved = [place[int(np.flatnonzero(source == part[hole])[0])] for source in group.permutations]
            # the holed code is linear in the key: code(P(h) ^ mask) = code(P(h)) ^ code(mask), so each
            # permutation's codes are made once and each element costs one XOR and one minimum
            for keys, position, out in zip(permuted, moved, holed, strict=True):
                _holed(keys, position, orbit.index(position), hole_bits, out, scratch)
            best = codes[number * n : (number + 1) * n]
            for number_of_element, (klass, mask) in enumerate(element_keys):
                offset = _holed(np.array([mask], dtype=np.uint64), moved[klass], 0, hole_bits)[0]
                if number_of_element == 0:
                    np.bitwise_xor(holed[klass], offset, out=best)
                else:
                    np.bitwise_xor(holed[klass], offset, out=scratch)
                    np.minimum(best, scratch, out=best)
            best <<= np.uint64(index_bits)
            best |= index
        codes.sort()
        yield codes, True


def _slices(codes: np.ndarray, shift: int, size: int) -> Iterator[tuple[int, int]]:
    """Cuts of sorted codes into slices of about `size` that never split a group of equal `codes >> shift` (a run
    of one key, or a key labelled 0 and 1), so that each slice is searched alone in bounded memory."""
    start = 0
    while start < len(codes):
        stop = min(start + size, len(codes))
        if stop < len(codes):
            group = int(codes[stop - 1] >> np.uint64(shift))
            stop = int(np.searchsorted(codes, np.uint64((group + 1) << shift)))
        yield start, stop
        start = stop


def _run_pairs(
    codes: np.ndarray, index_bits: int, cross: bool, rows: np.ndarray, searcher: _Searcher
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Positions (in `codes`) of candidate pairs that pass the screening word, in chunks: all pairs within runs of
    one key; or, `cross`, pairs of a key whose lowest bit (the label) is 0 with the same key labelled 1. `rows`:
    the row of each code."""
    key = codes >> np.uint64(index_bits)
    starts = np.flatnonzero(key[1:] != key[:-1]) + 1
    starts = np.concatenate([[0], starts])
    lengths = np.diff(np.append(starts, len(codes)))
    if cross:
        # a key labelled 0 and the same key labelled 1 are consecutive values: the partner is the next run
        run_keys = key[starts]
        del key
        zero = np.flatnonzero((run_keys[:-1] & np.uint64(1)) == 0)
        zero = zero[run_keys[zero + 1] == run_keys[zero] + np.uint64(1)]
        del run_keys
        positions = _ranges(starts[zero], lengths[zero])
        partner_start = np.repeat(starts[zero + 1], lengths[zero])
        partner_count = np.repeat(lengths[zero + 1], lengths[zero])
        involved = np.concatenate([positions, _ranges(starts[zero + 1], lengths[zero + 1])])
    else:
        del key
        long = lengths > 1
        involved = _ranges(starts[long], lengths[long])
        last = np.cumsum(lengths[long]) - 1  # the last of each run pairs with none after it
        keep = np.ones(len(involved), dtype=bool)
        keep[last] = False
        positions = involved[keep]
        partner_start = positions + 1
        partner_count = np.repeat(starts[long] + lengths[long], lengths[long])[keep] - positions - 1
    del starts, lengths
    # the screening words of the codes that take part in a pair (random reads: only those are made)
    screen = [np.zeros(len(codes), dtype=np.uint64) for _ in searcher.screen_words]
    for values, out in zip(searcher.screen_words, screen, strict=True):
        out[involved] = values[rows[involved]]
    del involved
    total = np.cumsum(partner_count)
    begin = 0
    while begin < len(positions):
        reached = int(total[begin - 1]) if begin else 0
        end = max(begin + 1, int(np.searchsorted(total, reached + _CANDIDATE_CHUNK, side="right")))
        counts = partner_count[begin:end]
        right = _ranges(partner_start[begin:end], counts)
        left_values = np.repeat(screen[0][positions[begin:end]], counts)
        low = searcher._smallest(left_values, [values[right] for values in screen], searcher.screen)
        passed = np.flatnonzero(low <= searcher.threshold)
        # the left position of each passed candidate: the last position whose candidates start at or before it
        owner = np.searchsorted(total[begin:end] - reached, passed, side="right")
        yield positions[begin:end][owner], right[passed]
        begin = end


def _min_over(permuted: list[np.ndarray], element_keys: list[tuple[int, np.uint64]]) -> np.ndarray:
    best: np.ndarray | None = None
    for klass, mask in element_keys:
        key = permuted[klass] ^ mask
        best = key if best is None else np.minimum(best, key, out=best)
    assert best is not None
    return best


def _holed(
    keys: np.ndarray,
    position: int,
    place_in_orbit: int,
    hole_bits: int,
    out: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """Keys with bit `position` taken out: (rest of the key, the hole's place in its orbit, the bit)."""
    out = np.empty_like(keys) if out is None else out
    scratch = np.empty_like(keys) if scratch is None else scratch
    bit = np.uint64(position)
    np.bitwise_and(keys, ~(np.uint64(1) << bit), out=out)
    np.left_shift(out, np.uint64(hole_bits + 1), out=out)
    out |= np.uint64(place_in_orbit << 1)
    np.right_shift(keys, bit, out=scratch)
    scratch &= np.uint64(1)
    out |= scratch
    return out


def _permute(hashes: np.ndarray, source: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Hashes with bit k taken from bit source[k]. Bits are unpacked a chunk at a time with one row per bit, so
    that the permutation moves whole rows (a column gather over unpacked bits is 3x slower)."""
    if np.array_equal(source, np.arange(len(source))):
        return hashes
    out = np.empty_like(hashes)
    for start in range(0, len(hashes), chunk):
        bits = np.unpackbits(np.ascontiguousarray(hashes[start : start + chunk].T), axis=0)
        out[start : start + chunk] = np.packbits(bits[source], axis=0).T
    return out
