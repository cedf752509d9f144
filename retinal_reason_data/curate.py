"""Curation: drop ungradable and duplicate cases, choose each item's verified trace through the filters,
assign leakage-safe splits, and write a report with examples of every drop."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from retinal_reason_data.catalog import Catalog, dumps
from retinal_reason_data.curation_report import write_report
from retinal_reason_data.dedup import DedupResult, case_info, deduplicate
from retinal_reason_data.filters import image_problem, item_problem, normalised_sharpness, trace_problem
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Case, Generation
from retinal_reason_data.splits import TRACE_SPLITS, assign_splits, case_groups, stratum_key
from retinal_reason_data.teacher.prompts import request_fingerprint
from retinal_reason_data.teacher.synthesize import guided_fingerprints, teacher_identity

CURATION_STAGES = ("quality", "dedup", "verify", "filters")
EXAMPLES_PER_REASON = 5


@dataclass
class CurationReport:
    exact_clusters: int = 0
    near_clusters: int = 0
    cases_dropped: int = 0
    images_dropped: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    splits: Counter[str] = field(default_factory=Counter)
    images_by_quality: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    dedup: DedupResult | None = None
    groups_by_split: Counter[str] = field(default_factory=Counter)
    items_by_stratum: dict[str, Counter[str]] = field(default_factory=dict)

    def example(self, reason: str, **details: Any) -> None:
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(details)


def curate(recipe: Recipe, catalog: Catalog) -> CurationReport:
    """Recompute image quality, duplicates, trace selection and splits from the catalog (deterministic),
    store them, and write the curation report next to the catalog."""
    report = CurationReport()
    cases = {case.case_id: case for case in catalog.iter_cases()}
    unusable = _image_quality(recipe, cases, report)
    digests = dict(catalog.query("SELECT sha256, digest FROM pixel_digests"))
    known_digests = set(digests)
    dedup = deduplicate(
        cases.values(),
        recipe.dedup,
        image_usable=lambda case, image: (case.case_id, image.sha256) not in unusable,
        pixel_digests=digests,
    )
    report.dedup = dedup
    report.exact_clusters, report.near_clusters = dedup.exact_clusters, dedup.near_clusters
    report.cases_dropped = len(dedup.dropped_cases)
    report.images_dropped = sum(len(cases[c].images) for c in dedup.dropped_cases)
    case_drops = {case_id: ("quality", reason, detail) for case_id, (reason, detail) in unusable_cases(unusable)}
    for case_id, reason in dedup.dropped_cases.items():
        case_drops.setdefault(case_id, ("dedup", reason, dedup.drop_details[case_id]))
    groups = case_groups(((c.case_id, c.source, c.patient_id) for c in cases.values()), dedup.linked_cases)
    splits = _assign(recipe, catalog, cases, groups, case_drops, report)

    drops, assignments = [], []
    answered = _answered(catalog)
    model, params = teacher_identity(recipe)
    for item in catalog.iter_items():
        item_id, case_id = item.item_id, item.case_id
        case = cases[case_id]
        if case_id in case_drops:
            stage, reason, detail = case_drops[case_id]
            drops.append(_drop(item_id, stage, reason, f"case {case_id}: {detail}"))
            report.example(reason, item_id=item_id, **_where(case), detail=detail)
            continue
        problem = item_problem(item, recipe.filters)
        if problem is not None:
            drops.append(_drop(item_id, "filters", problem, f"question states its answer '{item.answer.text}'"))
            report.example(problem, item_id=item_id, **_where(case), question=item.question, answer=item.answer.text)
            continue
        fingerprints = (request_fingerprint(model, params, item, n) for n in range(1, recipe.teacher.attempts + 1))
        attempts = [answered[f] for f in fingerprints if f in answered]
        verified = [g for g in attempts if g.verified]
        # blind traces first; guided ones (asked only when no blind attempt was right) as the fallback
        guided = [] if verified else [answered[f] for f in guided_fingerprints(recipe, item) if f in answered]
        candidates = verified + [g for g in guided if g.verified]
        chosen, problems = None, []
        for generation in candidates:
            problem = trace_problem(generation.response or "", recipe.filters, item)
            if problem is None:
                chosen = generation
                break
            problems.append((problem, generation))
        split = splits[groups[case_id]]
        takes_trace = split in TRACE_SPLITS
        if takes_trace and chosen is None:
            if not candidates:
                drops.append(_drop(item_id, "verify", "unverified", f"0 of {len(attempts)} attempts verified"))
            else:
                reason, failed = problems[0]
                drops.append(_drop(item_id, "filters", reason, f"all {len(candidates)} verified traces failed"))
                report.example(reason, item_id=item_id, **_where(case), trace=(failed.response or "")[:600])
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
    _store(catalog, report, dedup, drops, assignments, digests, known_digests)
    write_report(recipe, catalog, report, cases)
    return report


def _image_quality(recipe: Recipe, cases: dict[str, Case], report: CurationReport) -> dict[tuple[str, str], str]:
    """(case id, image sha256) -> reason, for every image that fails the image filters."""
    unusable: dict[tuple[str, str], str] = {}
    spec = recipe.filters.images
    for case in cases.values():
        for image in case.images:
            reason = image_problem(image, case.gradable, spec)
            if reason is None:
                continue
            unusable[(case.case_id, image.sha256)] = reason
            report.images_by_quality[reason] += 1
            measures = image.quality.model_dump() if image.quality else {}
            if measures:
                measures["sharpness_normalised"] = round(normalised_sharpness(image), 4)
            report.example(f"images:{reason}", case_id=case.case_id, path=image.path, **measures)
    return unusable


def unusable_cases(unusable: dict[tuple[str, str], str]) -> list[tuple[str, tuple[str, str]]]:
    """Each case with an ungradable image: (case id, (first reason, detail))."""
    by_case: dict[str, list[str]] = defaultdict(list)
    for (case_id, _), reason in sorted(unusable.items()):
        by_case[case_id].append(reason)
    return [
        (case_id, (reasons[0], f"{len(reasons)} ungradable image(s): {', '.join(sorted(set(reasons)))}"))
        for case_id, reasons in sorted(by_case.items())
    ]


def _assign(
    recipe: Recipe,
    catalog: Catalog,
    cases: dict[str, Case],
    groups: dict[str, str],
    case_drops: dict[str, tuple[str, str, str]],
    report: CurationReport,
) -> dict[str, str]:
    """Group id -> split, dealt within strata of (task, modality, label) as the recipe asks."""
    spec = recipe.splits
    labels = {case_id: "+".join(case_info(case).labels) or "none" for case_id, case in cases.items()}
    group_items: dict[str, Counter[str]] = defaultdict(Counter)
    for case_id, task, modality in catalog.query("SELECT case_id, task, modality FROM items ORDER BY item_id"):
        if case_id not in case_drops:
            group_items[groups[case_id]][stratum_key(spec, task, modality, labels[case_id])] += 1
    holdout = set(spec.holdout_sources)
    held_out = {groups[c.case_id] for c in cases.values() if c.source in holdout}
    splits = assign_splits(group_items, held_out, spec)
    strata: dict[str, Counter[str]] = defaultdict(Counter)
    for group, counts in group_items.items():
        report.groups_by_split[splits[group]] += 1
        for stratum, count in counts.items():
            strata[stratum][splits[group]] += count
    report.items_by_stratum = dict(sorted(strata.items()))
    return splits


def _where(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "source": case.source,
        "file": case.provenance.file,
        "row": case.provenance.row,
    }


def _store(
    catalog: Catalog,
    report: CurationReport,
    dedup: DedupResult,
    drops: list[dict[str, str]],
    assignments: list[dict[str, Any]],
    digests: dict[str, str],
    known_digests: set[str],
) -> None:
    new_digests = [{"sha256": s, "digest": d} for s, d in sorted(digests.items()) if s not in known_digests]
    with catalog.transaction():
        placeholders = ", ".join("?" for _ in CURATION_STAGES)
        catalog.db.execute(f"DELETE FROM drops WHERE stage IN ({placeholders})", list(CURATION_STAGES))
        catalog.db.execute("DELETE FROM assignments")
        catalog.db.execute("DELETE FROM image_clusters")
        catalog.db.execute("DELETE FROM duplicate_matches")
        catalog.insert("drops", drops, replace=False)
        catalog.insert("assignments", assignments)
        catalog.insert("image_clusters", dedup.image_rows)
        catalog.insert("duplicate_matches", dedup.match_rows, replace=False)
        catalog.insert("pixel_digests", new_digests)
        catalog.set_meta(
            "dedup_summary",
            dumps(
                {
                    "exact_clusters": report.exact_clusters,
                    "near_clusters": report.near_clusters,
                    "cases_dropped": report.cases_dropped,
                    "images_dropped": report.images_dropped,
                    "pixel_matches": dedup.pixel_matches,
                    "cross_source_clusters": sum(1 for c in dedup.clusters if len(c.sources) > 1),
                    "label_conflicts": len(dedup.label_conflicts),
                    "largest_cluster": max((len(c.images) for c in dedup.clusters), default=0),
                    "matches_by_orientation": dict(
                        sorted(Counter(str(row["orientation"]) for row in dedup.match_rows).items())
                    ),
                }
            ),
        )
        catalog.set_meta(
            "curation_summary",
            dumps(
                {
                    "images_by_quality": dict(sorted(report.images_by_quality.items())),
                    "groups_by_split": dict(sorted(report.groups_by_split.items())),
                }
            ),
        )


def _answered(catalog: Catalog) -> dict[str, Generation]:
    """Every answered attempt (transport failures are retried, so they are not attempts)."""
    rows = catalog.query("SELECT fingerprint, data FROM generations WHERE error IS NULL")
    return {fingerprint: Generation.model_validate_json(data) for fingerprint, data in rows}


def _drop(item_id: str, stage: str, reason: str, detail: str) -> dict[str, str]:
    return {"item_id": item_id, "stage": stage, "reason": reason, "detail": detail}
