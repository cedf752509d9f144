"""Peak memory and time of the curate stage (quality, dedup, trace choice, splits, report) as a catalog grows.

The demo recipe is built once in a temporary folder (phantom collections, offline teacher). Catalogs of N
cases are then made from its catalog by copying its cases, items and teacher replies under new ids: every copy
is a new patient whose images get new SHA-256s and random field hashes (so that nothing is a duplicate of
anything), and every reply keeps its text, verdict and attempt under the request fingerprint of the copied
item. `curate` then runs in a fresh process that reports its own peak RSS (VmHWM: `ru_maxrss` of a child
counts its parent's RSS at the fork); "growth" is over the same process after imports and opening the catalog.

    .venv/bin/python benchmarks/curate_memory.py [--cases 10000 100000] [--stage curate|items]

`--stage items` times the items stage instead (`pipeline.build_items`: every case's questions, rewritten);
`--stage stats` (`stats.collect`, what `rrd stats` computes) and `--stage leakage` (`leakage.crossings`, the
release check) measure those on the catalog after a curate run in a process of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from retinal_reason_data.catalog import Catalog, item_row
from retinal_reason_data.recipe import load_recipe
from retinal_reason_data.schema import Case, Generation, Item
from retinal_reason_data.teacher.synthesize import blind_fingerprints, guided_fingerprints

REPO = Path(__file__).resolve().parents[1]
RRD = Path(sys.executable).parent / "rrd"

PROBE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from retinal_reason_data.catalog import Catalog, item_row
    from retinal_reason_data.curation.stage import curate
    from retinal_reason_data.recipe import load_recipe

    def status_mb(field):  # this process image's own figures: ru_maxrss would count the parent's RSS at fork
        line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
        return int(line.split()[1]) / 1024

    recipe = load_recipe(sys.argv[1], catalog=Path(sys.argv[2]))
    catalog = Catalog(recipe.catalog)
    before = status_mb("VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
    if sys.argv[3] == "items":
        from retinal_reason_data.pipeline import BuildReport, build_items

        build = BuildReport()
        build_items(recipe, catalog, build)
        items = sum(build.items.values())
    elif sys.argv[3] == "stats":
        from retinal_reason_data.pipeline import recipe_ontology
        from retinal_reason_data.stats import collect

        items = sum(collect(recipe, catalog, recipe_ontology(recipe))["items_by_task"].values())
    elif sys.argv[3] == "leakage":
        from retinal_reason_data.curation.leakage import crossings

        assert not crossings(catalog)
        items = catalog.count("assignments")
    else:
        items = sum(curate(recipe, catalog).splits.values())
    print(json.dumps({
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "peak_mb": status_mb("VmHWM"),
        "before_mb": before,
        "items": items,
    }))
    """
)


def build_demo(folder: Path) -> Path:
    """The demo recipe, built in `folder`; returns the recipe's path."""
    recipe = folder / "demo.yaml"
    shutil.copy(REPO / "recipes" / "demo.yaml", recipe)
    subprocess.run([str(RRD), "build", str(recipe)], check=True, capture_output=True)
    return recipe


def _new_sha(sha: str, copy: int) -> str:
    return hashlib.sha256(f"{sha}:{copy}".encode()).hexdigest()


def _copy_case(case: Case, copy: int, rng: np.random.Generator) -> Case:
    """The case as a new patient with new image hashes (`_new_sha`) and random field hashes."""
    images = [
        image.model_copy(
            update={
                "sha256": _new_sha(image.sha256, copy),
                "near_hash": rng.bytes(32).hex(),
                "detail_hash": rng.bytes(32).hex(),
                "phash": rng.bytes(32).hex(),
            }
        )
        for image in case.images
    ]
    update = {"case_id": f"{case.case_id}~{copy}", "patient_id": f"{case.patient_id}~{copy}", "images": images}
    return case.model_copy(update=update)


