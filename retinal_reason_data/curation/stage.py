"""Curation: drop ungradable and duplicate cases, choose each item's verified trace through the filters,
assign leakage-safe splits, and write a report with examples of every drop."""

from __future__ import annotations

import bisect
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retinal_reason_data.batches import batched
from retinal_reason_data.catalog import Catalog
from retinal_reason_data.catalog.curation import clear_curation, iter_item_strata, pixel_digests
from retinal_reason_data.curation.dedup import CaseInfo, DedupResult, deduplicate
from retinal_reason_data.curation.filters import image_refusal, item_problem, normalised_sharpness, trace_problem
from retinal_reason_data.curation.quality_figures import QualityDistributions
from retinal_reason_data.curation.quality_gate import GateModel, load_gate
from retinal_reason_data.curation.report import write_report
from retinal_reason_data.curation.splits import TRACE_SPLITS, assign_splits, case_groups, stratum_key
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Case, Generation, Item
from retinal_reason_data.teacher.synthesize import blind_fingerprints, guided_fingerprints

CURATION_STAGES = ("quality", "dedup", "verify", "filters")
log = logging.getLogger(__name__)
ITEMS_PER_LOOKUP = 2000  # items whose replies are read in one query
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
    kept_examples: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))
    dedup: DedupResult | None = None
    groups_by_split: Counter[str] = field(default_factory=Counter)
    items_by_stratum: dict[str, Counter[str]] = field(default_factory=dict)
    images_checked: Counter[str] = field(default_factory=Counter)  # source -> photographs the image filters read
    refused_by_source: dict[str, Counter[tuple[str, str]]] = field(default_factory=lambda: defaultdict(Counter))
    distributions: QualityDistributions = field(default_factory=QualityDistributions)
    warnings: list[str] = field(default_factory=list)

    def refusal_warnings(self, share: float) -> list[str]:
        """A line per source whose image filters refused more than `share` of its photographs, naming the share
        and the reason and measure that refused most of them."""
        lines = []
        for source, checked in sorted(self.images_checked.items()):
            refused = self.refused_by_source.get(source, Counter())
            total = sum(refused.values())
            if checked and total / checked > share:
                (reason, measure), count = min(refused.items(), key=lambda kv: (-kv[1], kv[0]))
                lines.append(
                    f"source '{source}': the image filters refused {total} of {checked} photographs "
                    f"({total / checked:.1%}, above filters.images.warn_refused_share {share:.0%}); most by "
                    f"{reason} ({count}, measure {measure})"
                )
        return lines

    def wants(self, reason: str, key: str) -> bool:
        """Whether an example of `reason` sorting as `key` would be kept (the first few by key are: the report
        does not depend on the order in which the catalog yields cases and items)."""
        kept = self.kept_examples.get(reason, [])
        return len(kept) < EXAMPLES_PER_REASON or key < kept[-1][0]

    def example(self, reason: str, key: str, **details: Any) -> None:
        if self.wants(reason, key):
            kept = self.kept_examples[reason]
            bisect.insort(kept, (key, details), key=lambda entry: entry[0])
            del kept[EXAMPLES_PER_REASON:]

    @property
    def examples(self) -> dict[str, list[dict[str, Any]]]:
        """Up to EXAMPLES_PER_REASON examples of each reason, in key order."""
        return {reason: [details for _, details in kept] for reason, kept in self.kept_examples.items()}


