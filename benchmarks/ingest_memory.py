"""Peak memory and time of `rrd ingest` at 10k and 100k phantom cases (APTOS layout).

Run: `.venv/bin/python benchmarks/ingest_memory.py [--cases 10000 100000]`
Each case is its own path (hard links to 256 distinct phantom photographs), so every image is opened,
hashed and measured; the ingest runs in a fresh process that reports its own peak RSS and CPU time (DuckDB's
threads included; the pool's workers are separate processes whose memory does not grow with the collection).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from retinal_reason_data.phantoms.images import fundus_photo

DISTINCT = 256

PROBE = textwrap.dedent(
    """
    import json, resource, sys, time
    from retinal_reason_data.catalog import Catalog
    from retinal_reason_data.pipeline import BuildReport, ingest
    from retinal_reason_data.recipe import load_recipe
    recipe = load_recipe(sys.argv[1])
    catalog = Catalog(recipe.catalog_path)
    started = time.perf_counter()
    report = BuildReport()
    ingest(recipe, catalog, report)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM, this process image's own peak: ru_maxrss of a child counts its parent's RSS at the fork
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"cases": report.ingest[0].cases, "seconds": seconds, "peak_rss_mb": int(hwm.split()[1]) / 1024,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime}))
    """
)


def write_collection(root: Path, cases: int) -> None:
    images = root / "train_images"
    images.mkdir(parents=True)
    originals = []
    for index in range(DISTINCT):
        path = root / f"original_{index}.png"
        fundus_photo(index, "right", [f"dr.{['none', 'mild', 'moderate'][index % 3]}"], size=256).save(path)
        originals.append(path)
    lines = ["id_code,diagnosis"]
    for index in range(cases):
        id_code = f"{index:08x}"
        os.link(originals[index % DISTINCT], images / f"{id_code}.png")
        lines.append(f"{id_code},{index % 3}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    for cases in args.cases:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "aptos"
            write_collection(root, cases)
            recipe = Path(folder) / "recipe.yaml"
            recipe.write_text(f"name: memory\nsources: [{{adapter: aptos2019, root: {root}}}]\n")
            probe = subprocess.run([sys.executable, "-c", PROBE, str(recipe)], capture_output=True, text=True)
            if probe.returncode:
                raise SystemExit(probe.stderr[-3000:])
            result = json.loads(probe.stdout.strip().splitlines()[-1])
            print(
                f"{cases:>7} cases: ingested {result['cases']} in {result['seconds']:.0f} s "
                f"({result['cases'] / result['seconds']:.0f} cases/s), peak RSS {result['peak_rss_mb']:.0f} MB, "
                f"main process CPU {result['cpu_seconds']:.0f} s"
            )


if __name__ == "__main__":
    main()
