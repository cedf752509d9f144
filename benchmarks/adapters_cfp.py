"""Streaming of the colour fundus adapters: cases per second and peak memory as label tables grow.

For each adapter a label table of N rows is generated in its real layout (EyePACS trainLabels.csv, ODIR-5K
data.xlsx with N/2 patient rows, RFMiD's 47-column table, DDR's train.txt) beside N empty image files:
the adapter never opens an image (intake does), so empty files measure what it does itself: parse the
table, list the image folder once, resolve every name. Each run is a fresh process; peak RSS is reported
as growth over the process after imports. Intake, fingerprinting and the catalog are not timed.

    .venv/bin/python benchmarks/adapters_cfp.py [--sizes 10000 100000] [--adapters eyepacs odir5k rfmid ddr]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _touch_all(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


def make_eyepacs(root: Path, rows: int) -> None:
    names = [f"{10 + index // 2}_{('left', 'right')[index % 2]}" for index in range(rows)]
    with (root / "trainLabels.csv").open("w", newline="") as handle:
        handle.write("image,level\r\n")
        handle.writelines(f"{name},{index % 5}\r\n" for index, name in enumerate(names))
    _touch_all(root / "train", [f"{name}.jpeg" for name in names])


def make_odir5k(root: Path, rows: int) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Sheet1")
    header = ["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus"]
    sheet.append([*header, "Left-Diagnostic Keywords", "Right-Diagnostic Keywords"])
    keywords = ("normal fundus", "moderate non proliferative retinopathy，hypertensive retinopathy", "cataract")
    files = []
    for patient in range(rows // 2):
        left, right = f"{patient}_left.jpg", f"{patient}_right.jpg"
        files += [left, right]
        sheet.append([patient, 60, "Female", left, right, keywords[patient % 3], keywords[(patient + 1) % 3]])
    folder = root / "ODIR-5K"
    folder.mkdir(parents=True)
    workbook.save(folder / "data.xlsx")
    _touch_all(folder / "Training Images", files)


def make_rfmid(root: Path, rows: int) -> None:
    from retinal_reason_data.ingest.sources.rfmid import COLUMNS

    names = list(COLUMNS)
    table = root / "2. Groundtruths" / "a. RFMiD_Training_Labels.csv"
    table.parent.mkdir(parents=True)
    with table.open("w", newline="") as handle:
        handle.write(",".join(["ID", "Disease_Risk", *names]) + "\r\n")
        for index in range(rows):
            cells = ["0"] * len(names)
            if index % 3:
                cells[index % len(names)] = "1"
            handle.write(",".join([str(index + 1), str(int(index % 3 > 0)), *cells]) + "\r\n")
    _touch_all(root / "1. Original Images" / "a. Training Set", [f"{index + 1}.png" for index in range(rows)])


def make_ddr(root: Path, rows: int) -> None:
    base = root / "DR_grading"
    names = [f"{index % 100:03d}-{index:06d}-000.jpg" for index in range(rows)]
    base.mkdir(parents=True)
    (base / "train.txt").write_text("".join(f"{name} {index % 6}\n" for index, name in enumerate(names)))
    _touch_all(base / "train", names)


MAKERS = {"eyepacs": make_eyepacs, "odir5k": make_odir5k, "rfmid": make_rfmid, "ddr": make_ddr}


def child(adapter_name: str, root: str) -> None:
    """Read one generated collection and print the figures as JSON (runs in its own process)."""
    from retinal_reason_data.ingest.sources import ADAPTERS
    from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions

    adapter = ADAPTERS[adapter_name]
    options = SourceOptions(work_dir=Path(root) / "_work")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    cases = refused = 0
    for record in adapter.read(Path(root), adapter_name, options):
        if isinstance(record, RawCase):
            cases += 1
        else:
            refused += 1
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps({"cases": cases, "refused": refused, "seconds": seconds, "rss_growth_mb": (peak - baseline) / 1024})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--adapters", nargs="+", default=list(MAKERS), choices=list(MAKERS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print("| adapter | label rows | cases | read s | cases/s | peak RSS growth MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.adapters:
        for size in args.sizes:
            root = Path(tempfile.mkdtemp(prefix=f"rrd-bench-{name}-"))
            try:
                MAKERS[name](root, size)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", name, str(root)], check=True, capture_output=True, text=True
                ).stdout
                figures = json.loads(out.strip().splitlines()[-1])
                rate = figures["cases"] / figures["seconds"]
                print(
                    f"| {name} | {size:,} | {figures['cases']:,} | {figures['seconds']:.2f} | {rate:,.0f} "
                    f"| {figures['rss_growth_mb']:.1f} |",
                    flush=True,
                )
            finally:
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
