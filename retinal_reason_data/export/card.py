"""The dataset card (README.md with YAML `configs`), written from the build's real counts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from datasets import DatasetInfo, Features, SplitDict, SplitInfo

from retinal_reason_data.recipe import Recipe
from retinal_reason_data.teacher.prompts import PROMPT_VERSION

OFFLINE_NOTICE = (
    "**The reasoning traces in this release were written by the offline drafter of retinal-reason-data: a "
    "deterministic, rule-based program that turns each case's labels into a templated explanation. It is "
    "not a model, it did not look at the images, and its traces are not clinical reasoning.** Use this "
    "release to test pipelines, not to train or evaluate models."
)


def _dataset_info(
    features: dict[str, Features], counts: dict[str, dict[str, int]], sizes: dict[str, int]
) -> list[dict[str, Any]]:
    """The card's `dataset_info`: features, split sizes and download size per config.

    Besides describing the data, it makes `datasets` key its local cache on the content: without it,
    two exports in folders of the same name share one cache entry and a rebuilt export loads stale rows.
    """
    infos = []
    for config, splits in counts.items():
        split_dict = SplitDict()
        for split, rows in splits.items():
            split_dict.add(SplitInfo(name=split, num_examples=rows))
        info = DatasetInfo(features=features[config], splits=split_dict, download_size=sizes[config])
        infos.append({"config_name": config, **info._to_yaml_dict()})
    return infos


def _front_matter(recipe: Recipe, counts: dict[str, dict[str, int]], dataset_info: list[dict[str, Any]]) -> str:
    configs = [
        {
            "config_name": config,
            "data_files": [{"split": split, "path": f"data/{config}/{split}-*.parquet"} for split in splits],
        }
        for config, splits in counts.items()
    ]
    header = {
        "license": "other",
        "pretty_name": recipe.name,
        "language": ["en"],
        "tags": ["medical", "ophthalmology", "retina", "reasoning", "multimodal"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "configs": configs,
        "dataset_info": dataset_info,
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(
    recipe: Recipe,
    features: dict[str, Features],
    counts: dict[str, dict[str, int]],
    sizes: dict[str, int],
    breakdown: dict[str, Counter[str]],
    stats: dict[str, Any],
) -> str:
    """Markdown card; every number comes from the catalog or the written shards (no timestamps)."""
    teacher = stats.get("teacher", {})
    front = _front_matter(recipe, counts, _dataset_info(features, counts, sizes))
    sections = [front, f"# {recipe.name} {recipe.version}\n"]
    sections.append(
        "Reasoning data for ophthalmic multimodal models, built by retinal-reason-data from colour fundus "
        "photographs, OCT B-scans, fluorescein angiograms and case reports. Each `sft` row holds a question "
        "with a known answer and a step-by-step trace (`think`) whose final answer was verified against it; "
        "each `rl` row holds a question whose `ground_truth` the reward function "
        "`retinal_reason_data.rewards.compute_score` checks.\n"
    )
    sections.append("## Teacher\n")
    if teacher.get("kind") == "offline":
        sections.append(OFFLINE_NOTICE + "\n")
    else:
        sections.append(
            f"Traces were drafted by `{teacher.get('model')}` through an OpenAI-compatible endpoint, "
            f"prompt version `{PROMPT_VERSION}`, and kept only when their answer was verified. The "
            "teacher provider's terms of use apply to the generated text.\n"
        )
    rows = [[config, split, n] for config, splits in counts.items() for split, n in splits.items()]
    sections.append("## Rows\n\n" + _table(["config", "split", "rows"], rows) + "\n")
    for name in ("source", "modality", "task", "question_type"):
        table = sorted((key.split("|")[0], key.split("|")[2], n) for key, n in breakdown[name].items())
        sections.append(
            f"### By {name.replace('_', ' ')}\n\n" + _table(["config", name, "rows"], [list(r) for r in table]) + "\n"
        )
    generations = stats.get("generations_total", {})
    sections.append(
        "## How it was built\n\n"
        + _table(
            ["step", "count"],
            [
                ["cases read", sum(stats.get("cases_by_source", {}).values())],
                ["inputs quarantined", sum(stats.get("quarantined_by_reason", {}).values())],
                ["items (questions)", sum(stats.get("items_by_task", {}).values())],
                ["teacher attempts", generations.get("attempts", 0)],
                ["verified attempts", generations.get("verified", 0)],
                ["cases dropped as duplicates", stats.get("duplicates", {}).get("cases_dropped", 0)],
            ],
        )
        + "\n\nSplits group every patient and every duplicate cluster on one side; the `rl` train split "
        "shares no group with the `sft` train split.\n"
    )
    licences = stats.get("licences", {})
    sections.append(
        "## Sources and licences\n\n"
        + _table(
            ["source", "cases", "licence"],
            [[source, n, licences.get(source, "")] for source, n in sorted(stats.get("cases_by_source", {}).items())],
        )
        + "\n\nEach source keeps its own licence and terms; read them before you use or redistribute this data.\n"
    )
    sections.append(
        "## Privacy\n\nPatient identifiers are keyed pseudonyms (HMAC-SHA256); the key is never stored. Image "
        "metadata (EXIF, XMP, comments, PNG text chunks) is stripped before export.\n"
    )
    return "\n".join(sections)
