"""The `easyr1` format: the `rl` rows as EasyR1's RLHFDataset reads them, and the format prompt to read them with.

Followed: EasyR1 verl/utils/dataset.py (prompt_key `problem`, answer_key `answer`, image_key `images`, the
keys of examples/config.yaml; the problem, after the format prompt, is split on `<image>`, one placeholder per
image; images are `{bytes}` cells or decoded images; a directory is loaded with load_dataset(<extension of its
first file>, data_dir=..., split="train"), so each split has its own folder holding parquet files only, without
a split name), verl/trainer/config.py (`data.format_prompt`: a jinja file rendered with `content`, the problem)
and verl/workers/reward/function.py (`answer` reaches the reward function as `ground_truth`; the module's
REWARD_TYPE picks batch or sequential calls). `answer` holds the JSON ground truth, so open questions keep their
accepted synonyms.

EasyR1's examples/config.yaml sets `format_prompt: ./examples/format_prompt/math.jinja`, which asks for the
final answer in `\\boxed{}`. This export ships `easyr1/format_prompt.jinja`, which keeps the problem's own
request for `<think>...</think><answer>...</answer>` (and adds it to a problem without one): set
`data.format_prompt=export/easyr1/format_prompt.jinja`. Left at math.jinja, the prompt asks for both; the reward
reads a `\\boxed{}` inside `<answer>` as the answer (full score) and a lone `\\boxed{}` after `</think>` for
accuracy without the format score.
Files: `easyr1/{split}/part-NNNNN-of-NNNNN.parquet` (`data.train_files=export/easyr1/train`,
`data.val_files=export/easyr1/test`) and `easyr1/format_prompt.jinja`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Features, Image, List, Value

from retinal_reason_data.release.output import FormatReport, fresh_folder
from retinal_reason_data.release.prompting import TAG_INSTRUCTION, prompt_text, with_placeholders
from retinal_reason_data.release.reader import iter_rows
from retinal_reason_data.release.shards import file_entry, write_split

NAME = "easyr1"
CONFIG = "rl"
FORMAT_PROMPT_FILE = "format_prompt.jinja"
# EasyR1 renders Template(text.strip()).render(content=problem); the comment's `-#}` leaves no blank line
FORMAT_PROMPT = (
    "{# retinal-reason-data: EasyR1's data.format_prompt for this export, in place of math.jinja's \\boxed{}. "
    "The problems already ask for <think>...</think><answer>...</answer>; a problem that does not gets the "
    "request appended. -#}\n"
    '{{ content | trim }}{% if "<answer>" not in content %}\n' + TAG_INSTRUCTION + "{% endif %}\n"
)
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
    """Write `easyr1/{split}/part-*.parquet` from the `rl` shards of the export at `out`, and the format prompt."""
    root = fresh_folder(out / NAME)
    report = FormatReport()
    prompt = root / FORMAT_PROMPT_FILE
    prompt.write_text(FORMAT_PROMPT, encoding="utf-8", newline="\n")
    report.files.append(file_entry(prompt, out))
    for split in splits.get(CONFIG, {}):
        rows = (easyr1_row(row) for row in iter_rows(out, CONFIG, split))
        written = write_split(root / split, split, FEATURES, rows, max_shard_size, stem="part")
        report.rows[split] = sum(entry["rows"] for entry in written)
        report.files += [{**entry, "path": entry["path"].relative_to(out).as_posix()} for entry in written]
    return report
