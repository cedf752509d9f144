"""`rrd stats --json`: one JSON object that describes the build; the counts reconcile."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.ontology import Ontology
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.verdicts import review_stats
from retinal_reason_data.teacher.second_reader import second_reader_stats
from retinal_reason_data.teacher.synthesize import failure_reason


def collect(recipe: Recipe, catalog: Catalog, ontology: Ontology) -> dict[str, Any]:
    """Counts from the catalog and the export manifest, under the contract's keys."""
    cases_by_source = catalog.tally("cases", "source")
    findings: dict[str, Counter[str]] = defaultdict(Counter)
    licences: dict[str, str] = {}
    image_shas: set[str] = set()
    for case in catalog.iter_cases():
        licences.setdefault(case.source, case.provenance.licence)
        for code in sorted({f.code for f in case.findings}):
            findings[case.source][ontology.entry(code).name] += 1
        if not case.findings and case.context.diagnosis:
            findings[case.source][case.context.diagnosis] += 1
        image_shas.update(image.sha256 for image in case.images)
    quarantined = catalog.tally("quarantine", "reason")
    quarantined_by_source = catalog.tally("quarantine", "source")
    generations = _generation_stats(catalog)
    last = catalog.last_stage_summary("synthesize")
    dedup = catalog.last_stage_summary("dedup")
    curation = catalog.last_stage_summary("curate")
    manifest_path = recipe.export.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    exported = manifest.get("rows", {})
    return {
        "recipe": recipe.name,
        "ingest_incomplete": catalog.incomplete_ingests(),
        "cases_by_source": cases_by_source,
        "findings_by_source": {s: dict(sorted(c.items())) for s, c in sorted(findings.items())},
        "images": len(image_shas),
        "quarantined_by_reason": quarantined,
        "reconciliation": {
            source: {
                "read": cases_by_source.get(source, 0) + quarantined_by_source.get(source, 0),
                "cases": cases_by_source.get(source, 0),
                "quarantined": quarantined_by_source.get(source, 0),
            }
            for source in sorted(set(cases_by_source) | set(quarantined_by_source))
        },
        "items_by_task": catalog.tally("items", "task"),
        "items_by_question_type": catalog.tally("items", "question_type"),
        "generations": {
            "requests": int(last.get("requests", 0)),
            "cache_hits": int(last.get("cache_hits", 0)),
            "requests_total": catalog.counter("teacher.requests_total"),
            "last_run": {key: last.get(key) for key in ("calls", "failed_calls", "cost", "seconds") if key in last},
            "failed_calls_by_reason": catalog.tally("teacher_events", "kind"),
            **generations,
        },
        "generations_total": {"attempts": generations["attempts"], "verified": generations["verified"]},
        "teacher": {"kind": recipe.teacher.kind, "model": recipe.teacher.model},
        "duplicates": {
            "exact_clusters": dedup.get("exact_clusters", 0),
            "near_clusters": dedup.get("near_clusters", 0),
            "images_dropped": dedup.get("images_dropped", 0),
            "cases_dropped": dedup.get("cases_dropped", 0),
            "pixel_matches": dedup.get("pixel_matches", 0),
            "cross_source_clusters": dedup.get("cross_source_clusters", 0),
            "label_conflicts": dedup.get("label_conflicts", 0),
            "largest_cluster": dedup.get("largest_cluster", 0),
            "matches_by_orientation": dedup.get("matches_by_orientation", {}),
            # issue 18: copies that only verification finds (crops, turns, re-framing), and what it checked
            "matches_by_kind": dedup.get("matches_by_kind", {}),
            "matches_by_copy_kind": dedup.get("matches_by_copy_kind", {}),
            "copy_matches": dedup.get("copy_matches", 0),
            "copy_checks": dedup.get("copy_checks", 0),
            "copies_refused": dedup.get("copies_refused", 0),
        },
        "dropped_by_filter": catalog.tally("drops", "reason"),
        "dropped_by_stage": catalog.tally("drops", "stage"),
        "images_by_quality": curation.get("images_by_quality", {}),
        "splits": catalog.tally("assignments", "split"),
        "groups_by_split": curation.get("groups_by_split", {}),
        "exported": exported,
        "exported_formats": manifest.get("formats", {}),  # format -> rows (per split or file), skipped by reason
        "licences": licences,
        "review": review_stats(recipe, catalog),  # annotators' verdicts: decisions, kappa per source and task
        # who read the case reports' diagnoses (rules; the teacher when it is a model) and how far they agree
        "second_reader": second_reader_stats(recipe, catalog, ontology),
    }


EXPORT_FOLDER_KEY = "export_out"  # meta: the folder the last export of this catalog was written to


def remember_export_folder(catalog: Catalog, folder: Path) -> None:
    """Note in the catalog where its export was written (`rrd build/export --out DIR` may differ from the
    recipe's `export.out`), so that `rrd stats` finds it without being told again."""
    catalog.set_meta(EXPORT_FOLDER_KEY, str(folder))


def export_folder(recipe: Recipe, catalog: Catalog) -> Path:
    """The export folder `rrd stats` reads when no `--out` is given: where this catalog's last export went if it
    still holds a manifest, else the recipe's `export.out`."""
    remembered = catalog.get_meta(EXPORT_FOLDER_KEY)
    if remembered and (Path(remembered) / "manifest.json").is_file():
        return Path(remembered)
    return recipe.export.out


def _generation_stats(catalog: Catalog) -> dict[str, Any]:
    failed: Counter[str] = Counter()
    verified = attempts = prompt_tokens = completion_tokens = guided = guided_verified = 0
    cost = 0.0
    judged: Counter[str] = Counter()  # near-miss open answers put to a judge (casereports.judge)
    for generation in catalog.iter_generations():  # streamed: a batch in memory, not every reply
        attempts += 1
        prompt_tokens += generation.prompt_tokens
        completion_tokens += generation.completion_tokens
        cost += generation.cost
        guided += generation.guided
        if generation.judge:
            judged[generation.judge] += 1
        if generation.verified:
            verified += 1
            guided_verified += generation.guided
        else:
            failed[failure_reason(generation)] += 1
    return {
        "attempts": attempts,
        "verified": verified,
        "failed_by_reason": dict(sorted(failed.items())),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": round(cost, 6),
        "guided": {"attempts": guided, "verified": guided_verified},
        "judged": dict(sorted(judged.items())),
    }
