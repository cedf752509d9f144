"""Streaming parquet shards with the `datasets` features in their schema, named as the Hub expects."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

# A row group closes at whichever comes first: this many bytes of row data (images included), or this many
# rows. The writer holds one row group, so memory stays bounded whatever the size of the split; rows with
# small images still make row groups large enough to write quickly.
ROW_GROUP_BYTES = 16 * 2**20
ROW_GROUP_MAX_ROWS = 1024
READ_BATCH_ROWS = 64  # rows per batch when the shards are read back


def write_split(
    folder: Path,
    split: str,
    features: Features,
    rows: Iterable[dict[str, Any]],
    max_shard_bytes: int,
    stem: str | None = None,
    row_group_bytes: int = ROW_GROUP_BYTES,
) -> list[dict[str, Any]]:
    """Write `rows` as `{stem}-NNNNN-of-NNNNN.parquet` shards (stem: the split's name unless given) of at most
    about `max_shard_bytes`.

    Holds one row group (about `row_group_bytes` of rows) in memory at a time; returns the files with their
    sha256, rows and bytes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = stem or split
    schema = features.arrow_schema
    parts: list[tuple[Path, int]] = []
    writer: pq.ParquetWriter | None = None
    buffer: list[dict[str, Any]] = []
    shard_rows = shard_bytes = buffer_bytes = 0

    def open_shard() -> pq.ParquetWriter:
        path = folder / f".{name}-{len(parts):05d}.parquet.partial"
        parts.append((path, 0))
        return pq.ParquetWriter(path, schema, compression="zstd", write_statistics=statistics_columns(schema))

    def flush() -> None:
        nonlocal writer, shard_rows, buffer_bytes
        if not buffer:
            return
        if writer is None:
            writer = open_shard()
        writer.write_table(pa.Table.from_pylist(buffer, schema=schema), row_group_size=len(buffer))
        shard_rows += len(buffer)
        parts[-1] = (parts[-1][0], shard_rows)
        buffer.clear()
        buffer_bytes = 0

    for row in rows:
        size = _row_bytes(row)
        if shard_bytes + size > max_shard_bytes and shard_rows + len(buffer) > 0:
            flush()
            assert writer is not None
            writer.close()
            writer, shard_rows, shard_bytes = None, 0, 0
        buffer.append(row)
        shard_bytes += size
        buffer_bytes += size
        if buffer_bytes >= row_group_bytes or len(buffer) >= ROW_GROUP_MAX_ROWS:
            flush()
    flush()
    if writer is not None:
        writer.close()
    if not parts:  # an empty split still gets one shard, without row groups (readers skip it), so it stays loadable
        pq.ParquetWriter(folder / f".{name}-00000.parquet.partial", schema, compression="zstd").close()
        parts.append((folder / f".{name}-00000.parquet.partial", 0))
    files = []
    for index, (partial, count) in enumerate(parts):
        final = folder / f"{name}-{index:05d}-of-{len(parts):05d}.parquet"
        partial.replace(final)
        files.append({"path": final, "rows": count, "sha256": file_sha256(final), "bytes": final.stat().st_size})
    return files


_TEXT = (str, bytes)
# long values: min/max statistics of them are useless and fill the footer, which the writer keeps in memory
# until the shard closes (images have none either: the image column is nested)
_NO_STATISTICS = {"question", "think", "response", "ground_truth", "problem", "answer", "title"}


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The columns worth min/max statistics: flat, short values (ids, labels, pass@k)."""
    return [field.name for field in schema if not pa.types.is_nested(field.type) and field.name not in _NO_STATISTICS]


def _row_bytes(row: dict[str, Any]) -> int:
    """About the bytes a row adds to a shard: its text and its images (runs once per row: kept cheap)."""
    size = 0
    for value in row.values():
        if isinstance(value, _TEXT):
            size += len(value)
        elif isinstance(value, list):
            for element in value:
                if isinstance(element, _TEXT):
                    size += len(element)
                elif isinstance(element, dict):
                    size += len(element.get("bytes") or b"")
    return size


def file_entry(path: Path, root: Path, rows: int | None = None) -> dict[str, Any]:
    """A manifest entry: the path relative to `root`, rows (None for files without rows), sha256 and bytes."""
    return {
        "path": path.relative_to(root).as_posix(),
        "rows": rows,
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
