"""The `verl` format: the `rl` rows as verl's RLHFDataset reads them.

Followed: verl's examples/data_preprocess/geo3k.py (columns data_source, prompt, images, ability,
reward_model {style, ground_truth}, extra_info {split, index, ...}) and verl/utils/dataset/rl_dataset.py: it
reads each path of `data.train_files` / `data.val_files` with load_dataset("parquet", data_files=path)["train"]
and concatenates them (a path must end in .parquet: a folder is refused, so the files are listed, e.g.
`data.train_files="[$(ls export/verl/train/*.parquet | paste -sd, -)]"`); `prompt` is a list of chat messages
whose text is split on `<image>`, one placeholder per entry of `images` (decoded by `datasets` from the Image
feature, or `{bytes}` cells); `reward_model.ground_truth` and `extra_info` reach the reward function. Point
`custom_reward_function.path` at retinal_reason_data/rewards.py (or `pkg://retinal_reason_data.rewards`), name
`compute_score`. Files: `verl/{split}/part-NNNNN-of-NNNNN.parquet`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasets import Features, Image, List, Value

from retinal_reason_data.release.output import FormatReport, fresh_folder
from retinal_reason_data.release.prompting import prompt_text, with_placeholders
from retinal_reason_data.release.reader import iter_rows
from retinal_reason_data.release.shards import write_split

NAME = "verl"
CONFIG = "rl"
ABILITY = "ophthalmology"
FEATURES = Features(
    {
        "data_source": Value("string"),
        "prompt": List({"role": Value("string"), "content": Value("string")}),
        "images": List(Image()),
        "ability": Value("string"),
        "reward_model": {"style": Value("string"), "ground_truth": Value("string")},
        "extra_info": {
            "split": Value("string"),
            "index": Value("int64"),
            "id": Value("string"),
            "case_id": Value("string"),
            "task": Value("string"),
            "question_type": Value("string"),
            "modality": Value("string"),
            "question": Value("string"),
            "answer": Value("string"),
            "pass_at_k": Value("float32"),
        },
    }
)


def verl_row(row: dict[str, Any], split: str, index: int) -> dict[str, Any]:
    """One `rl` row in verl's layout; `data_source` is the row's source, so verl reports metrics per source."""
    return {
        "data_source": row["source"],
        "prompt": [{"role": "user", "content": with_placeholders(prompt_text(row), len(row["images"]))}],
        "images": row["images"],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": row["ground_truth"]},
        "extra_info": {
            "split": split,
            "index": index,
            "id": row["id"],
            "case_id": row["case_id"],
            "task": row["task"],
            "question_type": row["question_type"],
            "modality": row["modality"],
            "question": row["question"],
            "answer": row["answer"],
            "pass_at_k": row["pass_at_k"],
        },
    }


def write_verl(out: Path, splits: dict[str, dict[str, int]], max_shard_size: int) -> FormatReport:
    """Write `verl/{split}/part-*.parquet` from the `rl` shards of the export at `out`."""
    root = fresh_folder(out / NAME)
    report = FormatReport()
    for split in splits.get(CONFIG, {}):
        rows: Iterator[dict[str, Any]] = (
            verl_row(row, split, index) for index, row in enumerate(iter_rows(out, CONFIG, split))
        )
        written = write_split(root / split, split, FEATURES, rows, max_shard_size, stem="part")
        report.rows[split] = sum(entry["rows"] for entry in written)
        report.files += [{**entry, "path": entry["path"].relative_to(out).as_posix()} for entry in written]
    return report
