"""The release formats, one registered entry each: name (also the recipe's `export.formats` value and the folder
it writes), what the card says about its files and how to read them, its writer, and its `datasets` Features
when its parquet is also a config of the card. Every format but `hf` is written from the `hf` shards just written
(same rows, same splits, images already stripped of metadata), each into a folder of its own inside the export.

This module imports no writer until one is called (the recipe reads the names from here). To add a format: write
its module with a `write_*(out, splits, ...)` function, add an `ExportFormatInfo` below, and regenerate `schemas/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Features

    from retinal_reason_data.recipe import Recipe
    from retinal_reason_data.release.output import FormatReport

Splits = dict[str, dict[str, int]]
Writer = Callable[[Path, Splits, "Recipe"], "FormatReport"]


@dataclass(frozen=True)
class ExportFormatInfo:
    """One release format: its name, the card's note (`where` its files are, how to `read_with`), its writer
    (None for `hf`, which the export writes itself) and, when its parquet is also a card config, its Features."""

    name: str
    where: str
    read_with: str
    writer: Writer | None = None
    card_features: Callable[[], Features] | None = None


def _mm_retinal_reason(out: Path, splits: Splits, recipe: Recipe) -> FormatReport:
    from retinal_reason_data.release.mm_retinal_reason import write_mm_retinal_reason

    return write_mm_retinal_reason(out, splits)


def _ophthareason_eval(out: Path, splits: Splits, recipe: Recipe) -> FormatReport:
    from retinal_reason_data.release.ophthareason import write_ophthareason_eval

    return write_ophthareason_eval(out, splits)


def _verl(out: Path, splits: Splits, recipe: Recipe) -> FormatReport:
    from retinal_reason_data.release.verl import write_verl

    return write_verl(out, splits, recipe.export.max_shard_size)


def _verl_features() -> Features:
    from retinal_reason_data.release.verl import FEATURES

    return FEATURES


def _easyr1(out: Path, splits: Splits, recipe: Recipe) -> FormatReport:
    from retinal_reason_data.release.easyr1 import write_easyr1

    return write_easyr1(out, splits, recipe.export.max_shard_size)


def _easyr1_features() -> Features:
    from retinal_reason_data.release.easyr1 import FEATURES

    return FEATURES


def _sharegpt(out: Path, splits: Splits, recipe: Recipe) -> FormatReport:
    from retinal_reason_data.release.sharegpt import write_sharegpt

    return write_sharegpt(out, splits, recipe.name)


FORMATS = {
    info.name: info
    for info in [
        ExportFormatInfo(
            "hf",
            "`data/{sft,rl}/`",
            "`datasets.load_dataset(repo, 'sft')` / `'rl'` (also with `streaming=True`)",
        ),
        ExportFormatInfo(
            "mm-retinal-reason",
            "`mm-retinal-reason/{split}/{basic,complex}_reasoning.json`",
            "the MM-Retinal-Reason release's record format (base64 images)",
            _mm_retinal_reason,
        ),
        ExportFormatInfo(
            "ophthareason-eval",
            "`ophthareason-eval/*.json` + `*.csv`, `skipped.json`",
            "OphthaReason's eval/eval.py (`DS_ROOT` and `BASE64_ROOT` both point here); it labels every image "
            "`image/jpeg`, so other images are re-encoded as JPEG here, and it accepts 6 images per question",
            _ophthareason_eval,
        ),
        ExportFormatInfo(
            "verl",
            "`verl/{train,test}/part-*.parquet`",
            "verl `data.train_files` / `data.val_files`: the list of those files (verl takes files, not folders); "
            "reward `custom_reward_function.path=pkg://retinal_reason_data.rewards`, `name=compute_score`",
            _verl,
            _verl_features,
        ),
        ExportFormatInfo(
            "easyr1",
            "`easyr1/{train,test}/`, `easyr1/format_prompt.jinja`",
            "EasyR1 `data.train_files=easyr1/train`, `data.format_prompt=easyr1/format_prompt.jinja` (in place of "
            "math.jinja's `\\boxed{}`); reward `worker.reward.reward_function=retinal_reason_data/rewards.py:"
            "easyr1_compute_score`",
            _easyr1,
            _easyr1_features,
        ),
        ExportFormatInfo(
            "sharegpt",
            "`sharegpt/`",
            "LLaMA-Factory `dataset_dir: sharegpt`, datasets listed in its dataset_info.json",
            _sharegpt,
        ),
    ]
}
FORMAT_NAMES = tuple(FORMATS)  # the values `export.formats` accepts, in this order
WRITERS: dict[str, Writer] = {name: info.writer for name, info in FORMATS.items() if info.writer is not None}
FOLDERS = tuple(WRITERS)  # each format besides `hf` writes into the folder of its name


def card_format_configs() -> dict[str, Features]:
    """Formats that are also configs of the card (parquet with the Image feature), name -> Features:
    `load_dataset(repo, "verl")`."""
    return {name: info.card_features() for name, info in FORMATS.items() if info.card_features is not None}


def write_formats(out: Path, splits: Splits, recipe: Recipe) -> dict[str, FormatReport]:
    """Write every format the recipe lists besides `hf`; returns name -> report."""
    from tqdm import tqdm

    names = [name for name in recipe.export.formats if name != "hf"]
    reports = {}
    for name in tqdm(names, desc="formats", unit="format", leave=False, disable=None):
        reports[name] = WRITERS[name](out, splits, recipe)
    return reports
