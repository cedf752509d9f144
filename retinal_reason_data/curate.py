"""Curation: drop duplicate cases, choose each item's verified trace through the filters, assign splits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from retinal_reason_data.catalog import Catalog, dumps
from retinal_reason_data.dedup import deduplicate
from retinal_reason_data.filters import trace_problem
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Generation
from retinal_reason_data.splits import assign_split, case_groups
from retinal_reason_data.teacher.prompts import request_fingerprint
from retinal_reason_data.teacher.synthesize import teacher_identity

CURATION_STAGES = ("dedup", "verify", "filters")


@dataclass
class CurationReport:
    exact_clusters: int = 0
    near_clusters: int = 0
    cases_dropped: int = 0
    images_dropped: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    splits: Counter[str] = field(default_factory=Counter)


def curate(recipe: Recipe, catalog: Catalog) -> CurationReport:
    """Recompute duplicates, trace selection and splits from the catalog (cheap, deterministic)."""
    report = CurationReport()
    cases = list(catalog.iter_cases())
    dedup = (
        deduplicate(cases, recipe.dedup.near_threshold, recipe.dedup.source_priority)
        if recipe.dedup.enabled
        else deduplicate([], 0)
    )
    report.exact_clusters, report.near_clusters = dedup.exact_clusters, dedup.near_clusters
    report.cases_dropped = len(dedup.dropped_cases)
    report.images_dropped = sum(len(c.images) for c in cases if c.case_id in dedup.dropped_cases)
    groups = case_groups(((c.case_id, c.source, c.patient_id) for c in cases), dedup.linked_cases)
    del cases

    drops, assignments = [], []
    answered = _answered(catalog)
    model, params = teacher_identity(recipe)
    for item in catalog.iter_items():
        item_id, case_id = item.item_id, item.case_id
        if case_id in dedup.dropped_cases:
            drops.append(_drop(item_id, "dedup", "duplicate_image", f"case {case_id} duplicates a kept case"))
            continue
        fingerprints = (request_fingerprint(model, params, item, n) for n in range(1, recipe.teacher.attempts + 1))
        attempts = [answered[f] for f in fingerprints if f in answered]
        verified = [g for g in attempts if g.verified]
        chosen, problems = None, []
        for generation in verified:
            problem = trace_problem(generation.response or "", recipe.filters)
            if problem is None:
                chosen = generation
                break
            problems.append(problem)
        split = assign_split(groups[case_id], recipe.splits)
        takes_trace = split in ("train", "validation", "test")
        if takes_trace and chosen is None:
            if not verified:
                drops.append(_drop(item_id, "verify", "unverified", f"0 of {len(attempts)} attempts verified"))
            else:
                drops.append(_drop(item_id, "filters", problems[0], f"all {len(verified)} verified traces failed"))
        assignments.append(
            {
                "item_id": item_id,
                "group_id": groups[case_id],
                "split": split,
                "fingerprint": chosen.fingerprint if chosen and takes_trace else None,
                "attempts": len(attempts),
                "pass_at_k": round(len(verified) / len(attempts), 4) if attempts else None,
            }
        )
        report.splits[split] += 1
    for row in drops:
        report.dropped[row["reason"]] += 1
    with catalog.transaction():
        placeholders = ", ".join("?" for _ in CURATION_STAGES)
        catalog.db.execute(f"DELETE FROM drops WHERE stage IN ({placeholders})", list(CURATION_STAGES))
        catalog.db.execute("DELETE FROM assignments")
        catalog.db.execute("DELETE FROM image_clusters")
        catalog.insert("drops", drops, replace=False)
        catalog.insert("assignments", assignments)
        catalog.insert("image_clusters", dedup.image_rows)
        catalog.set_meta(
            "dedup_summary",
            dumps(
                {
                    "exact_clusters": report.exact_clusters,
                    "near_clusters": report.near_clusters,
                    "cases_dropped": report.cases_dropped,
                    "images_dropped": report.images_dropped,
                }
            ),
        )
    return report


def _answered(catalog: Catalog) -> dict[str, Generation]:
    """Every answered attempt (transport failures are retried, so they are not attempts)."""
    rows = catalog.query("SELECT fingerprint, data FROM generations WHERE error IS NULL")
    return {fingerprint: Generation.model_validate_json(data) for fingerprint, data in rows}


def _drop(item_id: str, stage: str, reason: str, detail: str) -> dict[str, str]:
    return {"item_id": item_id, "stage": stage, "reason": reason, "detail": detail}
