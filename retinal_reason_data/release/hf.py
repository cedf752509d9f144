"""The export folder: the Hugging Face dataset (configs `sft` and `rl`, parquet shards streamed from the catalog),
then the other formats the recipe lists (derived from those shards), the sample index, figures, card and manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from retinal_reason_data import __version__
from retinal_reason_data.catalog import Catalog, dumps
from retinal_reason_data.catalog.release import has_split, iter_export_row_digests, iter_export_rows
from retinal_reason_data.curation.leakage import check_release
from retinal_reason_data.ingest.imaging import strip_metadata
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.release.card import render_card
from retinal_reason_data.release.figures import render_figures
from retinal_reason_data.release.formats import FOLDERS as FORMAT_FOLDERS
from retinal_reason_data.release.formats import card_format_configs, write_formats
from retinal_reason_data.release.index import SampleIndex
from retinal_reason_data.release.row_features import row_features
from retinal_reason_data.release.shards import file_entry, file_sha256, write_split
from retinal_reason_data.release.summary import ReleaseSummary
from retinal_reason_data.rewards import make_ground_truth
from retinal_reason_data.schema import Case, Generation, Item, RlRow, SftRow
from retinal_reason_data.teacher.verify import split_response
from retinal_reason_data.text import stable_hash

EXPORT_FORMAT = 2  # 2: other formats, figures, sample index, summary in the manifest
# the configs' columns, from the row models (schema.SftRow, schema.RlRow): `_row` must fill exactly these
FEATURES = {"sft": row_features(SftRow), "rl": row_features(RlRow)}
# config -> exported split -> catalog splits feeding it
CONFIG_SPLITS = {
    "sft": {"train": ("train",), "validation": ("validation",), "test": ("test",)},
    "rl": {"train": ("rl",), "test": ("test",)},
}


def config_splits(catalog: Catalog) -> dict[str, dict[str, tuple[str, ...]]]:
    """CONFIG_SPLITS, plus a `test_ood` split in both configs when the recipe holds sources out."""
    if not has_split(catalog, "test_ood"):
        return CONFIG_SPLITS
    return {config: {**splits, "test_ood": ("test_ood",)} for config, splits in CONFIG_SPLITS.items()}


def recipe_hash(recipe: Recipe) -> str:
    """Hash of what the recipe asks for, leaving out where files happen to live on this machine."""
    data = recipe.model_dump(
        mode="json", exclude={"catalog": True, "path": True, "export": {"out"}, "hub": True, "annotations": True}
    )
    for source in data["sources"]:
        source.pop("root", None)
    gate_model = recipe.filters.images.gate_model  # a file: its content counts, not where it lives
    data["filters"]["images"]["gate_model"] = file_sha256(gate_model) if gate_model else None
    return stable_hash(dumps(data), length=32)


def _plan(catalog: Catalog, config: str, catalog_splits: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    yield from iter_export_rows(catalog, catalog_splits, with_trace=config == "sft")


CARD_STATS = (
    "cases_by_source",
    "quarantined_by_reason",
    "items_by_task",
    "generations_total",
    "duplicates",
    "licences",
    "teacher",
    "review",
)


def content_key(recipe: Recipe, catalog: Catalog, stats: dict[str, Any]) -> str:
    """Identity of an export's content: recipe, tool version, the card's inputs, and every row's item, case,
    exported trace (a reviewed one included) and pass@k (an item's data holds its image hashes). Streams. Where
    files live on this machine (image paths, label files) is left out: a checkout elsewhere gives the same key."""
    digest = hashlib.sha256()
    card_inputs = dumps({name: stats.get(name) for name in CARD_STATS})
    for part in (str(EXPORT_FORMAT), __version__, recipe_hash(recipe), card_inputs):
        digest.update(part.encode() + b"\x1f")
    for config, splits in config_splits(catalog).items():
        for split, sources in splits.items():
            digest.update(f"{config}/{split}:".encode())
            for batch in iter_export_row_digests(catalog, sources):
                digest.update("".join("\x1f".join(row) + "\n" for row in batch).encode())
    return digest.hexdigest()[:32]


def _row(
    config: str,
    item: Item,
    case: Case,
    generation: Generation | None,
    pass_at_k: float | None,
    images: list[dict[str, Any]],
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": item.item_id,
        "images": images,
        "case_id": case.case_id,
        "source": case.source,
        "patient_id": case.patient_id,
        "task": str(item.task),
        "question_type": str(item.question_type),
        "modality": str(item.modality),
        "question": item.question,
        "options": item.options,
        "answer": item.answer.text,
        "answer_aliases": item.answer.aliases,
    }
    if config == "sft":
        assert generation is not None and generation.response is not None
        think, _ = split_response(generation.response)
        row |= {
            "think": think,
            "response": generation.response,
            "teacher_model": generation.model,
            "prompt_version": generation.prompt_version,
            "guided": generation.guided,
            "pass_at_k": pass_at_k,
        }
    else:
        row |= {
            "ground_truth": make_ground_truth(str(item.question_type), item.answer.text, item.answer.aliases),
            "pass_at_k": pass_at_k,
        }
    row |= {"captions": item.captions, "title": case.context.title, "pmcid": case.context.pmcid}
    return row | ({"review": generation.review if generation else None} if config == "sft" else {})


def _rows(catalog: Catalog, config: str, catalog_splits: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The rows of one config and split, in id order."""
    for item_json, case_json, generation_json, pass_at_k in _plan(catalog, config, catalog_splits):
        item, case = Item.model_validate_json(item_json), Case.model_validate_json(case_json)
        generation = Generation.model_validate_json(generation_json) if generation_json else None
        yield _row(config, item, case, generation, pass_at_k, _image_cells(case))


def _counted(
    rows: Iterator[dict[str, Any]], config: str, split: str, summary: ReleaseSummary, index: SampleIndex
) -> Iterator[dict[str, Any]]:
    """Pass `rows` through, counting each into the card's summary and the sample index."""
    for row in rows:
        summary.add(config, split, row)
        index.add(config, split, row)
        yield row


def _image_cells(case: Case) -> list[dict[str, Any]]:
    cells = []
    for image in case.images:
        data = strip_metadata(Path(image.path).read_bytes(), image.path)
        suffix = ".jpg" if data[:2] == b"\xff\xd8" else ".png"
        cells.append({"bytes": data, "path": f"{image.sha256[:16]}{suffix}"})
    return cells


def export_hf(recipe: Recipe, catalog: Catalog, stats: dict[str, Any], force: bool = False) -> dict[str, Any]:
    """Write (or confirm up to date) the dataset folder at `recipe.export.out`; return its manifest."""
    out = recipe.export.out
    check_release(catalog)  # refuses a release where a group, patient or duplicate cluster crosses splits
    key = content_key(recipe, catalog, stats)
    manifest_path = out / "manifest.json"
    if not force and manifest_path.is_file():
        existing = json.loads(manifest_path.read_text())
        if existing.get("content_key") == key and _files_intact(out, existing):
            existing["up_to_date"] = True
            return existing
    _clear(out)
    files: list[dict[str, Any]] = []
    summary = ReleaseSummary()
    index = SampleIndex(out)
    try:
        for config, splits in config_splits(catalog).items():
            for split, catalog_splits in splits.items():
                rows = _counted(_rows(catalog, config, catalog_splits), config, split, summary, index)
                progress = tqdm(rows, desc=f"export {config}/{split}", unit="row", leave=False, disable=None)
                written = write_split(
                    out / "data" / config, split, FEATURES[config], progress, recipe.export.max_shard_size
                )
                if not sum(f["rows"] for f in written):  # an empty split is left out: `datasets` refuses to load one
                    for f in written:
                        f["path"].unlink()
                    continue
                files += [{**f, "path": f["path"].relative_to(out).as_posix()} for f in written]
    finally:
        index.close()
    counts = {config: dict(splits) for config, splits in summary.rows.items()}
    files.append(file_entry(index.path, out, index.rows))
    formats = write_formats(out, counts, recipe)
    for report in formats.values():
        files += report.files
    files += [file_entry(path, out) for path in render_figures(out, summary).values()]
    card_counts = counts | {name: formats[name].rows for name in CARD_FORMAT_CONFIGS if name in formats}
    sizes = {config: sum(f["bytes"] for f in files if f["path"].startswith(_folder(config))) for config in card_counts}
    card = render_card(recipe, FEATURES | CARD_FORMAT_CONFIGS, card_counts, sizes, summary, stats, formats)
    (out / "README.md").write_text(card, encoding="utf-8")
    files.append(file_entry(out / "README.md", out))
    manifest = {
        "tool": "retinal-reason-data",
        "tool_version": __version__,
        "export_format": EXPORT_FORMAT,
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "recipe_hash": recipe_hash(recipe),
        "content_key": key,
        "rows": counts,
        "formats": {"hf": {"rows": counts, "skipped": {}}}
        | {name: {"rows": report.rows, "skipped": report.skipped} for name, report in formats.items()},
        "summary": summary.model_dump(mode="json"),
        "files": files,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    manifest["up_to_date"] = False
    return manifest


# what an export writes, and removes before it writes again
OWNED_FOLDERS = ("data", "figures", "index", *FORMAT_FOLDERS)
# formats that are also configs of the card (parquet with the Image feature): load_dataset(repo, "verl")
CARD_FORMAT_CONFIGS = card_format_configs()


def _folder(config: str) -> str:
    return f"data/{config}/" if config in FEATURES else f"{config}/"


def _clear(out: Path) -> None:
    """Remove what an earlier export wrote; the manifest goes first, so a killed export never leaves a
    manifest that describes other files."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    for name in OWNED_FOLDERS:
        if (out / name).exists():
            shutil.rmtree(out / name)
    (out / "README.md").unlink(missing_ok=True)


def _files_intact(out: Path, manifest: dict[str, Any]) -> bool:
    for entry in manifest.get("files", []):
        path = out / entry["path"]
        if not path.is_file() or path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
            return False
    return True
