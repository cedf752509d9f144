"""The dataset card (README.md with YAML `configs` and `dataset_info`), written from the rows actually exported:
counts per source, modality, task, question type and split, trace lengths, teacher and prompt versions, pass@k,
figures, licences and citations. No timestamps: an unchanged release gets an identical card."""

from __future__ import annotations

from typing import Any

import yaml
from datasets import DatasetInfo, Features, SplitDict, SplitInfo

from retinal_reason_data.recipe import Recipe
from retinal_reason_data.release.citations import citation
from retinal_reason_data.release.figures import FIGURES
from retinal_reason_data.release.formats import FORMATS
from retinal_reason_data.release.output import FormatReport
from retinal_reason_data.release.summary import BREAKDOWN_FIELDS, ReleaseSummary
from retinal_reason_data.review.verdicts import card_section as review_card_section
from retinal_reason_data.teacher.backends import BACKENDS
from retinal_reason_data.teacher.second_reader import card_section as readers_card_section

OFFLINE_NOTICE = (
    "**The reasoning traces in this release were written by the offline drafter of retinal-reason-data: a "
    "deterministic, rule-based program that turns each case's labels into a templated explanation. It is "
    "not a model, it did not look at the images, and its traces are not clinical reasoning.** Use this "
    "release to test pipelines, not to train or evaluate models."
)
FORMAT_NOTES = {name: (info.where, info.read_with) for name, info in FORMATS.items()}  # where, read with


