"""The stages of a build, each idempotent: ingest, items, synthesize, curate, export."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from retinal_reason_data.annotations import ReviewReport, apply_verdicts
from retinal_reason_data.catalog import Catalog
from retinal_reason_data.curate import CurationReport, curate
from retinal_reason_data.export.hf import export_hf
from retinal_reason_data.intake import IngestReport, ensure_phantom, fingerprint_pool, ingest_source
from retinal_reason_data.ontology import Entry, Ontology, default_ontology
from retinal_reason_data.privacy import pseudonym_key
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Item
from retinal_reason_data.stats import collect
from retinal_reason_data.tasks import LeakError, items_for_case
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
    with catalog.transaction():
        catalog.db.execute("DELETE FROM drops WHERE stage = 'tasks'")
        catalog.insert("drops", sorted(leaks, key=lambda row: row["item_id"]), replace=False)


def run_synthesis(recipe: Recipe, catalog: Catalog, report: BuildReport) -> None:
    report.synthesis = synthesize(recipe, catalog, recipe_ontology(recipe))
    if recipe.tasks.complex.judge:
        from retinal_reason_data.casereports.judge import judge_near_misses

        report.judge = judge_near_misses(recipe, catalog)


def run_export(recipe: Recipe, catalog: Catalog, report: BuildReport, force: bool = False) -> None:
    """Curate (duplicates, trace choice, splits) and write the dataset folder if its content changed."""
    from retinal_reason_data.casereports.second_reader import withhold_disagreements

    report.curation = curate(recipe, catalog)
    # complex items the teacher's reading of the case does not agree with leave the release (review settles them)
    report.second_reader = withhold_disagreements(recipe, catalog, recipe_ontology(recipe))
    report.review = apply_verdicts(recipe, catalog)  # rejected traces out, edited traces in (annotations/)
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
