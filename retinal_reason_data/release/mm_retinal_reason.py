"""The `mm-retinal-reason` format: the `sft` rows in the MM-Retinal-Reason release's record format.

Followed: the release's README and files on the Hub (lxirich/MM-Retinal-Reason: basic_reasoning.json and
complex_reasoning.json, JSON arrays of {image: [base64 string, ...], conversations: [{from: human, value},
{from: gpt, value}], reason}; complex records add pmcid, title and caption; the human turn carries the question
without `<image>` placeholders) and OphthaReason's eval/eval.py, which reads the answer from
conversations[1].value: letters for choice questions (several joined by commas without spaces), the name of
the disease or entity for open ones. `reason` holds the verified trace (the `think` text).
Files: `mm-retinal-reason/{split}/basic_reasoning.json` and `.../complex_reasoning.json`, one folder per
`sft` split. The importer of this package (adapter `mm_retinal_reason`) reads them back.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from retinal_reason_data.release.output import FormatReport, JsonArrayWriter, fresh_folder
from retinal_reason_data.release.prompting import question_with_options
from retinal_reason_data.release.reader import iter_rows
from retinal_reason_data.release.shards import file_entry

NAME = "mm-retinal-reason"
CONFIG = "sft"
FILES = {"basic": "basic_reasoning.json", "complex": "complex_reasoning.json"}


def release_answer(row: dict[str, Any]) -> str:
    """The answer as the release and OphthaReason's prompts write it: 'B', 'A,C', 'True', or the name."""
    if row["question_type"] == "multiple_choice":
        return ",".join(sorted(letter.strip() for letter in row["answer"].split(",")))
    return row["answer"].strip()


def encode_images(row: dict[str, Any]) -> list[str]:
    """The row's images (metadata already stripped) as plain base64 strings."""
    return [base64.b64encode(cell["bytes"]).decode("ascii") for cell in row["images"]]


def release_record(row: dict[str, Any]) -> dict[str, Any]:
    """One `sft` row as a release record; complex records carry pmcid, title and caption ('' when unknown)."""
    record: dict[str, Any] = {
        "image": encode_images(row),
        "conversations": [
            {"from": "human", "value": question_with_options(row)},
            {"from": "gpt", "value": release_answer(row)},
        ],
        "reason": row["think"],
    }
    if row["task"] == "complex":
        record |= {"pmcid": row["pmcid"] or "", "title": row["title"] or "", "caption": "\n".join(row["captions"])}
    return record


def write_mm_retinal_reason(out: Path, splits: dict[str, dict[str, int]]) -> FormatReport:
    """Write `mm-retinal-reason/{split}/{basic,complex}_reasoning.json` from the `sft` shards at `out`."""
    root = fresh_folder(out / NAME)
    report = FormatReport()
    for split in splits.get(CONFIG, {}):
        folder = root / split
        folder.mkdir()
        writers = {task: JsonArrayWriter(folder / name) for task, name in FILES.items()}
        try:
            for row in iter_rows(out, CONFIG, split):
                writers[row["task"]].write(release_record(row))
        finally:
            for writer in writers.values():
                writer.close()
        for task, writer in writers.items():
            report.rows[f"{split}/{FILES[task]}"] = writer.count
            report.files.append(file_entry(writer.path, out, writer.count))
    return report
