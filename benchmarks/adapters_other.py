"""Streaming of the generic and release adapters: cases per second and peak memory as collections grow.

Each measurement runs in a fresh process (peak RSS is per process) on generated inputs in a temporary
folder: a manifest CSV of N rows (ids distinct, images shared among 1,000 files), an image folder of N
files in 4 classes, and an MM-Retinal-Reason JSON array of N records with a 96 px JPEG each (decoded into
the work folder). Only the adapter's read is timed (intake, fingerprinting and the catalog are not).

    .venv/bin/python benchmarks/adapters_other.py [--sizes 10000 100000] [--release-sizes 2000 20000]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _jpeg(seed: int) -> bytes:
    from retinal_reason_data.phantoms.images import fundus_photo

    buffer = io.BytesIO()
    fundus_photo(seed, "right", [], size=96).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def make_manifest(root: Path, rows: int) -> dict[str, object]:
    images = root / "images"
    images.mkdir(parents=True)
    data = _jpeg(1)
    for index in range(1000):
        (images / f"{index:04d}.jpg").write_bytes(data)
    with (root / "manifest.csv").open("w") as handle:
        handle.write("id,path,labels,patient,eye\n")
        for index in range(rows):
            eye = "OD" if index % 2 else "OS"
            handle.write(f"r{index},images/{index % 1000:04d}.jpg,Glaucoma;cataract,P{index // 2},{eye}\n")
    return {
        "file": "manifest.csv",
        "id_column": "id",
        "image_column": "path",
        "label_columns": "labels",
        "label_separator": ";",
        "patient_column": "patient",
        "eye_column": "eye",
        "modality": "CFP",
    }


def make_folder(root: Path, files: int) -> dict[str, object]:
    data = _jpeg(2)
    for index in range(files):
        folder = root / ("glaucoma", "normal", "cataract", "myopia")[index % 4]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:06d}.jpg").write_bytes(data)
    return {"modality": "CFP"}


def make_release(root: Path, records: int) -> dict[str, object]:
    root.mkdir(parents=True)
    with (root / "basic_reasoning.json").open("w") as handle:
        handle.write("[")
        for index in range(records):
            image = base64.b64encode(_jpeg(index % 50) + index.to_bytes(4, "big")).decode()
            record = {
                "image": [image],
                "conversations": [
                    {"from": "human", "value": f"<image>\nQuestion {index} about this colour fundus photograph?"},
                    {"from": "gpt", "value": "<answer>Glaucoma</answer>"},
                ],
                "reason": "The cup is large. " * 20,
            }
            handle.write(("," if index else "") + json.dumps(record))
        handle.write("]")
    return {}


MAKERS = {"manifest": make_manifest, "image_folder": make_folder, "mm_retinal_reason": make_release}


def measure(adapter: str, size: int) -> dict[str, float]:
    """Generate the input in a child process, then read it through the adapter in this fresh process."""
    from retinal_reason_data.ingest.sources import ADAPTERS
    from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "collection"
        subprocess.run([sys.executable, __file__, "--make", adapter, str(size), folder], check=True)
        values = json.loads((Path(folder) / "options.json").read_text())
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        options = SourceOptions(work_dir=Path(folder) / "work", values=values)
        started = time.perf_counter()
        cases = sum(isinstance(r, RawCase) for r in ADAPTERS[adapter].read(root, adapter, options))
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        input_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
    return {
        "cases": cases,
        "seconds": seconds,
        "peak_rss_mb": peak / 1024,
        "before_mb": before / 1024,
        "input_mb": input_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--release-sizes", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--one", nargs=2, metavar=("ADAPTER", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=3, metavar=("ADAPTER", "SIZE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        adapter, size, folder = args.make[0], int(args.make[1]), Path(args.make[2])
        values = MAKERS[adapter](folder / "collection", size)
        (folder / "options.json").write_text(json.dumps(values))
        return
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    print("| adapter | cases | input | read time | cases/s | peak RSS (before reading) |")
    print("|---|---|---|---|---|---|")
    plan = [(a, s) for a in ("manifest", "image_folder") for s in args.sizes]
    plan += [("mm_retinal_reason", s) for s in args.release_sizes]
    for adapter, size in plan:
        out = subprocess.run(
            [sys.executable, __file__, "--one", adapter, str(size)], check=True, capture_output=True, text=True
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {adapter} | {int(r['cases']):,} | {r['input_mb']:.0f} MB | {r['seconds']:.2f} s "
            f"| {r['cases'] / r['seconds']:,.0f} | {r['peak_rss_mb']:.0f} MB ({r['before_mb']:.0f} MB) |"
        )


if __name__ == "__main__":
    main()
