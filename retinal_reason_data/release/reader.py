"""Reading the rows of the written `hf` shards back, one row group at a time (the other formats start here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from retinal_reason_data.release.shards import READ_BATCH_ROWS


def shard_paths(out: Path, config: str, split: str) -> list[Path]:
    """The shards of one config and split, in order."""
    return sorted((out / "data" / config).glob(f"{split}-*-of-*.parquet"))


def iter_rows(out: Path, config: str, split: str) -> Iterator[dict[str, Any]]:
    """Every row of `data/{config}/{split}-*.parquet` as a dict; images stay `{bytes, path}` cells.

    Memory holds one row group and one batch of READ_BATCH_ROWS rows, whatever the size of the split.
    """
    for path in shard_paths(out, config, split):
        # pre_buffer=False: with pre-buffering, iter_batches prefetches every row group of the shard at once
        with pq.ParquetFile(path, pre_buffer=False) as shard:
            for batch in shard.iter_batches(batch_size=READ_BATCH_ROWS):
                yield from batch.to_pylist()
