"""Hand-made scored responses and run folders for the tests of `rrd eval`'s metrics, report and compare."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from retinal_reason_data.evaluation.metrics import summarise
from retinal_reason_data.evaluation.samples import ScoredResponse


def row(
    sample_id: str,
    attempt: int = 1,
    right: bool = True,
    *,
    task: str = "basic",
    modality: str = "CFP",
    question_type: str = "single_choice",
    source: str = "demo",
    extracted: str | None = "auto",
    error: str | None = None,
    well_formed: bool = True,
) -> ScoredResponse:
    """One scored response; the answer is B, a right reply reads 'B' and a wrong one 'C' unless told."""
    if extracted == "auto":
        extracted = None if error else ("B" if right else "C")
    accuracy = float(right and error is None)
    fmt = float(well_formed and error is None)
    return ScoredResponse(
        sample_id=sample_id,
        attempt=attempt,
        case_id=f"case-{sample_id}",
        source=source,
        task=task,
        question_type=question_type,
        modality=modality,
        answer="B",
        response=None if error else f"<think>t</think><answer>{extracted}</answer>",
        error=error,
        extracted=extracted,
        format=fmt,
        accuracy=accuracy,
        score=0.9 * accuracy + 0.1 * fmt,
        fingerprint=f"{sample_id}-{attempt}",
    )


def write_run(folder: Path, rows: list[ScoredResponse], model: str, release: str = "/exports/v1") -> Path:
    """A run folder as `rrd eval --out` lays it out: run.json and responses.parquet sorted by (sample, attempt)."""
    folder.mkdir(parents=True)
    ordered = sorted(rows, key=lambda r: (r.sample_id, r.attempt))
    pq.write_table(pa.Table.from_pylist([r.model_dump() for r in ordered]), folder / "responses.parquet")
    meta = {
        "model": model,
        "base_url": "http://127.0.0.1:9/v1",
        "release": {"path": release, "content_key": "abc123def4567890", "format": "rl"},
        "config": "rl",
        "split": "test",
        "attempts": max(r.attempt for r in rows),
        "params": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024, "seed": 0},
        "summary": {"model": model, **summarise(rows, resamples=200)},
    }
    (folder / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder
