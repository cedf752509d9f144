"""The `hf` writer streams: it holds one row group (a bounded number of bytes of rows, images included) at a time."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
from PIL import Image as PILImage

from retinal_reason_data.release.hf import FEATURES
from retinal_reason_data.release.reader import iter_rows
from retinal_reason_data.release.shards import ROW_GROUP_MAX_ROWS, write_split


class Row(dict):
    """A row that counts how many rows are alive (made and not yet freed)."""

    alive = 0
    peak = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        Row.alive += 1
        Row.peak = max(Row.peak, Row.alive)

    def __del__(self) -> None:
        Row.alive -= 1


def _image(index: int) -> bytes:
    pixels = np.random.default_rng(index).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _rows(count: int) -> Iterator[Row]:
    for index in range(count):
        yield Row(
            id=f"{index:06d}",
            images=[{"bytes": _image(index), "path": f"{index:06d}.png"}],
            case_id=f"c{index}",
            source="phantom",
            patient_id=f"p-{index}",
            task="basic",
            question_type="single_choice",
            modality="CFP",
            question="Which finding?",
            options=["Drusen", "Normal"],
            answer="A",
            answer_aliases=[],
            ground_truth='{"answer": "A"}',
            pass_at_k=0.5,
            captions=[],
            title=None,
            pmcid=None,
        )


def test_rows_are_written_one_row_group_at_a_time(tmp_path: Path) -> None:
    Row.alive = Row.peak = 0
    count = 805  # rows of about 7 KB: a 100 KB budget makes row groups of about 14 rows
    folder = tmp_path / "data" / "rl"
    written = write_split(
        folder, "train", FEATURES["rl"], _rows(count), max_shard_bytes=400_000, row_group_bytes=100_000
    )
    assert Row.peak <= 20, f"{Row.peak} rows were held at once"
    assert sum(entry["rows"] for entry in written) == count and len(written) > 1
    for entry in written:
        metadata = pq.ParquetFile(entry["path"]).metadata
        assert metadata.num_rows == entry["rows"]
        assert max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) <= 18
    ids = [row["id"] for row in iter_rows(tmp_path, "rl", "train")]
    assert ids == [f"{index:06d}" for index in range(count)]


def test_the_shards_load_with_datasets_streaming_and_decode_images(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "rl"
    write_split(folder, "train", FEATURES["rl"], _rows(150), max_shard_bytes=150_000)
    streamed = datasets.load_dataset(
        "parquet", data_files={"train": str(folder / "train-*.parquet")}, split="train", streaming=True
    )
    first = next(iter(streamed))
    assert isinstance(first["images"][0], PILImage.Image) and first["images"][0].size == (48, 48)
    assert sum(1 for _ in streamed) == 150


def test_small_rows_fill_row_groups_up_to_the_row_limit(tmp_path: Path) -> None:
    rows = ({**row, "images": []} for row in _rows(ROW_GROUP_MAX_ROWS + 10))
    (entry,) = write_split(tmp_path, "train", FEATURES["rl"], rows, max_shard_bytes=10**9)
    metadata = pq.ParquetFile(entry["path"]).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [ROW_GROUP_MAX_ROWS, 10]
