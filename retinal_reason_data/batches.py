"""Fixed-size batches of a stream (`itertools.batched` arrives only in Python 3.12)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter), read lazily from `items`."""
    stream = iter(items)
    while batch := list(itertools.islice(stream, size)):
        yield batch
