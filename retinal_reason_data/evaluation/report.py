"""The report of an evaluation run: report.md (what was run, the overall numbers with their intervals, a table per
grouping, pass@k and majority vote, the weakest groups, the failed calls) and charts/*.png (accuracy per group
with interval bars). The same inputs give the same bytes: no clock is read here, only `meta`'s own times."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retinal_reason_data.evaluation.charts import Bar, rate_chart
from retinal_reason_data.evaluation.metrics import GROUPINGS
from retinal_reason_data.evaluation.samples import ScoredResponse

REPORT = "report.md"
CHARTS = "charts"
WEAKEST = 5  # groups listed under "Weakest groups"
WEAKEST_MIN_COUNT = 5  # samples a group needs to be listed there (smaller ones are all noise)
FAILED_LISTED = 20  # failed calls listed one by one


def cell(value: Any, limit: int = 80) -> str:
    """A value as one markdown table cell: one line, pipes escaped, at most `limit` characters."""
    text = "" if value is None else str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def release_label(release: Any) -> str:
    """'<repo or path>@<revision> (<content key, 12 characters>)' from run.json's `release`."""
    if not isinstance(release, dict):
        return cell(release)
    where = release.get("repo") or release.get("path") or "?"
    revision = f"@{release['revision']}" if release.get("revision") else ""
    key = release.get("content_key") or release.get("version")
    return cell(f"{where}{revision}" + (f" ({str(key)[:12]})" if key else ""), 120)


