"""Every orientation in one search: the orbit index finds exactly the pairs of the seven searches it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from retinal_reason_data.curation.dedup import ORIENTATION_GROUP, _near_matches
from retinal_reason_data.curation.hamming import near_pairs, popcount_distance
from retinal_reason_data.curation.orbit_hamming import (
    Group,
    OrbitPlan,
    _deal,
    brute_force_orbit_pairs,
    make_orbit_plan,
    orbit_pairs,
)
from retinal_reason_data.ingest.fieldhash import ORIENTATIONS, orient, orientation_map
from retinal_reason_data.recipe import DedupSpec


def _clustered(n: int, seed: int) -> np.ndarray:
    """Fundus-like hashes (biased, correlated bits) with near copies, a third of them flipped or turned."""
    rng = np.random.default_rng(seed)
    centre = rng.random(256) < 0.5
    bias = rng.uniform(0.02, 0.5, 256)
    base = np.packbits(centre ^ (rng.random((n // 2, 256)) < bias), axis=1)
    sources = rng.integers(0, len(base), n - len(base))
    noise = np.packbits(rng.random((len(sources), 256)) < rng.uniform(0.0, 0.06, (len(sources), 1)), axis=1)
    copies = base[sources] ^ noise
    for row in range(0, len(copies), 3):
        copies[row : row + 1] = orient(copies[row : row + 1], ORIENTATIONS[1 + row % 7])
    return np.concatenate([base, copies])


def _symmetric(n: int, seed: int) -> np.ndarray:
    """Random hashes each mixed with one of its own orientations: keys that orientations map onto themselves."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    mixed = []
    for row in range(n):
        turned = orient(base[row : row + 1], ORIENTATIONS[row % 8])
        take = rng.random((1, 256)) < 0.5
        bits = np.where(take, np.unpackbits(base[row : row + 1], axis=1), np.unpackbits(turned, axis=1))
        mixed.append(np.packbits(bits, axis=1))
    return np.concatenate([base, *mixed])


def _same(found, expected) -> None:
    assert np.array_equal(found.i, expected.i) and np.array_equal(found.j, expected.j)
    assert np.array_equal(found.distance, expected.distance)
    assert np.array_equal(found.element, expected.element)


def _seven_searches(hashes: np.ndarray, threshold: int) -> dict[tuple[int, int], int]:
    """The old way: the identity and six turned copies of the set, one two-set search each (rot270 pairs are
    rot90 pairs reversed); per pair the smallest distance."""
    best: dict[tuple[int, int], int] = {}
    for orientation in ORIENTATIONS:
        if orientation == "rot270":
            continue
        if orientation == "identity":
            pairs = near_pairs(hashes, threshold)
        else:
            pairs = near_pairs(hashes, threshold, other=orient(hashes, orientation))
        for i, j, d in zip(pairs.i.tolist(), pairs.j.tolist(), pairs.distance.tolist(), strict=True):
            if i != j:
                key = (min(i, j), max(i, j))
                best[key] = min(d, best.get(key, d))
    return best


def test_brute_force_reference_is_the_smallest_distance_over_orientations() -> None:
    hashes = _clustered(120, seed=1)
    found = brute_force_orbit_pairs(hashes, 18, ORIENTATION_GROUP)
    turned = np.stack([orient(hashes, name) for name in ORIENTATIONS])
    expected = {}
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            distances = popcount_distance(np.repeat(hashes[i : i + 1], 8, axis=0), turned[:, j])
            if distances.min() <= 18:
                expected[(i, j)] = (int(distances.min()), int(np.argmin(distances)))
    assert len(expected) > 20 and {e for _, e in expected.values()} != {0}  # turned copies are among them
    got = zip(found.i.tolist(), found.j.tolist(), found.distance.tolist(), found.element.tolist(), strict=True)
    assert {(i, j): (d, e) for i, j, d, e in got} == expected


