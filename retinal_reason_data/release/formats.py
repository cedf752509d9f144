"""The release formats besides `hf`, each written from the `hf` shards just written (same rows, same splits,
images already stripped of metadata), each into a folder of its own inside the export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from retinal_reason_data.recipe import Recipe
from retinal_reason_data.release.easyr1 import write_easyr1
from retinal_reason_data.release.mm_retinal_reason import write_mm_retinal_reason
from retinal_reason_data.release.ophthareason import write_ophthareason_eval
from retinal_reason_data.release.output import FormatReport
from retinal_reason_data.release.sharegpt import write_sharegpt
from retinal_reason_data.release.verl import write_verl

Splits = dict[str, dict[str, int]]
WRITERS: dict[str, Callable[[Path, Splits, Recipe], FormatReport]] = {
    "mm-retinal-reason": lambda out, splits, recipe: write_mm_retinal_reason(out, splits),
    "ophthareason-eval": lambda out, splits, recipe: write_ophthareason_eval(out, splits),
    "verl": lambda out, splits, recipe: write_verl(out, splits, recipe.export.max_shard_size),
    "easyr1": lambda out, splits, recipe: write_easyr1(out, splits, recipe.export.max_shard_size),
    "sharegpt": lambda out, splits, recipe: write_sharegpt(out, splits, recipe.name),
}
FOLDERS = tuple(WRITERS)  # each format writes into the folder of its name


def write_formats(out: Path, splits: Splits, recipe: Recipe) -> dict[str, FormatReport]:
    """Write every format the recipe lists besides `hf`; returns name -> report."""
    names = [name for name in recipe.export.formats if name != "hf"]
    reports = {}
    for name in tqdm(names, desc="formats", unit="format", leave=False, disable=None):
        reports[name] = WRITERS[name](out, splits, recipe)
    return reports
