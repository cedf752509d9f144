"""The Hamming index finds exactly the pairs a brute-force comparison finds, on random and clustered hashes."""

from __future__ import annotations

import numpy as np
import pytest

from retinal_reason_data.curation.hamming import (
    Plan,
    brute_force_pairs,
    hex_to_bytes,
    make_plan,
    near_pairs,
    popcount_distance,
)


def _random(n: int, seed: int, width: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, width), dtype=np.uint8)


def _clustered(n: int, seed: int, width: int = 32) -> np.ndarray:
    """Fundus-like hashes: biased, correlated bits around a common centre, plus copies a few bits apart."""
    rng = np.random.default_rng(seed)
    bits = width * 8
    centre = rng.random(bits) < 0.5
    bias = rng.uniform(0.02, 0.5, bits)  # some bits almost never differ from the centre
    base = centre ^ (rng.random((n // 2, bits)) < bias)
    copies = base[rng.integers(0, len(base), n - len(base))]
    copies = copies ^ (rng.random(copies.shape) < rng.uniform(0.0, 0.06, (len(copies), 1)))
    return np.packbits(np.concatenate([base, copies]), axis=1)


def _plans(bits: int, threshold: int) -> list[Plan]:
    deal = np.random.default_rng(3).permutation(bits)
    plans = []
    for radius in (0, 1):
        parts = max(threshold // (radius + 1) + 1, 4)
        if parts <= bits:
            plans.append(Plan(tuple(tuple(sorted(deal[p::parts].tolist())) for p in range(parts)), radius))
    return plans


def _same(found, expected) -> None:
    assert found.as_set() == expected.as_set()
    assert np.array_equal(found.i, expected.i) and np.array_equal(found.j, expected.j)
    assert np.array_equal(found.distance, expected.distance)


@pytest.mark.parametrize("make", [_random, _clustered])
@pytest.mark.parametrize("threshold", [0, 3, 10, 16, 24])
def test_index_matches_brute_force_in_one_set(make, threshold: int) -> None:
    hashes = make(1500, seed=threshold)
    expected = brute_force_pairs(hashes, threshold)
    if make is _clustered and threshold >= 10:
        assert len(expected) > 100  # the comparison is not vacuous
    for plan in _plans(256, threshold):
        _same(near_pairs(hashes, threshold, plan=plan), expected)


@pytest.mark.parametrize("threshold", [0, 6, 18])
def test_index_matches_brute_force_between_two_sets(threshold: int) -> None:
    hashes = _clustered(1200, seed=7)
    left, right = hashes[:500], hashes[400:]  # overlapping rows: identical hashes across the sets too
    expected = brute_force_pairs(left, threshold, other=right)
    assert len(expected) >= 100
    for plan in _plans(256, threshold):
        _same(near_pairs(left, threshold, other=right, plan=plan), expected)


def test_automatic_plan_and_parallel_workers_agree_with_brute_force() -> None:
    hashes = _clustered(3000, seed=11)
    expected = brute_force_pairs(hashes, 16)
    plan = make_plan(len(hashes), len(hashes), 256, 16)
    assert len(plan.parts) * (plan.radius + 1) > 16  # exact by the pigeonhole principle
    _same(near_pairs(hashes, 16, plan=plan, workers=2), expected)


def test_other_hash_widths_and_distances_are_popcounts() -> None:
    hashes = _clustered(800, seed=5, width=8)  # 64-bit hashes
    expected = brute_force_pairs(hashes, 5)
    for plan in _plans(64, 5):
        _same(near_pairs(hashes, 5, plan=plan), expected)
    pairs = near_pairs(hashes, 5, plan=_plans(64, 5)[0])
    assert np.array_equal(pairs.distance, popcount_distance(hashes[pairs.i], hashes[pairs.j]))


def test_edge_cases() -> None:
    empty = np.zeros((0, 32), dtype=np.uint8)
    assert len(near_pairs(empty, 10)) == 0
    one = _random(1, seed=1)
    assert len(near_pairs(one, 10)) == 0
    twins = np.concatenate([one, one, one])
    found = near_pairs(twins, 0, plan=_plans(256, 0)[0])
    assert found.as_set() == {(0, 1), (0, 2), (1, 2)} and set(found.distance.tolist()) == {0}
    assert len(near_pairs(twins, -1)) == 0
    with pytest.raises(ValueError, match="not exact"):
        near_pairs(_random(10, seed=2), 9, plan=_plans(256, 0)[0])


def test_hex_round_trip() -> None:
    hashes = hex_to_bytes(["ff00" * 16, "0f00" * 16])
    assert hashes.shape == (2, 32)
    assert popcount_distance(hashes[:1], hashes[1:]).tolist() == [4 * 16]
    with pytest.raises(ValueError):
        hex_to_bytes(["ff", "ff00"])
