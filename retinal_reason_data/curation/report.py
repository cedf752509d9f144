"""The curation report: what was dropped and why (with examples), duplicates and their label conflicts, and
the splits, as Markdown for a person and JSON for a program, written next to the catalog."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.curation.dedup import CaseInfo
from retinal_reason_data.curation.filters import IMAGE_DESCRIPTIONS, ITEM_DESCRIPTIONS
from retinal_reason_data.curation.quality_figures import boundaries, render
from retinal_reason_data.curation.quality_gate import load_gate
from retinal_reason_data.curation.trace_checks import trace_descriptions
from retinal_reason_data.recipe import Recipe

if TYPE_CHECKING:
    from retinal_reason_data.curation.stage import CurationReport

MARKDOWN_CONFLICTS = 100
MARKDOWN_COPIES = 50  # copy matches listed in the Markdown report (all are in the JSON one)
MARKDOWN_STRATA = 40

# what each drop reason means: the stages' own reasons here, the filters' from where they are declared
REASONS = {
    "duplicate_image": "every image of the case is a copy of an image kept with another case",
    "label_conflict": "the case's images have duplicates whose labels disagree (dedup.on_label_conflict: drop)",
    **IMAGE_DESCRIPTIONS,
    **ITEM_DESCRIPTIONS,
    "unverified": "no teacher attempt gave the known answer",
    **trace_descriptions(),
    "vignette_leak": "a case vignette names its own diagnosis (dropped when items are built)",
}


def report_paths(recipe: Recipe) -> tuple[Path, Path]:
    """(markdown, json) paths of the report: beside the catalog, named after it."""
    base = recipe.catalog_path.with_suffix("")
    return base.with_name(base.name + ".curation.md"), base.with_name(base.name + ".curation.json")


def _match_entry(row: dict[str, Any], path_of: Mapping[str, str]) -> dict[str, Any]:
    """One row of `duplicate_matches` for the report: files by path where known, the copy's geometry."""
    keys = ("kind", "copy_kind", "angle_deg", "scale", "mirrored", "inliers", "verification_score")
    return {"a": path_of.get(str(row["a"]), row["a"]), "b": path_of.get(str(row["b"]), row["b"])} | {
        key: row.get(key) for key in keys
    }


def quality_figure_path(recipe: Recipe) -> Path:
    """The PNG of the image-quality measures per source, beside the Markdown report."""
    base = recipe.catalog_path.with_suffix("")
    return base.with_name(base.name + ".curation.quality.png")


def build_report(
    recipe: Recipe, catalog: Catalog, report: CurationReport, cases: Mapping[str, CaseInfo]
) -> dict[str, Any]:
    """The report's content as plain data."""
    from retinal_reason_data.pipeline import recipe_ontology

    ontology = recipe_ontology(recipe)

    def name(code: str) -> str:
        try:
            return ontology.entry(code).name
        except KeyError:
            return code

    dropped = catalog.tally("drops", "reason")
    dedup = report.dedup
    conflicts, clusters, copies = [], [], []
    if dedup is not None:
        clustered = catalog.cases_among(case_id for cluster in dedup.clusters for case_id in cluster.cases)
        path_of = {i.sha256: i.path for case in clustered.values() for i in case.images}
        cluster_of = {str(row["sha256"]): str(row["near_cluster"]) for row in dedup.image_rows}
        matches_of: dict[str, list[dict[str, Any]]] = {}
        for row in dedup.match_rows:
            shown = _match_entry(row, path_of)
            matches_of.setdefault(cluster_of.get(str(row["a"]), ""), []).append(shown)
            if row["kind"] == "copy":
                copies.append(shown)
        for cluster in dedup.clusters:
            entry = {
                "cluster": cluster.cluster_id,
                "kind": "exact" if cluster.exact else "near",
                "sources": cluster.sources,
                "kept_image": next(
                    (i.path for c in cluster.cases for i in clustered[c].images if i.sha256 == cluster.kept_image),
                    cluster.kept_image,
                ),
                "cases": [
                    {
                        "case_id": case_id,
                        "source": clustered[case_id].source,
                        "file": clustered[case_id].provenance.file,
                        "row": clustered[case_id].provenance.row,
                        "images": [image.path for image in clustered[case_id].images],
                        "labels": [name(code) for code in cluster.label_sets[case_id]],
                        "kept": case_id not in cluster.dropped_cases,
                    }
                    for case_id in cluster.cases
                ],
                "matches": matches_of.get(cluster.cluster_id, []),
            }
            clusters.append(entry)
            if cluster.label_conflict:
                conflicts.append(entry)
    summary = catalog.last_stage_summary("dedup")
    return {
        "recipe": recipe.name,
        "version": recipe.version,
        "cases": len(cases),
        "items": catalog.count("items"),
        "dropped_by_reason": dropped,
        "examples": {reason: examples for reason, examples in sorted(report.examples.items())},
        "images_by_quality": dict(sorted(report.images_by_quality.items())),
        "image_filters_by_source": {
            source: {
                "photographs": checked,
                "refused": sum(report.refused_by_source.get(source, {}).values()),
                "by_reason_and_measure": {
                    f"{reason} / {measure}": count
                    for (reason, measure), count in sorted(report.refused_by_source.get(source, {}).items())
                },
            }
            for source, checked in sorted(report.images_checked.items())
        },
        "warnings": report.warnings,
        "quality_figure": quality_figure_path(recipe).name if report.images_checked else None,
        "duplicates": summary,
        "clusters": sorted(clusters, key=lambda c: (-len(c["cases"]), c["cluster"])),
        "label_conflicts": conflicts,
        "copy_matches": copies,
        "splits": {
            "items": dict(sorted(report.splits.items())),
            "groups": dict(sorted(report.groups_by_split.items())),
            "holdout_sources": recipe.splits.holdout_sources,
            "by_stratum": {stratum: dict(sorted(c.items())) for stratum, c in report.items_by_stratum.items()},
        },
    }