@pytest.mark.parametrize("threshold", [0, 3, 10, 18, 24])
@pytest.mark.parametrize("radius", [0, 1])
def test_orbit_index_matches_brute_force(threshold: int, radius: int) -> None:
    hashes = _clustered(1800, seed=threshold)
    expected = brute_force_orbit_pairs(hashes, threshold, ORIENTATION_GROUP)
    if threshold >= 10:
        assert len(expected) > 300 and np.count_nonzero(expected.element) > 100
    count = max(threshold // (radius + 1) + 1, 7)
    plan = OrbitPlan(_deal(ORIENTATION_GROUP.orbits(), count), radius)
    _same(orbit_pairs(hashes, threshold, ORIENTATION_GROUP, plan=plan), expected)


@pytest.mark.parametrize("count", [40, 100])
def test_orbit_index_is_exact_on_keys_that_orientations_fix(count: int) -> None:
    """Small parts of half-symmetric hashes: many keys equal to one of their own orientations, where the label of a
    probed bit is ambiguous (the equal-key pass must then find the pair)."""
    hashes = _symmetric(300, seed=count)
    for threshold in (count - 1, 2 * count - 1):
        expected = brute_force_orbit_pairs(hashes, threshold, ORIENTATION_GROUP)
        assert len(expected) > 30
        plan = OrbitPlan(_deal(ORIENTATION_GROUP.orbits(), count), 1 if threshold >= count else 0)
        _same(orbit_pairs(hashes, threshold, ORIENTATION_GROUP, plan=plan), expected)


def test_automatic_plan_and_workers_give_the_seven_searches_pair_set() -> None:
    hashes = _clustered(4000, seed=9)
    plan = make_orbit_plan(len(hashes), ORIENTATION_GROUP, 18)
    assert len(plan.parts) * (plan.radius + 1) > 18
    assert all({(b % 16) * 16 + b // 16 for b in part} == set(part) for part in plan.parts)  # closed under turns
    found = orbit_pairs(hashes, 18, ORIENTATION_GROUP, plan=plan, workers=2)
    expected = _seven_searches(hashes, 18)
    assert len(expected) > 1000
    pairs = zip(found.i.tolist(), found.j.tolist(), strict=True)
    assert dict(zip(pairs, found.distance.tolist(), strict=True)) == expected


def test_dedup_near_matches_are_those_of_the_seven_searches_with_the_detail_check() -> None:
    near = _clustered(2400, seed=4)
    rng = np.random.default_rng(5)
    detail = near ^ np.packbits(rng.random((len(near), 256)) < 0.03, axis=1)  # detail hashes move with near ones
    spec = DedupSpec()
    expected: dict[tuple[int, int], tuple[int, int]] = {}
    for orientation in ORIENTATIONS:  # every orientation, both ways: d(a, g(b)) and d(b, g(a))
        turned_near, turned_detail = orient(near, orientation), orient(detail, orientation)
        pairs = near_pairs(near, spec.near_threshold, other=turned_near)
        for i, j in zip(pairs.i.tolist(), pairs.j.tolist(), strict=True):
            if i == j:
                continue
            d_near = int(popcount_distance(near[i], turned_near[j]))
            d_detail = int(popcount_distance(detail[i], turned_detail[j]))
            key = (min(i, j), max(i, j))
            if d_detail <= spec.detail_threshold and sum(expected.get(key, (999, 0))) > d_near + d_detail:
                expected[key] = (d_near, d_detail)
    found = _near_matches(near, detail, spec, workers=1)
    assert len(expected) > 500
    assert {(a, b): (n, d) for a, b, n, d, _ in found} == expected
    for a, b, _, _, orientation in found[:200]:  # the orientation named turns b into a
        element = ORIENTATIONS.index(orientation)
        assert popcount_distance(near[a], ORIENTATION_GROUP.apply(near[b : b + 1], element)[0]) <= 18


def test_group_must_be_closed_and_contain_the_identity() -> None:
    maps = [orientation_map(name) for name in ORIENTATIONS]
    with pytest.raises(ValueError, match="closed"):
        Group(maps[:5])  # the flips and the transpose without the quarter turns they compose to
    with pytest.raises(ValueError, match="identity"):
        Group(maps[1:])
    assert len(Group(maps).orbits()) == 16 + 120  # the diagonal, and each bit with its transposed bit


@pytest.mark.parametrize("radius", [0, 1])
def test_the_one_element_group_is_a_plain_exact_search(radius: int) -> None:
    """`copy_candidates` searches 128-bit signatures with the identity alone: the pairs of `hamming.near_pairs`."""
    rng = np.random.default_rng(12)
    base = rng.integers(0, 256, (1500, 16), dtype=np.uint8)
    copies = base[rng.integers(0, 1500, 900)] ^ np.packbits(rng.random((900, 128)) < 0.06, axis=1)
    hashes = np.concatenate([base, copies, base[:40]])  # and a few exact copies
    identity = Group([(np.arange(128), np.zeros(128, dtype=bool))])
    for threshold in (0, 7, 13):
        expected = near_pairs(hashes, threshold, plan=None)
        assert len(expected) > (100 if threshold else 30)
        count = max(threshold // (radius + 1) + 1, 4)
        plan = OrbitPlan(_deal(identity.orbits(), count), radius)
        found = orbit_pairs(hashes, threshold, identity, plan=plan)
        assert found.as_set() == expected.as_set() and np.array_equal(found.distance, expected.distance)