def curate(recipe: Recipe, catalog: Catalog) -> CurationReport:
    """Recompute image quality, duplicates, trace selection and splits from the catalog (deterministic),
    store them, and write the curation report next to the catalog.

    Cases stream from the catalog once, through the image filters into deduplication, which keeps what the
    later steps need of each (`CaseInfo`); replies are read a batch of items at a time."""
    started = datetime.now(UTC)
    report = CurationReport()
    unusable: dict[tuple[str, str], str] = {}  # (case id, image sha256) -> why the image is not usable

    def graded(cases: Iterator[Case]) -> Iterator[Case]:
        for case in cases:
            _image_quality(recipe, case, unusable, report)
            yield case

    digests = pixel_digests(catalog)
    known_digests = set(digests)
    dedup = deduplicate(
        graded(catalog.iter_cases(ordered=False)),  # sorting every case's JSON took 300 MB at 100k cases
        recipe.dedup,
        image_usable=lambda case, image: (case.case_id, image.sha256) not in unusable,
        pixel_digests=digests,
    )
    cases = dedup.cases
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
    for batch in batched(catalog.iter_items(), ITEMS_PER_LOOKUP):
        # this batch's replies only, in one query (all replies at once held every trace of the build in memory)
        asked = {item.item_id: (blind_fingerprints(recipe, item), guided_fingerprints(recipe, item)) for item in batch}
        answered = catalog.generations_among([f for blind, guided in asked.values() for f in blind + guided])
        for item in batch:
            item_id, case_id = item.item_id, item.case_id
            if case_id in case_drops:
                stage, reason, detail = case_drops[case_id]
                drops.append(_drop(item_id, stage, reason, f"case {case_id}: {detail}"))
                _example(report, catalog, reason, item_id, case_id, detail=detail)
                continue
            problem = item_problem(item, recipe.filters)
            if problem is not None:
                drops.append(_drop(item_id, "filters", problem, f"question states its answer '{item.answer.text}'"))
                _example(report, catalog, problem, item_id, case_id, question=item.question, answer=item.answer.text)
                continue
            choice = _choose_trace(item, *asked[item_id], answered, recipe)
            split = splits[groups[case_id]]
            takes_trace = split in TRACE_SPLITS
            if takes_trace and choice.chosen is None:
                if choice.failed is None:
                    drops.append(_drop(item_id, "verify", "unverified", f"0 of {choice.attempts} attempts verified"))
                else:
                    reason, failed = choice.failed
                    drops.append(_drop(item_id, "filters", reason, f"all {choice.candidates} verified traces failed"))
                    _example(report, catalog, reason, item_id, case_id, trace=(failed.response or "")[:600])
            assignments.append(
                {
                    "item_id": item_id,
                    "group_id": groups[case_id],
                    "split": split,
                    "fingerprint": choice.chosen.fingerprint if choice.chosen and takes_trace else None,
                    "attempts": choice.attempts,
                    "pass_at_k": round(choice.verified / choice.attempts, 4) if choice.attempts else None,
                }
            )
            report.splits[split] += 1
    for row in drops:
        report.dropped[row["reason"]] += 1
    report.warnings = report.refusal_warnings(recipe.filters.images.warn_refused_share)
    for line in report.warnings:
        log.warning(line)
    _store(catalog, report, dedup, drops, assignments, digests, known_digests, started)
    write_report(recipe, catalog, report, cases)
    return report


@dataclass
class TraceChoice:
    """An item's replies as curation sees them: the trace chosen, or the first reason none could be."""

    attempts: int  # blind attempts answered
    verified: int  # of which verified
    candidates: int  # verified traces tried (blind, else guided)
    chosen: Generation | None = None
    failed: tuple[str, Generation] | None = None  # the first filter that refused a verified trace


def _choose_trace(
    item: Item, blind: list[str], guided: list[str], answered: dict[str, Generation], recipe: Recipe
) -> TraceChoice:
    """The first verified trace that passes the trace filters: blind traces first, guided ones (asked only when
    no blind attempt was right) as the fallback."""
    attempts = [answered[f] for f in blind if f in answered]
    verified = [g for g in attempts if g.verified]
    fallback = [] if verified else [answered[f] for f in guided if f in answered and answered[f].verified]
    choice = TraceChoice(len(attempts), len(verified), len(verified) + len(fallback))
    for generation in verified + fallback:
        problem = trace_problem(generation.response or "", recipe.filters, item)
        if problem is None:
            choice.chosen = generation
            return choice
        choice.failed = choice.failed or (problem, generation)
    return choice


