"""The `rrd` command line."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

if TYPE_CHECKING:  # the stage modules pull in duckdb, pyarrow, datasets, ...: each command imports what it needs
    from retinal_reason_data.catalog import Catalog
    from retinal_reason_data.pipeline import BuildReport
    from retinal_reason_data.recipe import Recipe

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Build verified reasoning datasets for ophthalmic multimodal models.",
)

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Overrides export.out.")]
CatalogOpt = Annotated[Path | None, typer.Option("--catalog", help="Overrides catalog.")]


def _log_level() -> None:
    """Logging to stderr at RRD_LOG_LEVEL (default WARNING; e.g. INFO: the teacher's commits and retries)."""
    level = os.environ.get("RRD_LOG_LEVEL", "WARNING").upper()
    level = level if level in logging.getLevelNamesMapping() else "WARNING"
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")


def _open(recipe_path: Path, out: Path | None, catalog: Path | None) -> tuple[Recipe, Catalog]:
    import duckdb

    from retinal_reason_data.catalog import Catalog
    from retinal_reason_data.ingest.sources import check_adapters
    from retinal_reason_data.recipe import RecipeError, load_recipe

    _log_level()
    try:
        recipe = load_recipe(recipe_path, out=out, catalog=catalog)
        check_adapters(recipe)
    except RecipeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        return recipe, Catalog(recipe.catalog_path)
    except (OSError, duckdb.Error) as exc:  # a folder in its place, no permission, another build holds its lock
        typer.echo(f"error: cannot open the catalog {recipe.catalog_path}: {exc}", err=True)
        raise typer.Exit(1) from None


def _run(
    recipe_path: Path,
    out: Path | None,
    catalog_path: Path | None,
    stage: Callable[[Recipe, Catalog, BuildReport], None],
) -> None:
    from retinal_reason_data.pipeline import BuildReport
    from retinal_reason_data.recipe import RecipeError
    from retinal_reason_data.review.verdicts import AnnotationError
    from retinal_reason_data.stats import remember_export_folder
    from retinal_reason_data.teacher.synthesize import SynthesisStopped

    recipe, catalog = _open(recipe_path, out, catalog_path)
    started = time.perf_counter()
    report = BuildReport()
    try:
        stage(recipe, catalog, report)
        if report.manifest:
            remember_export_folder(catalog, recipe.export.out)
    except RecipeError as exc:  # e.g. a source's `options` that its adapter cannot use
        typer.echo(f"error: {recipe_path}: {exc}", err=True)
        raise typer.Exit(2) from None
    except AnnotationError as exc:  # a verdict file with a bad line: the build stops rather than ignore it
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except SynthesisStopped as exc:  # Ctrl-C, SIGTERM, every endpoint failing: what arrived is committed
        report.synthesis = exc.report
        _summary(recipe, report, time.perf_counter() - started)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; everything committed so far is kept: rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
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
    from retinal_reason_data.pipeline import build

    _run(recipe, out, catalog, lambda r, c, rep: build(r, c, rep, force_export))


@app.command("ingest")
def ingest_command(recipe: RecipeArg, out: OutOpt = None, catalog: CatalogOpt = None) -> None:
    """Read the recipe's sources into the catalog (cases, images, quarantine)."""
    from retinal_reason_data.pipeline import ingest

    _run(recipe, out, catalog, ingest)


@app.command("synthesize")
def synthesize_command(
    recipe: RecipeArg,
    out: OutOpt = None,
    catalog: CatalogOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Estimate requests, tokens, cost and time; send nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: one JSON object on stdout.")] = False,
) -> None:
    """Build the questions and ask the teacher for every attempt not yet answered."""
    from retinal_reason_data.pipeline import BuildReport, build_items, run_synthesis

    if dry_run:
        from retinal_reason_data.teacher.estimate import estimate

        loaded, db = _open(recipe, out, catalog)
        try:
            build_items(loaded, db, BuildReport())
            figures = estimate(loaded, db)
        finally:
            db.close()
        typer.echo(json.dumps(figures.to_dict(), indent=2) if as_json else "\n".join(figures.lines()))
        return

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
    from retinal_reason_data.pipeline import run_export

    _run(recipe, out, catalog, lambda r, c, rep: run_export(r, c, rep, force=force))


@app.command("stats")
def stats_command(
    recipe: RecipeArg,
    out: OutOpt = None,
    catalog: CatalogOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Counts of everything the build holds; with --json, the machine-readable contract. Rows exported are read
    from the folder the last export of this catalog went to (or the recipe's `export.out`) unless --out says."""
    from retinal_reason_data.pipeline import recipe_ontology
    from retinal_reason_data.review.verdicts import AnnotationError
    from retinal_reason_data.stats import collect, export_folder

    loaded, db = _open(recipe, out, catalog)
    try:
        if out is None:
            loaded.export.out = export_folder(loaded, db)
        stats = collect(loaded, db, recipe_ontology(loaded))
    except AnnotationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
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
        "exported_formats",
        "review",
    ):
        typer.echo(f"{key}: {json.dumps(stats[key], sort_keys=True)}")


@app.command("extract")
def extract_command(
    recipe: RecipeArg,
    out: OutOpt = None,
    catalog: CatalogOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Read at most this many case reports.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Ask the teacher to read each case report again (age, sex, complaint, history, examination, diagnosis)
    and flag where its reading and the rule-based one disagree (table `extractions` of the catalog)."""
    from retinal_reason_data.pipeline import recipe_ontology
    from retinal_reason_data.teacher.extraction import run_extraction

    loaded, db = _open(recipe, out, catalog)
    try:
        result = run_extraction(loaded, db, recipe_ontology(loaded), limit=limit)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        db.close()
    figures = result.to_dict()
    if as_json:
        typer.echo(json.dumps(figures, indent=2, sort_keys=True))
        return
    for key, value in figures.items():
        typer.echo(f"{key}: {json.dumps(value, sort_keys=True)}")


@app.command("report")
def report_command(
    recipe: RecipeArg,
    out: OutOpt = None,
    catalog: CatalogOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of its path.")] = False,
) -> None:
    """Curate (duplicates, filters, splits) and write the curation report beside the catalog: every drop
    reason with examples, label conflicts between duplicates, and the splits."""
    from retinal_reason_data.curation.report import report_paths
    from retinal_reason_data.curation.stage import curate

    loaded, db = _open(recipe, out, catalog)
    try:
        curate(loaded, db)
    finally:
        db.close()
    markdown, data = report_paths(loaded)
    typer.echo(data.read_text(encoding="utf-8") if as_json else f"{markdown}\n{data}")


@app.command("sources")
def sources_command(
    as_json: Annotated[bool, typer.Option("--json", help="JSON list instead of text.")] = False,
) -> None:
    """Every adapter, the layout it expects on disk and its licence note."""
    from retinal_reason_data.ingest.sources import ADAPTERS

    rows = [
        {"adapter": a.name, "title": a.title, "layout": a.layout, "licence": a.licence}
        for a in sorted(ADAPTERS.values(), key=lambda a: a.name)
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['adapter']}: {row['title']}\n  layout:  {row['layout']}\n  licence: {row['licence']}")


def _recipe(recipe_path: Path, out: Path | None = None, catalog: Path | None = None) -> Recipe:
    from retinal_reason_data.recipe import RecipeError, load_recipe

    try:
        return load_recipe(recipe_path, out=out, catalog=catalog)
    except RecipeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("review")
def review_command(
    recipe: RecipeArg,
    host: Annotated[str, typer.Option(help="Address to bind; any but the loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8321,
    annotator: Annotated[
        str | None,
        typer.Option(
            help="Your name, given to the first browser that opens the page (verdicts go to "
            "<annotations>/<recipe>/<name>.jsonl); every other browser names its annotator on the page."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RRD_REVIEW_TOKEN",
            help="Token that admits a browser, at least 16 letters, digits, '.', '_', '~' or '-' "
            "(generated and printed when the address is not the loopback).",
        ),
    ] = None,
    out: OutOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Serve the review page over the current build: accept, reject or edit each trace; every build honours
    the verdicts."""
    from retinal_reason_data.review.server import SetupError, serve
    from retinal_reason_data.review.snapshot import SnapshotError
    from retinal_reason_data.review.verdicts import AnnotationError

    loaded = _recipe(recipe, out, catalog)
    try:
        serve(loaded, typer.echo, host=host, port=port, annotator=annotator, token=token)
    except (SnapshotError, AnnotationError, SetupError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


annotations_app = typer.Typer(no_args_is_help=True, help="Reviewers' verdicts: Label Studio export and import.")
app.add_typer(annotations_app, name="annotations")


@annotations_app.command("export-labelstudio")
def export_labelstudio_command(
    recipe: RecipeArg,
    tasks: Annotated[Path, typer.Option(help="Task list to write; the labelling config goes beside it.")] = Path(
        "labelstudio-tasks.json"
    ),
    images: Annotated[
        str,
        typer.Option(
            help="serve: the tasks link to `rrd annotations serve-images` on this machine; embed: the tasks carry "
            "the images as data URLs (for a Label Studio on another machine)."
        ),
    ] = "serve",
    image_url: Annotated[str, typer.Option(help="Where serve-images answers (a loopback address).")] = (
        "http://127.0.0.1:8765"
    ),
    max_image_bytes: Annotated[
        int, typer.Option(help="embed: larger images are sent as a smaller JPEG of at most this size.")
    ] = 1_500_000,
    queue: Annotated[str, typer.Option(help="all, unreviewed, rejected or disagreements.")] = "all",
    annotator: Annotated[str, typer.Option(help="Whose verdicts 'unreviewed' counts.")] = "",
    sample: Annotated[int | None, typer.Option(help="A batch of N traces stratified by source and task.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the batch.")] = 0,
    source: Annotated[str, typer.Option(help="Only this source.")] = "",
    modality: Annotated[str, typer.Option(help="Only this modality.")] = "",
    task: Annotated[str, typer.Option(help="Only this task (basic, complex).")] = "",
    question_type: Annotated[str, typer.Option(help="Only this question type.")] = "",
    catalog: CatalogOpt = None,
) -> None:
    """Write the build's traces as Label Studio tasks (JSON) with a matching labelling config, written whole or
    not at all."""
    from retinal_reason_data.review.image_server import manifest_path
    from retinal_reason_data.review.labelstudio import export_tasks
    from retinal_reason_data.review.snapshot import SnapshotError
    from retinal_reason_data.review.verdicts import AnnotationError

    loaded = _recipe(recipe, catalog=catalog)
    filters = {"source": source, "modality": modality, "task": task, "question_type": question_type}
    try:
        report = export_tasks(
            loaded,
            tasks,
            images=images,
            image_url=image_url,
            max_image_bytes=max_image_bytes,
            filters=filters,
            sample=(sample, seed) if sample else None,
            queue=queue,
            annotator=annotator,
        )
    except (SnapshotError, AnnotationError, OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{report.tasks} tasks ({report.images} images, up to {report.image_slots} a task) -> {tasks}")
    typer.echo(f"labelling config -> {tasks.with_suffix('.config.xml')}")
    if images == "serve":
        typer.echo(f"image list -> {manifest_path(tasks)}; show them with: rrd annotations serve-images {tasks}")
    for path in report.reduced:
        typer.echo(f"  reduced to fit --max-image-bytes: {path}")


@annotations_app.command("serve-images")
def serve_images_command(
    tasks: Annotated[Path, typer.Argument(help="The task file export-labelstudio wrote.")],
    origin: Annotated[
        list[str] | None,
        typer.Option(help="Label Studio's address, allowed to read the images (repeat for several)."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the one the tasks name).")] = None,
) -> None:
    """Serve exactly the images of a Label Studio task file on this machine (loopback), for Label Studio's page."""
    from retinal_reason_data.review.image_server import DEFAULT_ORIGINS, ImageServeError, serve_images

    try:
        serve_images(tasks, typer.echo, port=port, origins=origin or DEFAULT_ORIGINS)
    except (ImageServeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@annotations_app.command("import-labelstudio")
def import_labelstudio_command(
    recipe: RecipeArg,
    export: Annotated[Path, typer.Argument(help="Label Studio's export of the project, JSON or JSON_MIN.")],
    annotator: Annotated[
        str | None, typer.Option(help="Name every verdict after this annotator (default: Label Studio's user).")
    ] = None,
    server: Annotated[
        str, typer.Option(help="Prefix of annotators the export names by user id only (<server>-<id>).")
    ] = "labelstudio",
    catalog: CatalogOpt = None,
) -> None:
    """Append the verdicts of a Label Studio export to annotations/ (importing twice adds nothing). Exits 1 when
    some annotations could not be used (listed), 2 when the file cannot be read."""
    from retinal_reason_data.review.labelstudio_import import import_labelstudio
    from retinal_reason_data.review.verdicts import AnnotationError

    loaded = _recipe(recipe, catalog=catalog)
    try:
        report = import_labelstudio(loaded, export, annotator, server)
    except AnnotationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{report.read} annotations: {report.added} verdicts added, {report.already} already there, "
        f"{report.cancelled} skipped in Label Studio, {len(report.no_decision)} without a decision, "
        f"{len(report.unused)} not usable"
    )
    for name, who in sorted(report.annotators.items()):
        typer.echo(f"  annotator {name}: {who}")
    for line in report.no_decision:
        typer.echo(f"  no decision: {line}")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    for unused in report.unused:
        typer.echo(f"  not imported: {unused.line()}")
    if report.unused:
        typer.echo("fix these in Label Studio, export again and import again (what was added stays)", err=True)
        raise typer.Exit(1)


@app.command("schemas")
def schemas_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the JSON Schema files.")] = Path("schemas"),
) -> None:
    """Write the JSON Schema of every public model (the `schemas/` folder is generated by this)."""
    from retinal_reason_data.schema_files import write_schemas

    for path in write_schemas(out):
        typer.echo(str(path))


@app.command("push")
def push_command(
    recipe: RecipeArg,
    version: Annotated[str, typer.Option("--version", help="Version X.Y.Z; the commit is tagged vX.Y.Z.")],
    public: Annotated[
        bool | None,
        typer.Option("--public/--private", help="Visibility of a new repository (default: the recipe's hub.private)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and show the plan; change nothing.")] = False,
    out: OutOpt = None,
) -> None:
    """Push the export to the Hub as version X.Y.Z: one commit with a changelog entry, tagged vX.Y.Z."""
    from huggingface_hub.errors import HfHubHTTPError

    from retinal_reason_data.recipe import RecipeError, load_recipe
    from retinal_reason_data.release.diff import ReleaseError
    from retinal_reason_data.release.hub import push

    try:
        loaded = load_recipe(recipe, out=out)
        push(loaded, version, private=None if public is None else not public, dry_run=dry_run, echo=typer.echo)
    except RecipeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (ReleaseError, HfHubHTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: run the same push again; what was uploaded is kept", err=True)
        raise typer.Exit(130) from None


@app.command("diff")
def diff_command(
    old: Annotated[str, typer.Argument(help="An export folder, REPO@TAG, or a tag of --repo.")],
    new: Annotated[str, typer.Argument(help="An export folder, REPO@TAG, or a tag of --repo.")],
    repo: Annotated[str | None, typer.Option("--repo", help="Dataset repository of bare tags.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Ids listed per kind of change.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="The complete diff as one JSON object.")] = False,
) -> None:
    """Compare two releases by sample id: rows per config and split, ids added, removed and changed."""
    from huggingface_hub.errors import HfHubHTTPError

    from retinal_reason_data.release.diff import ReleaseError, diff_indexes, load_release_index

    try:
        (old_index, old_label), (new_index, new_label) = load_release_index(old, repo), load_release_index(new, repo)
    except (ReleaseError, HfHubHTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    diff = diff_indexes(old_index, new_index, old_label, new_label)
    if as_json:
        typer.echo(diff.model_dump_json(indent=2))
        return
    typer.echo(f"{old_label} -> {new_label}")
    for config, change in diff.configs.items():
        splits = sorted(set(change.old_rows) | set(change.new_rows))
        rows = ", ".join(f"{s} {change.old_rows.get(s, 0)} -> {change.new_rows.get(s, 0)}" for s in splits)
        typer.echo(f"  {config}: {rows}")
        for kind in ("added", "removed", "changed", "moved"):
            ids = getattr(change, kind)
            if ids:
                more = f" ... and {len(ids) - limit} more" if len(ids) > limit else ""
                typer.echo(f"    {kind} {len(ids)}: {' '.join(ids[:limit])}{more}")
    if diff.unchanged:
        typer.echo("  no sample added, removed or changed")


class _RunByDefault(TyperGroup):
    """`rrd eval RELEASE ...` is `rrd eval run RELEASE ...`: a first word that is no subcommand starts a run."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    help="Score an OpenAI-compatible model on a release (`rrd eval RELEASE --base-url URL --model NAME`), "
    "or compare two runs (`rrd eval compare RUN_A RUN_B`).",
)
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
def eval_run_command(
    release: Annotated[
        str, typer.Argument(help="An export folder, or a Hub dataset repository: owner/name or owner/name@REVISION.")
    ],
    base_url: Annotated[str, typer.Option("--base-url", help="OpenAI-compatible endpoint, e.g. http://host:8000/v1.")],
    model: Annotated[str, typer.Option("--model", help="The model name the endpoint serves.")],
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Variable holding the API key (default OPENAI_API_KEY when set, else no key; '' none)."),
    ] = None,
    config: Annotated[str, typer.Option(help="Config of the release to read.")] = "rl",
    split: Annotated[str, typer.Option(help="Split to evaluate.")] = "test",
    revision: Annotated[str | None, typer.Option(help="Hub revision (tag, branch, commit); default main.")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Run folder (default: rrd-eval/<model>_<release key>_<config>-<split>_k<K>-t<T>)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight.")] = 16,
    attempts: Annotated[int, typer.Option(min=1, max=16, help="Attempts per sample (pass@k, majority vote).")] = 1,
    temperature: Annotated[
        float | None, typer.Option(min=0.0, help="Default 0 for one attempt, 0.7 for several (0 is refused then).")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling; unset: the server's default.")] = None,
    max_tokens: Annotated[int, typer.Option(min=16, help="Completion tokens per reply.")] = 4096,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (attempt n sends seed + n - 1).")] = None,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds per call before it is retried.")] = 300.0,
    image_max_side: Annotated[
        int | None, typer.Option(min=64, help="Send larger images reduced to this many pixels (JPEG).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout (the summary).")] = False,
) -> None:
    """Evaluate a model on a release split: every sample sent as the release's prompt, every reply scored with the
    release's reward. Reruns send only what the run folder lacks; an interrupted run resumes."""
    from pydantic import ValidationError

    from retinal_reason_data.evaluation.evaluate import EvalSettings, EvalSettingsError, EvalStopped, evaluate
    from retinal_reason_data.evaluation.release_samples import ReleaseInputError

    _log_level()
    try:
        settings = EvalSettings(
            release=release,
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            config=config,
            split=split,
            revision=revision,
            out=out,
            concurrency=concurrency,
            attempts=attempts,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            timeout_s=timeout,
            image_max_side=image_max_side,
        )
        outcome = evaluate(settings, lambda line: typer.echo(line, err=True))
    except (EvalSettingsError, ValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ReleaseInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except EvalStopped as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        typer.echo(json.dumps({**outcome.summary, "out": str(outcome.folder)}, indent=2))
    else:
        for line in _eval_lines(outcome.summary):
            typer.echo(line)
        typer.echo(f"run folder: {outcome.folder} (responses.parquet, run.json, report.md)")
    _eval_problems(outcome)


def _ci(interval: object) -> str:
    if isinstance(interval, dict):
        interval = interval.get("accuracy")
    if isinstance(interval, list | tuple) and len(interval) == 2 and None not in interval:
        return f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return ""


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _eval_lines(summary: dict[str, Any]) -> list[str]:
    """The summary in words: overall figures, then each group with its count."""
    ci = summary.get("ci95", {})
    lines = [
        f"{summary['model']}: {summary['samples']} samples x {summary.get('attempts', 1)} attempts, "
        f"{summary.get('failed', 0)} failed calls",
        f"  accuracy     {_rate(summary['accuracy'])}{_ci(ci.get('accuracy'))}",
        f"  format rate  {_rate(summary['format_rate'])}{_ci(ci.get('format_rate'))}",
    ]
    if "pass_at_k" in summary:
        lines.append("  pass@k       " + ", ".join(f"@{k} {_rate(v)}" for k, v in summary["pass_at_k"].items()))
    if "majority_vote" in summary:
        vote = summary["majority_vote"]
        lines.append(f"  majority     {_rate(vote['accuracy'])}{_ci(vote.get('ci95'))}")
    for key in ("by_task", "by_modality", "by_question_type", "by_source"):
        lines.append(f"  {key.removeprefix('by_').replace('_', ' ')}:")
        for group, figures in summary.get(key, {}).items():
            figure = f"accuracy {_rate(figures['accuracy'])}{_ci(figures.get('ci95'))}"
            lines.append(f"    {group:<24} n={figures['count']:<6} {figure}")
    return lines


def _eval_problems(outcome: Any) -> None:
    """Calls that failed after their retries and samples left out (images that cannot be decoded): named, then
    exit 1."""
    for sample_id, reason in outcome.skipped:
        typer.echo(f"  not sent: {sample_id}: {reason}", err=True)
    if outcome.skipped:
        typer.echo(
            f"{len(outcome.skipped)} samples left out (listed above with the reason; the figures cover the others)",
            err=True,
        )
    for line in outcome.failed[:50]:
        typer.echo(f"  failed: {line}", err=True)
    if len(outcome.failed) > 50:
        typer.echo(f"  ... and {len(outcome.failed) - 50} more (rows with an error in responses.parquet)", err=True)
    if outcome.failed:
        typer.echo(
            f"{len(outcome.failed)} calls failed after their retries (scored 0, counted as failed); rerun the same "
            "command: it sends only those",
            err=True,
        )
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@eval_app.command("compare")
def eval_compare_command(
    run_a: Annotated[Path, typer.Argument(help="A run folder of `rrd eval`.")],
    run_b: Annotated[Path, typer.Argument(help="Another run folder, matched to the first by sample id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The comparison as one JSON object.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the comparison (markdown) here.")] = None,
) -> None:
    """Two runs side by side (two models on one release, or one model on two releases): paired differences with
    their 95 % intervals, McNemar's test, and the samples that changed."""
    from retinal_reason_data.evaluation.compare import compare_markdown, compare_runs

    try:
        result = compare_runs(run_a, run_b)
    except ValueError as exc:  # not a run folder, or two runs without a sample in common
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    markdown = compare_markdown(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown, encoding="utf-8")
    typer.echo(json.dumps(result, indent=2, default=str) if as_json else markdown)


Rows = list[tuple[str, str]]


def _summary(recipe: Recipe, report: BuildReport, seconds: float) -> None:
    """The table printed after a stage: one row per source, then items, teacher, curation, review, export, time."""
    rows = [
        *_ingest_rows(report),
        *_teacher_rows(report),
        *_reading_rows(report),
        *_review_rows(report),
        *_export_rows(recipe, report),
        ("time", f"{seconds:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    typer.echo(f"\n{recipe.name} {recipe.version}")
    for name, value in rows:
        typer.echo(f"  {name.ljust(width)}  {value}")


def _ingest_rows(report: BuildReport) -> Rows:
    rows: Rows = []
    for part in report.ingest:
        quarantined = sum(part.quarantined.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(part.quarantined.items()))
        rows.append(
            (
                f"source {part.source}",
                f"{part.cases} cases, {quarantined} quarantined"
                + (f" ({detail})" if detail else "")
                + f"; images {part.images_fingerprinted} new, {part.images_cached} cached"
                + (f"; {part.image_warnings} image warnings (logged)" if part.image_warnings else ""),
            )
        )
    if report.items:
        rows.append(("items", ", ".join(f"{k} {v}" for k, v in sorted(report.items.items()))))
    return rows


def _teacher_rows(report: BuildReport) -> Rows:
    rows: Rows = []
    if report.synthesis:
        s = report.synthesis
        failed = ", ".join(f"{k} {v}" for k, v in sorted(s.failed.items())) or "none"
        rows.append(
            ("teacher", f"{s.requests} requests, {s.cache_hits} cache hits, {s.verified} verified; failed: {failed}")
        )
        if s.calls:
            retried = ", ".join(f"{k} {v}" for k, v in sorted(s.failed_calls.items())) or "none"
            tokens = f"{s.prompt_tokens:,} prompt + {s.completion_tokens:,} completion tokens"
            rows.append(("teacher calls", f"{s.calls} HTTP calls (failed: {retried}); {tokens}; cost {s.cost:.4f}"))
    if report.curation:
        c = report.curation
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(c.dropped.items())) or "none"
        rows.append(("curation", f"{c.cases_dropped} duplicate cases; dropped items: {dropped}"))
    return rows


def _reading_rows(report: BuildReport) -> Rows:
    """The teacher's second reading of the case reports, and what the second reader held back."""
    rows: Rows = []
    if report.extraction is not None:
        e = report.extraction
        failed = ", ".join(f"{k} {v}" for k, v in sorted(e.errors.items())) or "none"
        rows.append(
            ("case readings", f"{e.cases} case reports: {e.asked} read now, {e.cached} cached; failed: {failed}")
        )
    if report.second_reader is not None and report.second_reader.enabled:
        r, n = report.second_reader, report.second_reader.cases
        hint = f"; {n['missing']} cases not read yet: run `rrd extract`" if n["missing"] else ""
        rows.append(
            (
                "second reader",
                f"teacher agrees on {n['agree']} cases, disagrees on {n['disagree']}, unusable {n['invalid']}{hint}; "
                f"{r.items_withheld} complex items withheld (review queue 'second_reader')",
            )
        )
    return rows


def _review_rows(report: BuildReport) -> Rows:
    rows: Rows = []
    if not (report.review and report.review.verdicts):
        return rows
    v = report.review
    rows.append(
        (
            "review",
            f"{v.traces} traces reviewed: {v.accepted} accepted, {v.edited} edited, {v.rejected} rejected"
            f" ({v.items_rejected} items); {v.left_out} left out of this export"
            + (f"; {v.stale} verdicts on traces no longer built" if v.stale else "")
            + (
                f"; {v.ignored_adjudications} adjudications ignored (given by an annotator who took part)"
                if v.ignored_adjudications
                else ""
            ),
        )
    )
    for edit in v.unusable_edits[:10]:
        trace = edit["generation_id"][:12]
        why = f"item {edit['item_id']}, trace {trace}, by {edit['annotator']}: {edit['why']}"
        rows.append(("  edit left out", why))
    if len(v.unusable_edits) > 10:
        rows.append(("  edit left out", f"and {len(v.unusable_edits) - 10} more (rrd stats --json: review)"))
    return rows


def _export_rows(recipe: Recipe, report: BuildReport) -> Rows:
    rows: Rows = []
    if not report.manifest:
        return rows
    m = report.manifest
    counts = "; ".join(
        f"{cfg} " + ", ".join(f"{s} {n}" for s, n in splits.items()) for cfg, splits in m["rows"].items()
    )
    state = "up to date, nothing written" if m.get("up_to_date") else "written"
    rows.append(("export", f"{counts} ({state}) -> {recipe.export.out}"))
    for name, written in m.get("formats", {}).items():
        if name != "hf":
            skipped = sum(written.get("skipped", {}).values())
            total = sum(written["rows"].values())
            rows.append((f"  {name}", f"{total} rows" + (f", {skipped} left out" if skipped else "")))
    return rows


if __name__ == "__main__":
    app()
