"""The `sharegpt` format: the `sft` rows as multimodal SFT data for LLaMA-Factory.

Followed: LLaMA-Factory data/mllm_demo.json and its data/dataset_info.json entry `mllm_demo` (formatting
sharegpt, columns messages and images, tags role/content/user/assistant; one `<image>` in the user turn per
image) and its SharegptDatasetConverter (relative image paths resolve against `media_dir`, which defaults
to `dataset_dir`). Files: `sharegpt/dataset_info.json`, `sharegpt/{split}.json`, `sharegpt/images/*`
(content-named, written once). Train with `dataset_dir: export/sharegpt` and `dataset: <name>_train`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retinal_reason_data.release.output import FormatReport, JsonArrayWriter, fresh_folder
from retinal_reason_data.release.prompting import prompt_text, with_placeholders
from retinal_reason_data.release.reader import iter_rows
from retinal_reason_data.release.shards import file_entry

NAME = "sharegpt"
CONFIG = "sft"


def dataset_info(name: str, splits: list[str]) -> dict[str, Any]:
    """LLaMA-Factory's dataset_info.json entries, one dataset per split (`<name>_<split>`)."""
    return {
        f"{name}_{split}": {
            "file_name": f"{split}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
        for split in splits
    }


def _store_images(row: dict[str, Any], folder: Path) -> list[str]:
    paths = []
    for cell in row["images"]:
        relative = f"images/{cell['path']}"
        target = folder / relative
        if not target.exists():  # content-named: the same image in two rows is written once
            target.write_bytes(cell["bytes"])
        paths.append(relative)
    return paths


def sharegpt_record(row: dict[str, Any], images: list[str]) -> dict[str, Any]:
    """One `sft` row as a two-turn conversation: the question, then the verified response with its tags."""
    return {
        "messages": [
            {"role": "user", "content": with_placeholders(prompt_text(row), len(images))},
            {"role": "assistant", "content": row["response"]},
        ],
        "images": images,
    }


def write_sharegpt(out: Path, splits: dict[str, dict[str, int]], name: str) -> FormatReport:
    """Write `sharegpt/` from the `sft` shards of the export at `out`."""
    root = fresh_folder(out / NAME)
    (root / "images").mkdir()
    report = FormatReport()
    split_names = list(splits.get(CONFIG, {}))
    for split in split_names:
        with JsonArrayWriter(root / f"{split}.json") as writer:
            for row in iter_rows(out, CONFIG, split):
                writer.write(sharegpt_record(row, _store_images(row, root)))
        report.rows[split] = writer.count
        report.files.append(file_entry(root / f"{split}.json", out, writer.count))
    info = root / "dataset_info.json"
    info.write_text(json.dumps(dataset_info(name, split_names), indent=2) + "\n", encoding="utf-8")
    report.files.append(file_entry(info, out))
    report.files += [file_entry(path, out) for path in sorted((root / "images").iterdir())]
    return report