def _image_quality(recipe: Recipe, case: Case, unusable: dict[tuple[str, str], str], report: CurationReport) -> None:
    """Record in `unusable` ((case id, image sha256) -> reason) each image of `case` that fails the image filters,
    and count what the filters read and refused per source."""
    spec = recipe.filters.images
    gate = _gate(recipe)
    for image in case.images:
        if spec.enabled and image.modality in spec.modalities and image.quality is not None:
            report.images_checked[case.source] += 1
            report.distributions.add(case.source, image.quality, gate)
        refusal = image_refusal(image, case.gradable, spec)
        if refusal is None:
            continue
        reason = refusal.reason
        unusable[(case.case_id, image.sha256)] = reason
        report.images_by_quality[reason] += 1
        report.refused_by_source[case.source][(reason, refusal.measure)] += 1
        measures = image.quality.model_dump(exclude_none=True) if image.quality else {}
        if measures:
            measures["sharpness_normalised"] = round(normalised_sharpness(image), 4)
        key = f"{case.case_id} {image.path}"
        report.example(
            f"images:{reason}", key, case_id=case.case_id, path=image.path, measure=refusal.measure, **measures
        )


def _gate(recipe: Recipe) -> GateModel | None:
    spec = recipe.filters.images
    return load_gate(str(spec.gate_model) if spec.gate_model else None) if spec.gate else None


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
    cases: dict[str, CaseInfo],
    groups: dict[str, str],
    case_drops: dict[str, tuple[str, str, str]],
    report: CurationReport,
) -> dict[str, str]:
    """Group id -> split, dealt within strata of (task, modality, label) as the recipe asks."""
    spec = recipe.splits
    labels = {case_id: "+".join(info.labels) or "none" for case_id, info in cases.items()}
    group_items: dict[str, Counter[str]] = defaultdict(Counter)
    for case_id, task, modality in iter_item_strata(catalog):
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


def _example(report: CurationReport, catalog: Catalog, reason: str, item_id: str, case_id: str, **details: Any) -> None:
    """Keep an example of an item's drop, with its case's provenance (read only for the few examples kept)."""
    if report.wants(reason, item_id):
        case = catalog.get_case(case_id)
        where = {"source": case.source, "file": case.provenance.file, "row": case.provenance.row} if case else {}
        report.example(reason, item_id, item_id=item_id, case_id=case_id, **where, **details)


def _store(
    catalog: Catalog,
    report: CurationReport,
    dedup: DedupResult,
    drops: list[dict[str, str]],
    assignments: list[dict[str, Any]],
    digests: dict[str, str],
    known_digests: set[str],
    started: datetime,
) -> None:
    new_digests = [{"sha256": s, "digest": d} for s, d in sorted(digests.items()) if s not in known_digests]
    with catalog.transaction():
        clear_curation(catalog, CURATION_STAGES)
        catalog.insert("drops", drops, replace=False)
        catalog.insert("assignments", assignments)
        catalog.insert("image_clusters", dedup.image_rows)
        catalog.insert("duplicate_matches", dedup.match_rows, replace=False)
        catalog.insert("pixel_digests", new_digests)
        catalog.record_stage_run(
            "dedup",
            started=started,
            summary={
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
                "matches_by_kind": dict(sorted(Counter(str(row["kind"]) for row in dedup.match_rows).items())),
                "matches_by_copy_kind": dict(
                    sorted(Counter(str(row["copy_kind"]) for row in dedup.match_rows if row["copy_kind"]).items())
                ),
                "copy_matches": sum(1 for row in dedup.match_rows if row["kind"] == "copy"),
                "copy_checks": dedup.copy_checks,
                "copies_refused": dedup.copies_refused,
            },
        )
        catalog.record_stage_run(
            "curate",
            started=started,
            summary={
                "images_by_quality": dict(sorted(report.images_by_quality.items())),
                "groups_by_split": dict(sorted(report.groups_by_split.items())),
            },
        )


def _drop(item_id: str, stage: str, reason: str, detail: str) -> dict[str, str]:
    return {"item_id": item_id, "stage": stage, "reason": reason, "detail": detail}
