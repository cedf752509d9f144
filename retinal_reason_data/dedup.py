"""Exact and near-duplicate images across cases and sources, and which case of each cluster to keep."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from retinal_reason_data.schema import Case


class UnionFind:
    """Disjoint sets over hashable keys, with path halving."""

    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, key: object) -> object:
        parent = self.parent.setdefault(key, key)
        while parent != key:
            grand = self.parent.setdefault(parent, parent)
            self.parent[key] = grand
            key, parent = parent, grand
        return key

    def union(self, a: object, b: object) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            # the smaller key becomes the root, so component ids do not depend on insertion order
            low, high = sorted((root_a, root_b), key=str)
            self.parent[high] = low

    def groups(self) -> dict[object, list[object]]:
        members: dict[object, list[object]] = defaultdict(list)
        for key in self.parent:
            members[self.find(key)].append(key)
        return members


def hash_bits(hex_hashes: Sequence[str]) -> np.ndarray:
    """Perceptual hashes as a (n, bits) array of 0/1 uint8."""
    raw = np.frombuffer(b"".join(bytes.fromhex(h) for h in hex_hashes), dtype=np.uint8)
    return np.unpackbits(raw.reshape(len(hex_hashes), -1), axis=1)


def near_pairs(hex_hashes: Sequence[str], threshold: int, chunk: int = 2048) -> Iterable[tuple[int, int, int]]:
    """Index pairs (i < j) whose Hamming distance is at most `threshold`, with the distance.

    Exact and brute force in blocks (popcount of XOR through matrix products); a sub-quadratic index
    replaces it for very large collections.
    """
    if len(hex_hashes) < 2:
        return
    bits = hash_bits(hex_hashes).astype(np.float32)
    ones = bits.sum(axis=1)
    for start in range(0, len(bits), chunk):
        block = bits[start : start + chunk]
        # hamming(a, b) = |a| + |b| - 2 a.b
        distance = ones[start : start + chunk, None] + ones[None, :] - 2.0 * (block @ bits.T)
        rows, cols = np.nonzero(distance <= threshold + 0.5)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + row
            if i < col:
                yield i, col, int(round(distance[row, col]))


@dataclass
class DedupResult:
    exact_clusters: int = 0
    near_clusters: int = 0
    dropped_cases: set[str] = field(default_factory=set)
    linked_cases: list[list[str]] = field(default_factory=list)  # cases that share a cluster
    image_rows: list[dict[str, object]] = field(default_factory=list)


def deduplicate(cases: Iterable[Case], threshold: int, source_priority: Sequence[str] = ()) -> DedupResult:
    """Cluster images by bytes and by perceptual hash; keep one case per cluster by source priority,
    then resolution, then case id. Images of one case never make that case a duplicate of itself."""
    sha_cases: dict[str, set[str]] = defaultdict(set)
    sha_hash: dict[str, str] = {}
    case_rank: dict[str, tuple[int, int, str]] = {}
    priority = {name: index for index, name in enumerate(source_priority)}
    for case in cases:
        area = max((image.width * image.height for image in case.images), default=0)
        case_rank[case.case_id] = (priority.get(case.source, len(priority)), -area, case.case_id)
        for image in case.images:
            sha_cases[image.sha256].add(case.case_id)
            sha_hash[image.sha256] = image.phash
    result = DedupResult()
    result.exact_clusters = sum(1 for owners in sha_cases.values() if len(owners) > 1)
    shas = sorted(sha_hash)
    components = UnionFind()
    for sha in shas:
        components.find(sha)
    for i, j, _ in near_pairs([sha_hash[s] for s in shas], threshold):
        if sha_cases[shas[i]] != sha_cases[shas[j]] or len(sha_cases[shas[i]]) > 1:
            components.union(shas[i], shas[j])
    for root, members in sorted(components.groups().items(), key=lambda kv: str(kv[0])):
        owners = set().union(*(sha_cases[sha] for sha in members))
        cluster_id = str(root)[:16]
        keep = min(owners, key=case_rank.__getitem__)
        if len(owners) > 1:
            result.near_clusters += len(members) > 1
            result.dropped_cases |= owners - {keep}
            result.linked_cases.append(sorted(owners))
        for sha in members:
            result.image_rows.append(
                {"sha256": sha, "exact_cluster": sha[:16], "near_cluster": cluster_id, "kept": keep in sha_cases[sha]}
            )
    return result