def rate(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def bounds(interval: list[float] | None) -> str:
    return "" if not interval else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _run_table(meta: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    params = meta.get("params") or {}
    sampling = ", ".join(f"{name} {value}" for name, value in params.items() if value is not None)
    fields = [
        ("model", cell(meta.get("model") or summary.get("model"), 120)),
        ("endpoint", cell(meta.get("base_url"), 120)),
        ("release", release_label(meta.get("release"))),
        ("format", cell((meta.get("release") or {}).get("format") if isinstance(meta.get("release"), dict) else "")),
        ("config / split", f"{cell(meta.get('config'))} / {cell(meta.get('split'))}"),
        ("attempts per sample", str(meta.get("attempts", summary.get("attempts", "")))),
        ("sampling", cell(sampling, 200)),
        ("started / finished", f"{cell(meta.get('started'))} / {cell(meta.get('finished'))}"),
    ]
    return ["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in fields if value.strip(" /"))]


def _overall(summary: dict[str, Any]) -> list[str]:
    ci = summary.get("ci95") or {}
    lines = [
        "| | value | 95 % interval |",
        "|---|---:|---|",
        f"| samples | {summary['samples']} | |",
        f"| responses | {summary['responses']} ({summary['failed']} failed calls) | |",
        f"| accuracy | {rate(summary['accuracy'])} | {bounds(ci.get('accuracy'))} |",
        f"| format rate | {rate(summary['format_rate'])} | {bounds(ci.get('format_rate'))} |",
        f"| mean score (the reward) | {rate(summary.get('mean_score'))} | |",
    ]
    for k, value in (summary.get("pass_at_k") or {}).items():
        lines.append(f"| pass@{k} | {rate(value)} | |")
    if "majority_vote" in summary:
        vote = summary["majority_vote"]
        lines.append(
            f"| majority vote | {rate(vote['accuracy'])} | {bounds((vote.get('ci95') or {}).get('accuracy'))} |"
        )
    lines += [
        "",
        "A sample's accuracy is the mean over its attempts; the run's, the mean over samples (with several attempts, "
        "the expected accuracy of one). Intervals: percentile bootstrap over samples "
        f"({(summary.get('bootstrap') or {}).get('resamples', '?')} resamples, seed "
        f"{(summary.get('bootstrap') or {}).get('seed', '?')}). A failed call scores 0.",
    ]
    if "majority_vote" in summary:
        lines.append(
            "pass@k: the unbiased estimator of Chen et al. (2021). Majority vote: each attempt votes for the answer "
            "it gave (normalised); the vote is right only when the right answer is the sole most frequent one (a tie "
            "is wrong); a failed call or a reply with no answer votes for nothing."
        )
    return lines


def _group_table(groups: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| group | samples | accuracy | 95 % interval | format rate |", "|---|---:|---:|---|---:|"]
    for name, group in groups.items():
        interval = (group.get("ci95") or {}).get("accuracy")
        lines.append(
            f"| {cell(name) or '(none)'} | {group['count']} | {rate(group['accuracy'])} | {bounds(interval)} "
            f"| {rate(group['format_rate'])} |"
        )
    return lines


def weakest_groups(summary: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(grouping, group, figures) of the WEAKEST groups of lowest accuracy with at least WEAKEST_MIN_COUNT
    samples, over every grouping that has more than one group; ties: more samples first, then by name."""
    found = [
        (name, group, figures)
        for name in GROUPINGS
        if len(summary.get(f"by_{name}") or {}) > 1
        for group, figures in summary[f"by_{name}"].items()
        if figures["count"] >= WEAKEST_MIN_COUNT and figures["accuracy"] is not None
    ]
    found.sort(key=lambda item: (item[2]["accuracy"], -item[2]["count"], item[0], item[1]))
    return found[:WEAKEST]


def _weakest(summary: dict[str, Any]) -> list[str]:
    weakest = weakest_groups(summary)
    if not weakest:
        return [f"No grouping splits the samples into groups of at least {WEAKEST_MIN_COUNT}."]
    lines = [
        f"The {WEAKEST} groups of lowest accuracy among those of at least {WEAKEST_MIN_COUNT} samples, over every "
        "grouping; a wide interval says the group is too small to tell.",
        "",
        "| grouping | group | samples | accuracy | 95 % interval |",
        "|---|---|---:|---:|---|",
    ]
    for name, group, figures in weakest:
        interval = (figures.get("ci95") or {}).get("accuracy")
        lines.append(
            f"| {name.replace('_', ' ')} | {cell(group) or '(none)'} | {figures['count']} "
            f"| {rate(figures['accuracy'])} | {bounds(interval)} |"
        )
    return lines


def _failed(rows: Sequence[ScoredResponse]) -> list[str]:
    failed = sorted((row for row in rows if row.error is not None), key=lambda row: (row.sample_id, row.attempt))
    if not failed:
        return ["None: every call got a reply."]
    classes = Counter(row.error for row in failed)
    lines = [
        f"{len(failed)} calls got no reply after their retries (scored 0): "
        + ", ".join(f"{error} {count}" for error, count in sorted(classes.items()))
        + ". Rerunning the same command sends only these.",
        "",
        "| sample | attempt | error |",
        "|---|---:|---|",
    ]
    lines += [f"| {cell(row.sample_id)} | {row.attempt} | {cell(row.error)} |" for row in failed[:FAILED_LISTED]]
    if len(failed) > FAILED_LISTED:
        lines.append(f"\n... and {len(failed) - FAILED_LISTED} more (the rows with an error in responses.parquet).")
    return lines


def write_charts(folder: Path, summary: dict[str, Any]) -> dict[str, Path]:
    """charts/accuracy_by_<grouping>.png, and charts/attempts.png (pass@k, majority vote) with several
    attempts; name -> path."""
    charts = folder / CHARTS
    written = {}
    for name in GROUPINGS:
        groups = summary.get(f"by_{name}") or {}
        bars = [
            Bar(group or "(none)", figures["accuracy"], (figures.get("ci95") or {}).get("accuracy"), figures["count"])
            for group, figures in groups.items()
        ]
        title = f"Accuracy by {name.replace('_', ' ')} (95 % bootstrap interval)"
        written[f"accuracy_by_{name}"] = rate_chart(charts / f"accuracy_by_{name}.png", title, bars)
    if summary.get("pass_at_k"):
        overall = (summary.get("ci95") or {}).get("accuracy")
        bars = [Bar("accuracy (mean of attempts)", summary["accuracy"], overall, summary["samples"])]
        bars += [Bar(f"pass@{k}", value, None, None) for k, value in summary["pass_at_k"].items()]
        vote = summary.get("majority_vote") or {}
        bars.append(Bar("majority vote", vote.get("accuracy"), (vote.get("ci95") or {}).get("accuracy"), None))
        written["attempts"] = rate_chart(charts / "attempts.png", "Several attempts: pass@k and majority vote", bars)
    return written


def write_report(folder: Path, meta: dict[str, Any], summary: dict[str, Any], rows: Sequence[ScoredResponse]) -> Path:
    """Write `folder`/report.md and `folder`/charts/*.png for one run; returns the path of report.md.

    `meta` is run.json's content (model, base_url, release, config, split, attempts, params, started,
    finished), `summary` is `metrics.summarise(rows)` (plus `model`), `rows` the scored responses."""
    folder = Path(folder)
    charts = write_charts(folder, summary)
    model = meta.get("model") or summary.get("model") or "?"
    lines = [f"# Evaluation of {cell(model, 120)}", "", *_run_table(meta, summary), "", "## Overall", ""]
    lines += _overall(summary)
    if "attempts" in charts:
        lines += ["", f"![pass@k and majority vote]({CHARTS}/attempts.png)"]
    for name in GROUPINGS:
        title = name.replace("_", " ")
        lines += ["", f"## By {title}", "", f"![accuracy by {title}]({CHARTS}/accuracy_by_{name}.png)", ""]
        lines += _group_table(summary.get(f"by_{name}") or {})
    lines += ["", "## Weakest groups", ""]
    lines += _weakest(summary)
    lines += ["", "## Failed calls", "", *_failed(rows)]
    path = folder / REPORT
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