def write_report(recipe: Recipe, catalog: Catalog, report: CurationReport, cases: Mapping[str, CaseInfo]) -> Path:
    """Write the Markdown and JSON report beside the catalog; return the Markdown path."""
    data = build_report(recipe, catalog, report, cases)
    markdown_path, json_path = report_paths(recipe)
    figure = quality_figure_path(recipe)
    if report.images_checked:
        spec = recipe.filters.images
        gate = load_gate(str(spec.gate_model) if spec.gate_model else None) if spec.gate else None
        render(figure, report.distributions.to_dict(), boundaries(spec, gate))
    else:
        figure.unlink(missing_ok=True)
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(data), encoding="utf-8")
    return markdown_path


def _cell(value: Any, limit: int = 160) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def render_markdown(data: dict[str, Any]) -> str:
    """The report for a person: counts first, then examples of every reason, conflicts, splits."""
    lines = [f"# Curation report: {data['recipe']} {data['version']}", ""]
    lines += [f"{data['cases']} cases, {data['items']} items.", ""]
    lines += ["## Dropped items by reason", "", "| reason | items | what it means |", "|---|---|---|"]
    for reason, count in data["dropped_by_reason"].items():
        lines.append(f"| `{reason}` | {count} | {REASONS.get(reason, '')} |")
    if not data["dropped_by_reason"]:
        lines.append("| (none) | 0 | |")
    lines.append("")
    if data["images_by_quality"]:
        lines += ["Ungradable images (a case with one is dropped): "]
        lines[-1] += ", ".join(f"`{reason}` {count}" for reason, count in data["images_by_quality"].items())
        lines.append("")
    lines += _image_filter_lines(data)
    lines += ["## Examples", ""]
    for reason, examples in data["examples"].items():
        lines += [f"### `{reason}`", ""]
        for example in examples:
            fields = ", ".join(f"{key}: {_cell(value)}" for key, value in example.items() if key != "trace")
            lines.append(f"- {fields}")
            if "trace" in example:
                lines.append(f"  > {_cell(example['trace'], 400)}")
        lines.append("")
    dup = data["duplicates"]
    lines += ["## Duplicates", ""]
    lines.append(
        f"{dup.get('exact_clusters', 0)} exact clusters (same bytes or pixels), {dup.get('near_clusters', 0)} near "
        f"clusters, {dup.get('cross_source_clusters', 0)} across sources; {dup.get('cases_dropped', 0)} cases "
        f"dropped; {dup.get('pixel_matches', 0)} pairs of files with identical pixels; largest cluster "
        f"{dup.get('largest_cluster', 0)} images; matches by orientation: {dup.get('matches_by_orientation', {})}."
    )
    lines.append("")
    lines.append(
        f"Copies found by copy verification (crops, rotations, re-framing): {dup.get('copy_matches', 0)}, of "
        f"{dup.get('copy_checks', 0)} candidate pairs checked ({dup.get('copies_refused', 0)} refused: two "
        f"photographs, not one). Matches by kind: {dup.get('matches_by_kind', {})}; by kind of copy: "
        f"{dup.get('matches_by_copy_kind', {})}. Each match, with its angle, scale, mirror and verification "
        "score, is a row of the catalog's `duplicate_matches` table."
    )
    lines.append("")
    copies = data.get("copy_matches", [])
    if copies:
        lines += [
            f"### Copies found by copy verification ({len(copies)})",
            "",
            "| image | its copy | kind of copy | angle | scale | mirrored | inliers | score |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for copy in copies[:MARKDOWN_COPIES]:
            lines.append(
                f"| {_cell(copy['a'], 80)} | {_cell(copy['b'], 80)} | {copy['copy_kind']} | {copy['angle_deg']:g} | "
                f"{copy['scale']:g} | {'yes' if copy['mirrored'] else 'no'} | {copy['inliers']} | "
                f"{copy['verification_score']:.3f} |"
            )
        if len(copies) > MARKDOWN_COPIES:
            lines.append(f"\n... and {len(copies) - MARKDOWN_COPIES} more in the JSON report.")
        lines.append("")
    conflicts = data["label_conflicts"]
    lines += [f"### Label conflicts ({len(conflicts)})", ""]
    if not conflicts:
        lines += ["No duplicates disagree on their labels.", ""]
    for conflict in conflicts[:MARKDOWN_CONFLICTS]:
        lines += [
            f"Cluster `{conflict['cluster']}` ({conflict['kind']}, {', '.join(conflict['sources'])}):",
            "",
            "| case | source | labels | kept | file (row) | image |",
            "|---|---|---|---|---|---|",
        ]
        for case in conflict["cases"]:
            lines.append(
                f"| {_cell(case['case_id'])} | {case['source']} | {_cell('; '.join(case['labels']))} | "
                f"{'yes' if case['kept'] else 'no'} | {_cell(case['file'], 80)} ({case['row']}) | "
                f"{_cell(case['images'][0] if case['images'] else '', 100)} |"
            )
        lines.append("")
    if len(conflicts) > MARKDOWN_CONFLICTS:
        lines += [f"... and {len(conflicts) - MARKDOWN_CONFLICTS} more in the JSON report.", ""]
    splits = data["splits"]
    lines += ["## Splits", "", "| split | items | groups |", "|---|---|---|"]
    for split in sorted(set(splits["items"]) | set(splits["groups"])):
        lines.append(f"| {split} | {splits['items'].get(split, 0)} | {splits['groups'].get(split, 0)} |")
    lines.append("")
    if splits["holdout_sources"]:
        lines += [f"Held out as `test_ood`: {', '.join(splits['holdout_sources'])}.", ""]
    strata = splits["by_stratum"]
    names = sorted({name for counts in strata.values() for name in counts})
    lines += ["Items per stratum and split:", "", "| stratum | " + " | ".join(names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    ordered = sorted(strata.items(), key=lambda kv: -sum(kv[1].values()))
    for stratum, counts in ordered[:MARKDOWN_STRATA]:
        lines.append(f"| {_cell(stratum, 90)} | " + " | ".join(str(counts.get(n, 0)) for n in names) + " |")
    if len(ordered) > MARKDOWN_STRATA:
        rest: Counter[str] = Counter()
        for _, counts in ordered[MARKDOWN_STRATA:]:
            rest.update(counts)
        cells = " | ".join(str(rest[n]) for n in names)
        lines.append(f"| ({len(ordered) - MARKDOWN_STRATA} more strata) | {cells} |")
    return "\n".join(lines) + "\n"


def _image_filter_lines(data: dict[str, Any]) -> list[str]:
    """The image filters per source (photographs read, refused, by reason and measure), the warnings, and the
    link to the figure of the measures."""
    by_source = data.get("image_filters_by_source") or {}
    if not by_source:
        return []
    lines = ["## Image quality per source", ""]
    lines += ["| source | photographs | refused | share | by reason / measure |", "|---|---|---|---|---|"]
    for source, entry in by_source.items():
        share = entry["refused"] / entry["photographs"] if entry["photographs"] else 0.0
        reasons = ", ".join(f"{key} {count}" for key, count in entry["by_reason_and_measure"].items()) or "-"
        lines.append(f"| {source} | {entry['photographs']} | {entry['refused']} | {share:.0%} | {reasons} |")
    lines.append("")
    for warning in data.get("warnings", []):
        lines += [f"**Warning**: {warning}.", ""]
    if data.get("quality_figure"):
        lines += [
            f"Each measure's distribution per source, with the line where it refuses: "
            f"[{data['quality_figure']}]({data['quality_figure']})",
            "",
            f"![image quality per source]({data['quality_figure']})",
            "",
        ]
    return lines
