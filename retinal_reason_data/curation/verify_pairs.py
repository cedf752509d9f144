"""Copy verification of many candidate pairs: each image's features computed once, held only while needed.

The pairs are grouped by connected component (an image is in exactly one), small components batched together,
and each batch reads the features of its images, verifies its pairs and lets the features go, so memory stays
at a batch's features (about 300 kB an image: the work image is kept until its mirror image's keypoints are
found, or the batch ends) whatever the number of pairs. Batches run in worker processes (spawned, so that no
OpenCV thread pool crosses a fork; OpenCV on one thread in each); verdicts come back in the order of the pairs.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from retinal_reason_data.curation.copy_verification import (
    DEFAULT_LIMITS,
    CopyLimits,
    CopyVerdict,
    copy_features,
    verify_copy,
)

BATCH_IMAGES = 64  # images whose features one batch holds (a larger component is one batch of its own)
_PARALLEL_FROM = 24  # pairs from which worker processes are worth their start (about a second each)

Batch = tuple[list[str], list[tuple[int, int, int]], CopyLimits]  # paths, (local a, local b, pair number), limits


def verify_pairs(
    pairs: Sequence[tuple[int, int]],
    paths: Sequence[str],
    limits: CopyLimits = DEFAULT_LIMITS,
    workers: int | None = None,
) -> list[CopyVerdict]:
    """The verdict of `verify_copy` for each pair (indices into `paths`), in the order of `pairs`. `workers`:
    processes (None: one per core); few pairs are verified in this process."""
    if not pairs:
        return []
    batches = _batches(pairs, paths, limits)
    workers = os.cpu_count() or 1 if workers is None else workers
    verdicts: list[CopyVerdict | None] = [None] * len(pairs)
    if workers > 1 and len(pairs) >= _PARALLEL_FROM and len(batches) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(batches)), mp_context=context, initializer=_one_thread) as pool:
            results = pool.map(_verify_batch, batches)
            for found in results:
                for number, verdict in found:
                    verdicts[number] = verdict
    else:
        for batch in batches:
            for number, verdict in _verify_batch(batch):
                verdicts[number] = verdict
    assert all(v is not None for v in verdicts)
    return verdicts  # type: ignore[return-value]


def _batches(pairs: Sequence[tuple[int, int]], paths: Sequence[str], limits: CopyLimits) -> list[Batch]:
    """Pairs grouped by connected component of their images, components packed into batches in order of their
    smallest image (so the batches, and the work each does, do not depend on the order of `pairs`)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)
    members: dict[int, list[int]] = {}
    for image in sorted(parent):
        members.setdefault(find(image), []).append(image)
    pairs_of: dict[int, list[int]] = {}
    for number, (a, _) in enumerate(pairs):
        pairs_of.setdefault(find(a), []).append(number)
    batches: list[Batch] = []
    images: list[int] = []
    numbers: list[int] = []
    for root in sorted(members):
        if images and len(images) + len(members[root]) > BATCH_IMAGES:
            batches.append(_batch(images, numbers, pairs, paths, limits))
            images, numbers = [], []
        images += members[root]
        numbers += pairs_of[root]
    if images:
        batches.append(_batch(images, numbers, pairs, paths, limits))
    return batches


def _batch(
    images: list[int], numbers: list[int], pairs: Sequence[tuple[int, int]], paths: Sequence[str], limits: CopyLimits
) -> Batch:
    local = {image: position for position, image in enumerate(images)}
    return [paths[i] for i in images], [(local[pairs[n][0]], local[pairs[n][1]], n) for n in numbers], limits


def _one_thread() -> None:
    import cv2

    cv2.setNumThreads(1)


def _verify_batch(batch: Batch) -> list[tuple[int, CopyVerdict]]:
    """Features of the batch's images (each once), then the verdict of each of its pairs."""
    paths, local_pairs, limits = batch
    needed = sorted({i for a, b, _ in local_pairs for i in (a, b)})
    features = {i: copy_features(paths[i]) for i in needed}
    return [(number, verify_copy(features[a], features[b], limits)) for a, b, number in local_pairs]
