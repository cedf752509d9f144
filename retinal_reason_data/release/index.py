"""`index/samples.parquet`: every exported row's config, split, id and content digest.

Small (no images), so that two releases can be compared by id (`rrd diff`, the changelog of `rrd push`)
without reading their shards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

INDEX_PATH = "index/samples.parquet"
INDEX_SCHEMA = pa.schema(
    [("config", pa.string()), ("split", pa.string()), ("id", pa.string()), ("digest", pa.string())]
)
_BATCH = 4096


def row_digest(row: dict[str, Any]) -> str:
    """SHA-256 of a row's fields and image bytes: equal digests mean an identical exported row."""
    digest = hashlib.sha256()
    fields = {key: value for key, value in row.items() if key != "images"}
    digest.update(json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str).encode())
    for image in row.get("images") or []:
        digest.update(hashlib.sha256(image["bytes"]).digest())
    return digest.hexdigest()


class SampleIndex:
    """Writes the index as rows arrive, a batch at a time."""

    def __init__(self, out: Path) -> None:
        self.path = out / INDEX_PATH
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.path, INDEX_SCHEMA, compression="zstd")
        self._buffer: list[dict[str, str]] = []
        self.rows = 0

    def add(self, config: str, split: str, row: dict[str, Any]) -> None:
        self._buffer.append({"config": config, "split": split, "id": row["id"], "digest": row_digest(row)})
        if len(self._buffer) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=INDEX_SCHEMA))
            self.rows += len(self._buffer)
            self._buffer.clear()

    def close(self) -> None:
        self._flush()
        self._writer.close()


def read_index(path: Path) -> pa.Table:
    """The index table of an export (config, split, id, digest)."""
    return pq.read_table(path, schema=INDEX_SCHEMA)
