"""The `ophthareason-eval` format: the test split as OphthaReason's evaluation script reads it.

Followed: lxirich/OphthaReason eval/eval.py. It loads `{DS_ROOT}/{name}.json` for the names
single_choice_test_data_{CFP,FFA,OCT}, multi_choice_test_data_CFP and complex_reason, takes the question
from conversations[0].value and the answer from conversations[1].value, looks every key of `image` (a key or a
list of keys) up in `pd.read_csv("{BASE64_ROOT}/{name}.csv", index_col=0)["base64"]` (first column: the key;
column `base64`: the image), and sends every image as a `data:image/jpeg;base64,` URL to a vLLM started with
`limit_mm_per_prompt={"image": 6}`. So that the label is true, an image that is not a JPEG (a PNG) is
re-encoded as JPEG here (quality 95, no chroma subsampling; its key ends in .jpg), in this format only; a row
with more than 6 images, which that vLLM refuses, is left out (`more_than_6_images`). Its prompts ask for one
uppercase letter (SINGLE), uppercase letters joined by commas without spaces (MULTI) and just the name of the
disease or entity (COMPLEX): the answers are written that way. The script appends ". First output ..." to the
question, so the question is written without the answer instructions. Rows come from the `rl` test split
(every test item, not only those the teacher solved); rows left out are counted under `skipped` and named,
with their reason, in `skipped.json`.
Files: `ophthareason-eval/{name}.json`, `ophthareason-eval/{name}.csv` and `ophthareason-eval/skipped.json`.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path
from typing import IO, Any

from retinal_reason_data.ingest.imaging import open_image
from retinal_reason_data.release.mm_retinal_reason import release_answer
from retinal_reason_data.release.output import FormatReport, JsonArrayWriter, fresh_folder
from retinal_reason_data.release.prompting import question_with_options
from retinal_reason_data.release.reader import iter_rows
from retinal_reason_data.release.shards import file_entry

NAME = "ophthareason-eval"
CONFIG = "rl"
SPLIT = "test"
FILES = (
    "single_choice_test_data_CFP",
    "single_choice_test_data_FFA",
    "single_choice_test_data_OCT",
    "multi_choice_test_data_CFP",
    "complex_reason",
)
MAX_IMAGES = 6  # eval.py: LLM(..., limit_mm_per_prompt={"image": 6})
JPEG_QUALITY = 95
SKIPPED_FILE = "skipped.json"


def target_file(row: dict[str, Any]) -> tuple[str | None, str]:
    """(file name, '') for a row the evaluation reads, or (None, reason) for one it has no file for."""
    task, kind, modality = row["task"], row["question_type"], row["modality"]
    if task == "complex":
        return ("complex_reason", "") if kind == "open" else (None, f"complex_{kind}")
    if kind == "single_choice":
        name = f"single_choice_test_data_{modality}"
        return (name, "") if name in FILES else (None, f"single_choice_{modality}")
    if kind == "multiple_choice":
        return ("multi_choice_test_data_CFP", "") if modality == "CFP" else (None, f"multiple_choice_{modality}")
    return None, f"basic_{kind}"


def eval_target(row: dict[str, Any]) -> tuple[str | None, str]:
    """`target_file`, and (None, 'more_than_6_images') for a row the evaluation's vLLM would refuse."""
    name, reason = target_file(row)
    if name is not None and len(row["images"]) > MAX_IMAGES:
        return None, f"more_than_{MAX_IMAGES}_images"
    return name, reason


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def jpeg_key(path: str, data: bytes) -> str:
    """The image's key in the CSV: its content name, ending in .jpg when it is re-encoded."""
    return path if is_jpeg(data) else Path(path).with_suffix(".jpg").as_posix()


def as_jpeg(data: bytes, path: str) -> bytes:
    """The image as JPEG bytes: a JPEG as it is, anything else decoded (grey or RGB) and re-encoded."""
    if is_jpeg(data):
        return data
    buffer = io.BytesIO()
    open_image(data, path).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


class _EvalFile:
    """One test file: the JSON records and the CSV of base64 images (each key once)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.records = JsonArrayWriter(folder / f"{name}.json")
        self.csv_path = folder / f"{name}.csv"
        self._handle: IO[str] = self.csv_path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._handle, lineterminator="\n")
        self._csv.writerow(["image", "base64"])
        self._keys: set[str] = set()

    def write(self, row: dict[str, Any]) -> None:
        keys = []
        for cell in row["images"]:
            key = jpeg_key(cell["path"], cell["bytes"])
            if key not in self._keys:
                self._keys.add(key)
                self._csv.writerow([key, base64.b64encode(as_jpeg(cell["bytes"], cell["path"])).decode("ascii")])
            keys.append(key)
        conversations = [
            {"from": "human", "value": question_with_options(row)},
            {"from": "gpt", "value": release_answer(row)},
        ]
        self.records.write({"id": row["id"], "image": keys, "conversations": conversations})

    def close(self) -> None:
        self.records.close()
        self._handle.close()


def write_ophthareason_eval(out: Path, splits: dict[str, dict[str, int]]) -> FormatReport:
    """Write the five test files and their CSVs from the `rl` test shards at `out`."""
    root = fresh_folder(out / NAME)
    report = FormatReport()
    files = {name: _EvalFile(root, name) for name in FILES}
    skipped = JsonArrayWriter(root / SKIPPED_FILE)
    try:
        if SPLIT in splits.get(CONFIG, {}):
            for row in iter_rows(out, CONFIG, SPLIT):
                name, reason = eval_target(row)
                if name is None:
                    report.skip(reason)
                    skipped.write({"id": row["id"], "reason": reason, "images": len(row["images"])})
                else:
                    files[name].write(row)
    finally:
        for handle in files.values():
            handle.close()
        skipped.close()
    for name, handle in files.items():
        report.rows[f"{name}.json"] = handle.records.count
        report.files += [file_entry(handle.records.path, out, handle.records.count), file_entry(handle.csv_path, out)]
    report.files.append(file_entry(skipped.path, out, skipped.count))
    return report
