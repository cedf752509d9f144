"""The stages of a build, each idempotent: ingest, items, synthesize, curate, export."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.catalog.curation import replace_drops
from retinal_reason_data.catalog.release import count_assigned
from retinal_reason_data.curation.stage import CurationReport, curate
from retinal_reason_data.ingest.privacy import pseudonym_key
from retinal_reason_data.ingest.stage import IngestReport, ensure_phantom, fingerprint_pool, ingest_source
from retinal_reason_data.ontology import Entry, Ontology, default_ontology
from retinal_reason_data.recipe import Recipe, RecipeError
from retinal_reason_data.release.hf import config_splits, export_hf
from retinal_reason_data.review.verdicts import ReviewReport, apply_verdicts
from retinal_reason_data.schema import Item
from retinal_reason_data.stats import collect
from retinal_reason_data.tasks import LeakError, items_for_case
from retinal_reason_data.teacher import second_reader
from retinal_reason_data.teacher.extraction import run_extraction
from retinal_reason_data.teacher.synthesize import SynthesisReport, synthesize


def recipe_ontology(recipe: Recipe) -> Ontology:
    """The shipped ontology with the recipe's additions and label overrides."""
    base = default_ontology()
    if not recipe.ontology.entries:
        return base
    return base.extend(Entry(**entry) for entry in recipe.ontology.entries)


@dataclass
class BuildReport:
    ingest: list[IngestReport] = field(default_factory=list)
    items: Counter[str] = field(default_factory=Counter)
    synthesis: SynthesisReport | None = None
    judge: Any = None  # casereports.judge.JudgeReport when tasks.complex.judge is on
    extraction: Any = None  # casereports.extraction.ExtractionReport: the teacher's second reading of case reports
    second_reader: Any = None  # casereports.second_reader.SecondReaderReport
    curation: CurationReport | None = None
    manifest: dict[str, Any] | None = None
    review: ReviewReport | None = None


def ingest(recipe: Recipe, catalog: Catalog, report: BuildReport) -> None:
    """Read every source into cases (phantom layouts are written first where the recipe asks)."""
    ontology = recipe_ontology(recipe)
    key, _ = pseudonym_key(recipe.pseudonym_key_env)
    for spec in recipe.sources:
        ensure_phantom(spec)
    with fingerprint_pool(recipe.ingest.workers) as pool:
        for spec in recipe.sources:
            report.ingest.append(ingest_source(spec, catalog, ontology, key, pool))
    catalog.forget_sources_except(spec.source_name for spec in recipe.sources)


def build_items(recipe: Recipe, catalog: Catalog, report: BuildReport) -> None:
    """Questions for every case; a vignette that names its diagnosis is dropped with its reason. Cases stream
    in storage order and items are written as they are made (an item's id and text depend on its case only)."""
    ontology = recipe_ontology(recipe)
    leaks = []

    def items() -> Iterator[Item]:
        cases = catalog.iter_cases(ordered=False)
        total = catalog.count("cases")
        for case in tqdm(cases, total=total, desc="items", unit="case", leave=False, disable=None):
            for built in items_for_case(case, ontology, recipe.tasks, recipe.seed):
                if isinstance(built, LeakError):
                    leaks.append(
                        {
                            "item_id": f"case:{case.case_id}",
                            "stage": "tasks",
                            "reason": "vignette_leak",
                            "detail": f"{case.provenance.file} row {case.provenance.row}: {built}",
                        }
                    )
                else:
                    report.items[f"{built.task}/{built.question_type}"] += 1
                    yield built

    catalog.replace_items(items())
    replace_drops(catalog, "tasks", sorted(leaks, key=lambda row: row["item_id"]))


def run_synthesis(recipe: Recipe, catalog: Catalog, report: BuildReport) -> None:
    """Every teacher attempt not yet answered; with a model as teacher, also its reading of every case report not
    yet read (the second reader that complex items need before they are released; cached like the attempts)."""
    report.synthesis = synthesize(recipe, catalog, recipe_ontology(recipe))
    if second_reader.enabled(recipe) and recipe.tasks.complex.enabled:
        report.extraction = run_extraction(recipe, catalog, recipe_ontology(recipe))
    if recipe.tasks.complex.judge:
        from retinal_reason_data.teacher.judge import judge_near_misses

        report.judge = judge_near_misses(recipe, catalog)


class EmptyExportError(RecipeError):
    """A config or split would be exported with 0 rows and the recipe does not allow it."""


def planned_rows(catalog: Catalog) -> dict[str, dict[str, int]]:
    """Rows each config and split of the export will hold (sft rows need a chosen trace)."""
    planned: dict[str, dict[str, int]] = {}
    for config, splits in config_splits(catalog).items():
        for split, catalog_splits in splits.items():
            planned.setdefault(config, {})[split] = count_assigned(catalog, catalog_splits, with_trace=config == "sft")
    return planned


def check_not_empty(recipe: Recipe, catalog: Catalog, curation: CurationReport | None) -> None:
    """Stop the export, saying why, when a config or split would have 0 rows (unless `export.allow_empty`)."""
    if recipe.export.allow_empty:
        return
    planned = planned_rows(catalog)
    empty = [f"{config}/{split}" for config, splits in planned.items() for split, rows in splits.items() if not rows]
    if not empty:
        return
    causes = []
    if curation is not None:
        causes += curation.warnings
        dropped = ", ".join(f"{reason} {count}" for reason, count in curation.dropped.most_common(5))
        if dropped:
            causes.append(f"items dropped by curation: {dropped}")
    detail = "".join(f"\n  {cause}" for cause in causes)
    raise EmptyExportError(
        f"export stopped: {', '.join(empty)} would have 0 rows{detail}\n"
        "  see the curation report beside the catalog; set export.allow_empty: true to write it anyway"
    )


def run_export(recipe: Recipe, catalog: Catalog, report: BuildReport, force: bool = False) -> None:
    """Curate (duplicates, trace choice, splits) and write the dataset folder if its content changed; stop before
    writing when a config or split would be empty and the recipe does not allow it."""
    report.curation = curate(recipe, catalog)
    # complex items the teacher's reading of the case does not agree with leave the release (review settles them)
    report.second_reader = second_reader.withhold_disagreements(recipe, catalog, recipe_ontology(recipe))
    report.review = apply_verdicts(recipe, catalog)  # rejected traces out, edited traces in (annotations/)
    check_not_empty(recipe, catalog, report.curation)
    stats = collect(recipe, catalog, recipe_ontology(recipe))
    report.manifest = export_hf(recipe, catalog, stats, force=force)


def build(
    recipe: Recipe, catalog: Catalog, report: BuildReport | None = None, force_export: bool = False
) -> BuildReport:
    """Every stage in order; each only does what is missing."""
    report = report or BuildReport()
    ingest(recipe, catalog, report)
    build_items(recipe, catalog, report)
    run_synthesis(recipe, catalog, report)
    run_export(recipe, catalog, report, force=force_export)
    return report
