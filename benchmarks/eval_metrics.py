"""Time of `rrd eval`'s numbers on large runs: `metrics.summarise`, `compare.compare_runs`, `report.write_report`.

Run: `.venv/bin/python benchmarks/eval_metrics.py [--samples 100000] [--resamples 2000] [--repeats 3]`

Hand-made scored responses (a share right that differs by modality, four sources, two tasks, answers 'B' or
'C', 1 % failed calls) for `--samples` samples with one attempt and with four; each figure is the best of
`--repeats` runs (CPU time of this process, `time.process_time`, so that the shared machine's other work does not
count). Rows are built before timing (building 100k pydantic rows is the runner's cost, not the summary's).
Also timed, for scale: the bootstrap alone as `metrics` draws it (a multinomial over the distinct per-sample values)
against drawing every resample's sample indices (chunked, the plain way), for the overall accuracy only.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from retinal_reason_data.evaluation.compare import compare_runs
from retinal_reason_data.evaluation.metrics import generator, resampled_means, summarise
from retinal_reason_data.evaluation.report import write_report
from retinal_reason_data.evaluation.samples import ScoredResponse

SHARE_RIGHT = {"CFP": 0.8, "OCT": 0.6, "FFA": 0.4}


def make_rows(samples: int, attempts: int, seed: int) -> list[ScoredResponse]:
    chance = random.Random(seed)
    rows = []
    for i in range(samples):
        modality = ("CFP", "OCT", "FFA")[i % 3]
        for attempt in range(1, attempts + 1):
            failed = chance.random() < 0.01
            right = not failed and chance.random() < SHARE_RIGHT[modality]
            rows.append(
                ScoredResponse.model_construct(
                    sample_id=f"s{i:07d}",
                    attempt=attempt,
                    case_id=f"c{i:07d}",
                    source=f"source{i % 4}",
                    task=("basic", "complex")[i % 2],
                    question_type="single_choice",
                    modality=modality,
                    answer="B",
                    response=None if failed else "<think>.</think><answer>x</answer>",
                    error="timeout" if failed else None,
                    extracted=None if failed else ("B" if right else "C"),
                    format=0.0 if failed else 1.0,
                    accuracy=float(right),
                    score=0.9 * right + 0.1 * (not failed),
                    prompt_tokens=0,
                    completion_tokens=0,
                    latency_s=0.0,
                    fingerprint=f"f{i}-{attempt}",
                )
            )
    return rows


def best_cpu(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        action()
        times.append(time.process_time() - started)
    return min(times)


def write_run(folder: Path, rows: list[ScoredResponse], model: str) -> Path:
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist([row.model_dump() for row in rows])
    pq.write_table(table, folder / "responses.parquet")
    (folder / "run.json").write_text(json.dumps({"model": model, "config": "rl", "split": "test"}), encoding="utf-8")
    return folder


def plain_bootstrap(values: np.ndarray, resamples: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    means = np.empty(resamples)
    step = max(1, 4_000_000 // len(values))
    for start in range(0, resamples, step):
        size = min(step, resamples - start)
        means[start : start + size] = values[rng.integers(0, len(values), size=(size, len(values)))].mean(axis=1)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, resamples, repeats = args.samples, args.resamples, args.repeats
    print(f"{n:,} samples, {resamples} resamples, best of {repeats} (CPU seconds of this process)")
    with tempfile.TemporaryDirectory() as scratch:
        for attempts in (1, 4):
            rows_a, rows_b = make_rows(n, attempts, 1), make_rows(n, attempts, 2)
            summary = summarise(rows_a, resamples=resamples)
            cost = best_cpu(lambda rows=rows_a: summarise(rows, resamples=resamples), repeats)
            accuracy = summary["accuracy"]
            print(f"K={attempts}: summarise {len(rows_a):,} responses: {cost:.2f} s (accuracy {accuracy:.4f})")
            run_a = write_run(Path(scratch) / f"a{attempts}", rows_a, "a")
            run_b = write_run(Path(scratch) / f"b{attempts}", rows_b, "b")
            cost = best_cpu(lambda a=run_a, b=run_b: compare_runs(a, b, resamples=resamples), repeats)
            print(f"K={attempts}: compare_runs, two folders of {n:,} samples: {cost:.2f} s")
            folder = Path(scratch) / f"report{attempts}"
            cost = best_cpu(lambda f=folder, s=summary, r=rows_a: write_report(f, {"model": "a"}, s, r), repeats)
            print(f"K={attempts}: write_report (report.md and charts): {cost:.2f} s")
        values = (np.random.default_rng(0).random(n) < 0.6).astype(np.float64)
        counted = best_cpu(lambda: resampled_means(values, generator(0, "accuracy"), resamples), repeats)
        plain = best_cpu(lambda: plain_bootstrap(values, resamples), 1)
        print(f"bootstrap of one accuracy: counted per value {counted * 1000:.1f} ms, plain index draws {plain:.2f} s")


if __name__ == "__main__":
    main()
