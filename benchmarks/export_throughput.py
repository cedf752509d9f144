"""Throughput and peak memory of the `hf` export writer against plain pyarrow, at 10k and 100k samples;
and of the formats derived from the `hf` shards.

Run: `.venv/bin/python benchmarks/export_throughput.py [--samples 10000 100000]`

Rows are synthetic `sft` rows with small phantom fundus photographs (JPEG, 160 px, about 6.5 KB): 64
phantoms times 64 noise patterns make 4096 distinct images (drawn once, shared by the runs through a pickle),
and a JPEG comment carrying the row id makes every row's bytes unique, so no writer compresses repeated
images for free. Every run is a fresh process that generates its rows as it writes them and reports its own
peak RSS; "growth" is over the same process after imports and loading the image pool.

Writers compared, on the same rows:
- `hf`: export.shards.write_split (datasets Image feature in the schema, shards of 256 MB, row groups of
  at most 16 MiB or 1024 rows, zstd, statistics of the short columns, sha256 of every shard), streaming;
- `pyarrow streamed`: one pq.ParquetWriter with the same schema, batches of 1024 rows (the same row groups
  for these rows) and zstd: the writer alone, without shards, statistics choice or checksums;
- `pyarrow one table`: pa.Table.from_pylist of every row, then pq.write_table (defaults): how a script
  usually writes a dataset; its memory grows with the rows.
`rows only` generates the rows and drops them: the cost every writer pays before writing.
MB/s is input bytes (images plus text) per second; load average is the 1-minute figure before each run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from retinal_reason_data.phantoms.images import fundus_photo

PROBE = textwrap.dedent(
    """
    import json, pickle, resource, shutil, sys, tempfile, time
    from pathlib import Path
    import pyarrow as pa, pyarrow.parquet as pq
    from retinal_reason_data.release.hf import FEATURES
    from retinal_reason_data.release.shards import ROW_GROUP_MAX_ROWS, write_split

    writer, samples = sys.argv[1], int(sys.argv[2])
    pool = pickle.loads(Path(sys.argv[3]).read_bytes())

    def unique(jpeg, index):
        comment = f"row {index:09d}".encode()
        return jpeg[:2] + b"\\xff\\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]

    def rows(count):
        for index in range(count):
            think = "Step 1: the disc is well defined. Step 2: there are scattered haemorrhages. " * 4
            yield {
                "id": f"{index:016x}",
                "images": [{"bytes": unique(pool[index % len(pool)], index), "path": f"{index:016x}.jpg"}],
                "case_id": f"bench:{index}", "source": "bench", "patient_id": f"p-{index:012x}", "task": "basic",
                "question_type": "single_choice", "modality": "CFP",
                "question": f"Which finding is present in this colour fundus photograph? ({index})",
                "options": ["Drusen", "Haemorrhages", "Normal fundus", "Cotton wool spots"], "answer": "B",
                "answer_aliases": [], "think": think,
                "response": f"<think>{think}</think><answer>B</answer>", "teacher_model": "bench",
                "prompt_version": "v1", "pass_at_k": 0.5, "captions": [], "title": None, "pmcid": None,
            }

    def size(row):
        return sum(len(v) for v in row.values() if isinstance(v, str)) + len(row["images"][0]["bytes"])

    def counted(source, totals):
        for row in source:
            totals[0] += size(row)
            yield row

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    folder = Path(tempfile.mkdtemp(prefix="rrd-bench-"))
    totals = [0]
    schema = FEATURES["sft"].arrow_schema
    started = time.perf_counter()
    if writer == "rows only":
        for _ in counted(rows(samples), totals):
            pass
    elif writer == "hf":
        write_split(folder / "data" / "sft", "train", FEATURES["sft"], counted(rows(samples), totals), 256 * 10**6)
    elif writer == "pyarrow streamed":
        with pq.ParquetWriter(folder / "train.parquet", schema, compression="zstd") as out:
            batch = []
            for row in counted(rows(samples), totals):
                batch.append(row)
                if len(batch) == ROW_GROUP_MAX_ROWS:
                    out.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch.clear()
            if batch:
                out.write_table(pa.Table.from_pylist(batch, schema=schema))
    elif writer == "pyarrow one table":
        pq.write_table(pa.Table.from_pylist(list(counted(rows(samples), totals))), folder / "train.parquet")
    elif writer.startswith("format "):
        # the formats read the hf shards back: write them first (not timed), then time the format alone
        from retinal_reason_data.release.formats import WRITERS
        from retinal_reason_data.recipe import Recipe
        write_split(folder / "data" / "sft", "train", FEATURES["sft"], counted(rows(samples), totals), 10**9)
        recipe = Recipe.model_validate({"name": "bench", "sources": [{"adapter": "aptos2019", "root": "."}]})
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        WRITERS[writer.removeprefix("format ")](folder, {"sft": {"train": samples}}, recipe)
    seconds = time.perf_counter() - started
    written = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if writer.startswith("format "):  # the format's own files, not the hf shards it read
        written -= sum(p.stat().st_size for p in (folder / "data").rglob("*") if p.is_file())
    shutil.rmtree(folder)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "input_mb": totals[0] / 1e6, "output_mb": written / 1e6,
                      "peak_rss_mb": peak, "growth_mb": peak - baseline}))
    """
)
WRITERS = ["rows only", "hf", "pyarrow streamed", "pyarrow one table"]
FORMATS = ["format sharegpt", "format mm-retinal-reason"]


def image_pool(path: Path) -> None:
    """4096 distinct small phantom photographs: 64 phantoms, each with 64 seeded noise patterns, as JPEG."""
    pool = []
    for index in range(64):
        pixels = np.asarray(fundus_photo(index, "right", ["dr.moderate"] if index % 2 else [], index, size=160))
        for variant in range(64):
            noise = np.random.default_rng(index * 64 + variant).integers(-6, 7, pixels.shape)
            buffer = io.BytesIO()
            Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
            pool.append(buffer.getvalue())
    path.write_bytes(pickle.dumps(pool))


def measure(writer: str, samples: int, pool: Path) -> dict[str, float]:
    load = os.getloadavg()[0]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, writer, str(samples), str(pool)], check=True, capture_output=True, text=True
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures | {"load": load}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--formats", action="store_true", help="Also time formats derived from the hf shards.")
    args = parser.parse_args()
    pool = Path(tempfile.mkdtemp(prefix="rrd-bench-pool-")) / "pool.pickle"
    image_pool(pool)
    print("| writer | samples | input MB | output MB | s | MB/s | peak RSS MB | growth MB | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for samples in args.samples:
        for writer in WRITERS + (FORMATS if args.formats else []):
            f = measure(writer, samples, pool)
            rate = f["input_mb"] / f["seconds"] if f["seconds"] else 0.0
            print(
                f"| {writer} | {samples:,} | {f['input_mb']:.0f} | {f['output_mb']:.0f} | {f['seconds']:.1f} | "
                f"{rate:.0f} | {f['peak_rss_mb']:.0f} | {f['growth_mb']:.0f} | {f['load']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