def dataset_info(
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


def data_files(config: str, split: str) -> str:
    """Where a config's split lives in the repository."""
    return f"data/{config}/{split}-*.parquet" if config in ("sft", "rl") else f"{config}/{split}/*.parquet"


def _front_matter(recipe: Recipe, counts: dict[str, dict[str, int]], infos: list[dict[str, Any]]) -> str:
    configs = [
        {
            "config_name": config,
            "data_files": [{"split": split, "path": data_files(config, split)} for split in splits],
            **({"default": True} if config == "sft" else {}),
        }
        for config, splits in counts.items()
    ]
    total = sum(counts.get("sft", {}).values()) + sum(counts.get("rl", {}).values())
    header = {
        "license": recipe.export.card.licence,
        "pretty_name": recipe.name,
        "language": ["en"],
        "tags": ["medical", "ophthalmology", "retina", "reasoning", "multimodal"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "size_categories": [_size_category(total)],
        "configs": configs,
        "dataset_info": infos,
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"


def _size_category(rows: int) -> str:
    for limit, label in ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M")):
        if rows < limit:
            return label
    return "1M<n<10M"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in row) + " |" for row in rows
    ]
    return "\n".join(lines)


def _figure(name: str) -> str:
    return f"![{FIGURES[name]}](figures/{name}.png)"


def _teacher_section(recipe: Recipe, summary: ReleaseSummary, stats: dict[str, Any]) -> str:
    teacher = stats.get("teacher", {})
    models = ", ".join(f"`{model}` ({n} rows)" for model, n in sorted(summary.teacher_models.items())) or "none"
    prompts = ", ".join(f"`{v}` ({n} rows)" for v, n in sorted(summary.prompt_versions.items())) or "none"
    lines = ["## Teacher\n", f"- Teacher model of the `sft` traces: {models}", f"- Prompt version: {prompts}"]
    backend = BACKENDS.get(teacher.get("kind", ""))
    if backend is not None and not backend.is_model:
        lines += ["", OFFLINE_NOTICE]
    else:
        lines += [
            "",
            f"The traces were drafted by `{teacher.get('model')}` through an OpenAI-compatible endpoint and kept "
            "only when their final answer was verified against the known answer. They are model output: the "
            "terms of use of the model's provider apply to them (some forbid using outputs to train competing "
            "models); read them before you train on this release.",
        ]
    if recipe.export.card.teacher_terms:
        lines += ["", f"Teacher terms: {recipe.export.card.teacher_terms}"]
    return "\n".join(lines) + "\n"


def _breakdown_tables(summary: ReleaseSummary) -> str:
    columns = [f"{config}/{split}" for config, splits in summary.rows.items() for split in splits]
    sections = []
    for name in BREAKDOWN_FIELDS:
        values = sorted(summary.breakdown.get(name, {}))
        rows = [[value, *(summary.breakdown[name][value].get(column, 0) for column in columns)] for value in values]
        sections.append(
            f"### By {name.replace('_', ' ')}\n\n{_figure(f'rows_by_{name}')}\n\n" + _table([name, *columns], rows)
        )
    return "\n\n".join(sections) + "\n"


def _trace_section(summary: ReleaseSummary) -> str:
    percentiles = summary.trace_percentiles()
    table = _table(list(percentiles), [list(percentiles.values())]) if percentiles else "No traces in this release."
    return (
        "## Trace length\n\nWords of the verified reasoning (`think`) of the `sft` rows.\n\n"
        f"{_figure('trace_length')}\n\n{table}\n"
    )


def _pass_at_k_section(summary: ReleaseSummary) -> str:
    values = sorted({value for counts in summary.pass_at_k.values() for value in counts})
    configs = list(summary.pass_at_k)
    rows = [[value, *(summary.pass_at_k[config].get(value, 0) for config in configs)] for value in values]
    return (
        "## Teacher pass rate (pass@k)\n\nShare of the teacher's blind attempts at an item whose answer was right: "
        "a difficulty signal (RL trainers often keep items between 0 and 1). `none`: no blind attempt was made.\n\n"
        f"{_figure('pass_at_k')}\n\n" + _table(["pass@k", *configs], rows) + "\n"
    )


def _sources_section(recipe: Recipe, stats: dict[str, Any]) -> str:
    licences = stats.get("licences", {})
    adapters = {spec.source_name: spec.adapter for spec in recipe.sources}
    rows = [
        [source, cases, licences.get(source, ""), citation(source, adapters.get(source), recipe.export.card.citations)]
        for source, cases in sorted(stats.get("cases_by_source", {}).items())
    ]
    return (
        "## Sources, licences and citations\n\n"
        + _table(["source", "cases", "licence", "cite"], rows)
        + "\n\nEach source keeps its own licence and terms; this release inherits the most restrictive of them. "
        "Read them before you use or redistribute this data, and cite the sources you use.\n"
    )


def _formats_section(formats: dict[str, FormatReport]) -> str:
    rows = []
    for name in ["hf", *formats]:
        where, how = FORMAT_NOTES[name]
        rows.append([name, where, how])
    skipped = [
        f"- `{name}` left out rows it has no file for or cannot send: "
        + ", ".join(f"{reason} {n}" for reason, n in sorted(report.skipped.items()))
        for name, report in formats.items()
        if report.skipped
    ]
    return (
        "## Files\n\nEvery format holds the same rows and splits as the `hf` configs; images are stripped of "
        "metadata and identical across formats.\n\n"
        + _table(["format", "where", "read with"], rows)
        + ("\n\n" + "\n".join(skipped) if skipped else "")
        + "\n\n`manifest.json` lists every file with its SHA-256; `index/samples.parquet` lists every row's id and "
        "content digest (what `rrd diff` and the changelog compare).\n"
    )


def _build_section(stats: dict[str, Any]) -> str:
    generations = stats.get("generations_total", {})
    rows = [
        ["cases read", sum(stats.get("cases_by_source", {}).values())],
        ["inputs quarantined", sum(stats.get("quarantined_by_reason", {}).values())],
        ["items (questions)", sum(stats.get("items_by_task", {}).values())],
        ["teacher attempts", generations.get("attempts", 0)],
        ["verified attempts", generations.get("verified", 0)],
        ["cases dropped as duplicates", stats.get("duplicates", {}).get("cases_dropped", 0)],
    ]
    return (
        "## How it was built\n\n"
        + _table(["step", "count"], rows)
        + "\n\nSplits group every patient and every duplicate cluster on one side; the `rl` train split shares no "
        "group with the `sft` train split; `test` is the same in both configs.\n"
    )


REWARD_USAGE = """## Reward function

The `rl` rows carry `ground_truth` (JSON: question type, answer, accepted aliases). The reward that checked
the traces of this release is importable as is:

```python
from retinal_reason_data.rewards import compute_score  # verl's signature
# compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)
#   -> 0.9 * accuracy + 0.1 * format
compute_score("aptos2019", "<think>...</think><answer>B</answer>", row["ground_truth"])
```

A hedge earns no accuracy (both truth values, several letters for a single choice, names that disagree, text
after `</answer>`); replies over 65,536 characters score 0. EasyR1:
`worker.reward.reward_function=retinal_reason_data/rewards.py:easyr1_compute_score` (returns `overall`,
`format`, `accuracy`).
"""


def render_card(
    recipe: Recipe,
    features: dict[str, Features],
    counts: dict[str, dict[str, int]],
    sizes: dict[str, int],
    summary: ReleaseSummary,
    stats: dict[str, Any],
    formats: dict[str, FormatReport],
) -> str:
    """Markdown card; every number comes from the exported rows or the catalog (no timestamps)."""
    sections = [
        _front_matter(recipe, counts, dataset_info(features, counts, sizes)),
        f"# {recipe.name} {recipe.version}\n",
    ]
    sections.append(
        "Reasoning data for ophthalmic multimodal models, built by retinal-reason-data from colour fundus "
        "photographs, OCT B-scans, fluorescein angiograms and case reports. Each `sft` row holds a question "
        "with a known answer and a step-by-step trace (`think`) whose final answer was verified against it; "
        "each `rl` row holds a question whose `ground_truth` the reward function "
        "`retinal_reason_data.rewards.compute_score` checks.\n"
    )
    sections.append(_formats_section(formats))
    split_rows = [[config, split, n] for config, splits in summary.rows.items() for split, n in splits.items()]
    sections.append(
        "## Rows\n\n" + _figure("rows_by_split") + "\n\n" + _table(["config", "split", "rows"], split_rows) + "\n"
    )
    sections.append(_breakdown_tables(summary))
    sections.append(_teacher_section(recipe, summary, stats))
    sections.append(_trace_section(summary))
    sections.append(_pass_at_k_section(summary))
    sections.append(_build_section(stats))
    sections.append(review_card_section(stats.get("review")))  # annotations: verdicts honoured by this build
    complex_rows = sum(summary.breakdown.get("task", {}).get("complex", {}).values())
    if complex_rows:  # who read the case reports' diagnoses: the rules, and the teacher when it is a model
        sections.append(readers_card_section(stats.get("second_reader"), complex_rows))
    sections.append(_sources_section(recipe, stats))
    sections.append(
        "## Privacy\n\nPatient identifiers are keyed pseudonyms (HMAC-SHA256); the key is never stored. Image "
        "metadata (EXIF, XMP, comments, PNG text chunks) is stripped before export.\n"
    )
    sections.append(REWARD_USAGE)
    if recipe.export.card.citation:
        sections.append("## Citation\n\n```\n" + recipe.export.card.citation.strip() + "\n```\n")
    sections.append(
        "## Changes\n\nSee `CHANGELOG.md` (written by `rrd push`) for what changed between tagged versions.\n"
    )
    return "\n".join(sections)