def scale_catalog(recipe_path: Path, target: Path, cases_wanted: int) -> int:
    """Write a catalog of `cases_wanted` cases copied from the demo's; returns the number of cases."""
    recipe = load_recipe(recipe_path)
    source = Catalog(recipe.catalog)
    cases = list(source.iter_cases())
    items_by_case: dict[str, list[Item]] = defaultdict(list)
    for item in source.iter_items():
        items_by_case[item.case_id].append(item)
    rows = source.query("SELECT fingerprint, data FROM generations")
    replies = {fingerprint: Generation.model_validate_json(data) for fingerprint, data in rows}
    source.close()
    rng = np.random.default_rng(0)
    copies = -(-cases_wanted // len(cases))
    plan = [(copy, case) for copy in range(copies) for case in cases][:cases_wanted]
    by_source: dict[str, list[tuple[int, Case]]] = defaultdict(list)
    for copy, case in plan:
        by_source[case.source].append((copy, case))
    catalog = Catalog(target)
    for name, planned in by_source.items():  # cases first: a source's writer holds DuckDB to a small memory limit
        with catalog.source_writer(name) as writer:
            for copy, case in planned:
                writer.add_case(_copy_case(case, copy, rng))
    for start in range(0, len(plan), 1000):  # then items and replies, under the same ids and image hashes
        new_items, new_replies = [], []
        for copy, case in plan[start : start + 1000]:
            for item in items_by_case[case.case_id]:
                update = {
                    "item_id": f"{item.item_id}~{copy}",
                    "case_id": f"{case.case_id}~{copy}",
                    "image_shas": [_new_sha(sha, copy) for sha in item.image_shas],
                }
                new_item = item.model_copy(update=update)
                new_items.append(new_item)
                old = blind_fingerprints(recipe, item) + guided_fingerprints(recipe, item)
                new = blind_fingerprints(recipe, new_item) + guided_fingerprints(recipe, new_item)
                new_replies += [
                    replies[old_fp].model_copy(update={"fingerprint": new_fp, "item_id": new_item.item_id})
                    for old_fp, new_fp in zip(old, new, strict=True)
                    if old_fp in replies
                ]
        with catalog.transaction():
            catalog.insert("items", [item_row(i) for i in new_items])
        catalog.add_generations(new_replies)
    counts = {table: catalog.count(table) for table in ("cases", "items", "generations")}
    catalog.close()
    print(f"  catalog: {counts['cases']:,} cases, {counts['items']:,} items, {counts['generations']:,} replies")
    return counts["cases"]


def run_stage(recipe_path: Path, catalog_path: Path, stage: str) -> dict[str, object]:
    child = subprocess.run(
        [sys.executable, "-c", PROBE, str(recipe_path), str(catalog_path), stage],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument(
        "--stage",
        choices=["curate", "items", "stats", "leakage"],
        default="curate",
        help="items: rebuild the items; stats (`rrd stats`) and leakage (the release check): on the curated catalog",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        recipe_path = build_demo(Path(folder))
        print(f"| cases | items | {args.stage} s | CPU s | peak RSS MB | growth MB | load |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for wanted in args.cases:
            target = Path(folder) / f"scaled_{wanted}.duckdb"
            started = time.perf_counter()
            cases = scale_catalog(recipe_path, target, wanted)
            print(f"  (made in {time.perf_counter() - started:.0f} s)")
            if args.stage in ("stats", "leakage"):
                run_stage(recipe_path, target, "curate")  # in a process of its own: not measured
            load = os.getloadavg()[0]
            result = run_stage(recipe_path, target, args.stage)
            items = result["items"]
            print(
                f"| {cases:,} | {items:,} | {result['seconds']:.1f} | {result['cpu']:.1f} | {result['peak_mb']:.0f} "
                f"| {result['peak_mb'] - result['before_mb']:.0f} | {load:.1f} |"
            )
            target.unlink()


if __name__ == "__main__":
    main()
