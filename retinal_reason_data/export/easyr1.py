"""The `easyr1` format: the `rl` rows as EasyR1's RLHFDataset reads them.

Followed: EasyR1 verl/utils/dataset.py (prompt_key `problem`, answer_key `answer`, image_key `images`; the
problem's text is split on `<image>`, one placeholder per image; images are `{bytes}` cells or decoded
images; a directory is loaded with load_dataset("parquet", data_dir=..., split="train"), so each split has its
own folder and its files carry no split name) and verl/workers/reward/function.py (`answer` reaches the
reward function as `ground_truth`). `answer` holds the JSON ground truth, so open questions keep their
accepted synonyms; set `worker.reward.reward_function=<retinal_reason_data/rewards.py>:easyr1_compute_score`.
Files: `easyr1/{split}/part-NNNNN-of-NNNNN.parquet`, e.g. `data.train_files=export/easyr1/train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Features, Image, List, Value

from retinal_reason_data.export.output import FormatReport, fresh_folder
from retinal_reason_data.export.prompting import prompt_text, with_placeholders
from retinal_reason_data.export.reader import iter_rows
from retinal_reason_data.export.shards import write_split

NAME = "easyr1"
CONFIG = "rl"
FEATURES = Features(
    {"problem": Value("string"), "answer": Value("string"), "images": List(Image()), "id": Value("string")}
)


def easyr1_row(row: dict[str, Any]) -> dict[str, Any]:
    """One `rl` row in EasyR1's layout."""
    return {
        "problem": with_placeholders(prompt_text(row), len(row["images"])),
        "answer": row["ground_truth"],
        "images": row["images"],
        "id": row["id"],
    }


def write_easyr1(out: Path, splits: dict[str, dict[str, int]], max_shard_size: int) -> FormatReport:
    """Write `easyr1/{split}/part-*.parquet` from the `rl` shards of the export at `out`."""
    root = fresh_folder(out / NAME)
    report = FormatReport()
    for split in splits.get(CONFIG, {}):
        rows = (easyr1_row(row) for row in iter_rows(out, CONFIG, split))
        written = write_split(root / split, split, FEATURES, rows, max_shard_size, stem="part")
        report.rows[split] = sum(entry["rows"] for entry in written)
        report.files += [{**entry, "path": entry["path"].relative_to(out).as_posix()} for entry in written]
    return report
