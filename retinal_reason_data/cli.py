"""The `rrd` command line."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.pipeline import (
    BuildReport,
    build,
    build_items,
    ingest,
    recipe_ontology,
    run_export,
    run_synthesis,
)
from retinal_reason_data.recipe import Recipe, RecipeError, load_recipe
from retinal_reason_data.stats import collect

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Build verified reasoning datasets for ophthalmic multimodal models.",
)

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Overrides export.out.")]
CatalogOpt = Annotated[Path | None, typer.Option("--catalog", help="Overrides catalog.")]


def _open(recipe_path: Path, out: Path | None, catalog: Path | None) -> tuple[Recipe, Catalog]:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        recipe = load_recipe(recipe_path, out=out, catalog=catalog)
    except RecipeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return recipe, Catalog(recipe.catalog_path)


def _run(
    recipe_path: Path,
    out: Path | None,
    catalog_path: Path | None,
    stage: Callable[[Recipe, Catalog, BuildReport], None],
) -> None:
    recipe, catalog = _open(recipe_path, out, catalog_path)
    started = time.perf_counter()
    report = BuildReport()
    try:
        stage(recipe, catalog, report)
    except RecipeError as exc:  # e.g. a source's `options` that its adapter cannot use
        typer.echo(f"error: {recipe_path}: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        catalog.close()
    _summary(recipe, report, time.perf_counter() - started)


@app.command("build")
def build_command(
    recipe: RecipeArg,
    out: OutOpt = None,
    catalog: CatalogOpt = None,
    force_export: Annotated[bool, typer.Option(help="Rewrite the export even if up to date.")] = False,
) -> None:
    """Run every stage: ingest, items, synthesize, curate, export. Reruns only do what is missing."""
    _run(recipe, out, catalog, lambda r, c, rep: build(r, c, rep, force_export))


@app.command("ingest")
def ingest_command(recipe: RecipeArg, out: OutOpt = None, catalog: CatalogOpt = None) -> None:
    """Read the recipe's sources into the catalog (cases, images, quarantine)."""
    _run(recipe, out, catalog, ingest)


@app.command("synthesize")
def synthesize_command(recipe: RecipeArg, out: OutOpt = None, catalog: CatalogOpt = None) -> None:
    """Build the questions and ask the teacher for every attempt not yet answered."""

    def stage(r: Recipe, c: Catalog, rep: BuildReport) -> None:
        build_items(r, c, rep)
        run_synthesis(r, c, rep)

    _run(recipe, out, catalog, stage)


@app.command("export")
def export_command(
    recipe: RecipeArg,
    out: OutOpt = None,
    catalog: CatalogOpt = None,
    force: Annotated[bool, typer.Option(help="Rewrite even if up to date.")] = False,
) -> None:
    """Deduplicate, filter, split and write the dataset folder."""
    _run(recipe, out, catalog, lambda r, c, rep: run_export(r, c, rep, force=force))


@app.command("stats")
def stats_command(
    recipe: RecipeArg,
    out: OutOpt = None,
    catalog: CatalogOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Counts of everything the build holds; with --json, the machine-readable contract."""
    loaded, db = _open(recipe, out, catalog)
    try:
        stats = collect(loaded, db, recipe_ontology(loaded))
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(stats, indent=2, sort_keys=True))
        return
    for key in (
        "cases_by_source",
        "quarantined_by_reason",
        "items_by_task",
        "items_by_question_type",
        "generations",
        "duplicates",
        "dropped_by_filter",
        "splits",
        "exported",
    ):
        typer.echo(f"{key}: {json.dumps(stats[key], sort_keys=True)}")


@app.command("sources")
def sources_command(
    as_json: Annotated[bool, typer.Option("--json", help="JSON list instead of text.")] = False,
) -> None:
    """Every adapter, the layout it expects on disk and its licence note."""
    from retinal_reason_data.sources import ADAPTERS

    rows = [
        {"adapter": a.name, "title": a.title, "layout": a.layout, "licence": a.licence}
        for a in sorted(ADAPTERS.values(), key=lambda a: a.name)
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['adapter']}: {row['title']}\n  layout:  {row['layout']}\n  licence: {row['licence']}")


@app.command("schemas")
def schemas_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the JSON Schema files.")] = Path("schemas"),
) -> None:
    """Write the JSON Schema of every public model (the `schemas/` folder is generated by this)."""
    from retinal_reason_data.schema_files import write_schemas

    for path in write_schemas(out):
        typer.echo(str(path))


def _summary(recipe: Recipe, report: BuildReport, seconds: float) -> None:
    rows: list[tuple[str, str]] = []
    for part in report.ingest:
        quarantined = sum(part.quarantined.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(part.quarantined.items()))
        rows.append(
            (
                f"source {part.source}",
                f"{part.cases} cases, {quarantined} quarantined"
                + (f" ({detail})" if detail else "")
                + f"; images {part.images_fingerprinted} new, {part.images_cached} cached",
            )
        )
    if report.items:
        rows.append(("items", ", ".join(f"{k} {v}" for k, v in sorted(report.items.items()))))
    if report.synthesis:
        s = report.synthesis
        failed = ", ".join(f"{k} {v}" for k, v in sorted(s.failed.items())) or "none"
        rows.append(
            ("teacher", f"{s.requests} requests, {s.cache_hits} cache hits, {s.verified} verified; failed: {failed}")
        )
    if report.curation:
        c = report.curation
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(c.dropped.items())) or "none"
        rows.append(("curation", f"{c.cases_dropped} duplicate cases; dropped items: {dropped}"))
    if report.manifest:
        m = report.manifest
        counts = "; ".join(
            f"{cfg} " + ", ".join(f"{s} {n}" for s, n in splits.items()) for cfg, splits in m["rows"].items()
        )
        state = "up to date, nothing written" if m.get("up_to_date") else "written"
        rows.append(("export", f"{counts} ({state}) -> {recipe.export.out}"))
    rows.append(("time", f"{seconds:.1f} s"))
    width = max(len(name) for name, _ in rows)
    typer.echo(f"\n{recipe.name} {recipe.version}")
    for name, value in rows:
        typer.echo(f"  {name.ljust(width)}  {value}")


if __name__ == "__main__":
    app()
