"""The run folder of `rrd eval`: where it is by default, the scored rows (responses.parquet) and run.json.

Layout: `run.json` (model, base URL, release, config, split, attempts, sampling parameters, times, summary; never a
key), `responses.parquet` (one ScoredResponse per sample and attempt, sorted by sample id and attempt),
`journal.jsonl` (the replies by fingerprint: the cache and the resume), `report.md` and `charts/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from retinal_reason_data.evaluation.journal import Journal
from retinal_reason_data.evaluation.runner import Planned
from retinal_reason_data.evaluation.samples import RESPONSE_COLUMNS, ScoredResponse
from retinal_reason_data.evaluation.scorers import SCORERS

RUNS_FOLDER = "rrd-eval"
RUN_JSON = "run.json"
RESPONSES = "responses.parquet"


def default_out(
    model: str, release_key: str, config: str, split: str, attempts: int, temperature: float, named: dict[str, object]
) -> Path:
    """`rrd-eval/<model>_<release content key>_<config>-<split>_k<K>-t<T>[-...]` under the working directory: the
    same command finds the same folder (and its journal) again; another model, release, split or sampling another
    one. `named`: the other parameters given that change what is sent, by letter (m max tokens, p top-p, s seed,
    px image size limit)."""
    parts = [f"k{attempts}", f"t{temperature:g}"] + [f"{letter}{value}" for letter, value in named.items()]
    return Path(RUNS_FOLDER) / f"{slug(model)}_{release_key[:12]}_{slug(config)}-{slug(split)}_{'-'.join(parts)}"


def slug(text: str) -> str:
    """A file-name-safe form of a model or split name ('Qwen/Qwen2.5-VL-7B' -> 'Qwen-Qwen2.5-VL-7B')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def public_url(base_url: str) -> str:
    """The base URL as run.json records it: without user:password and without a query (where keys may sit)."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path.rstrip("/"), "", ""))


# --- the rows -------------------------------------------------------------------------------------------
def scored_rows(samples: Sequence[Planned], journal: Journal) -> list[ScoredResponse]:
    """One row per sample and attempt, sorted by (sample id, attempt): the reply in the journal scored with the
    sample's scorer, or a failed row (no response, the failure class, every score 0)."""
    rows = []
    for sample in samples:
        scorer = SCORERS.get(sample.scorer)
        if scorer is None:
            raise KeyError(f"sample {sample.sample_id}: unknown scorer {sample.scorer!r} (known: {', '.join(SCORERS)})")
        for attempt, fingerprint in enumerate(sample.fingerprints, 1):
            entry = journal.get(fingerprint) or {"error": "not_sent"}
            response = entry.get("response")
            scores = scorer(response, sample.ground_truth) if response is not None else None
            rows.append(
                ScoredResponse(
                    sample_id=sample.sample_id,
                    attempt=attempt,
                    case_id=sample.case_id,
                    source=sample.source,
                    task=sample.task,
                    question_type=sample.question_type,
                    modality=sample.modality,
                    answer=sample.answer,
                    response=response,
                    error=None if response is not None else entry.get("error") or "failed",
                    extracted=scores.extracted if scores else None,
                    format=scores.format if scores else 0.0,
                    accuracy=scores.accuracy if scores else 0.0,
                    score=scores.score if scores else 0.0,
                    prompt_tokens=entry.get("prompt_tokens") or 0,
                    completion_tokens=entry.get("completion_tokens") or 0,
                    latency_s=entry.get("latency_s") or 0.0,
                    fingerprint=fingerprint,
                )
            )
    rows.sort(key=lambda row: (row.sample_id, row.attempt))
    return rows


def failed_calls(rows: Sequence[ScoredResponse], journal: Journal) -> list[str]:
    """'<sample id> attempt <n>: <failure class> (<what the server said>)' for every row without a reply."""
    lines = []
    for row in rows:
        if row.response is None:
            detail = (journal.get(row.fingerprint) or {}).get("detail")
            lines.append(f"{row.sample_id} attempt {row.attempt}: {row.error}" + (f" ({detail})" if detail else ""))
    return lines


def response_schema() -> Any:
    import pyarrow as pa

    kinds = {str: pa.string(), int: pa.int64(), float: pa.float64()}
    fields = []
    for name in RESPONSE_COLUMNS:
        annotation = ScoredResponse.model_fields[name].annotation
        base = next((kind for kind in kinds if annotation is kind or kind in getattr(annotation, "__args__", ())), str)
        fields.append(pa.field(name, kinds[base]))
    return pa.schema(fields)


def write_responses(folder: Path, rows: Sequence[ScoredResponse]) -> Path:
    """responses.parquet: the rows, columns RESPONSE_COLUMNS (written to a temporary name, then renamed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = response_schema()
    table = pa.Table.from_pylist([row.model_dump() for row in rows], schema=schema)
    path = folder / RESPONSES
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(table, partial)
    partial.replace(path)
    return path


def read_responses(folder: Path) -> list[ScoredResponse]:
    """The rows of a run folder's responses.parquet."""
    import pyarrow.parquet as pq

    return [ScoredResponse(**row) for row in pq.read_table(folder / RESPONSES).to_pylist()]


def write_run_json(folder: Path, meta: dict[str, Any]) -> Path:
    path = folder / RUN_JSON
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(meta, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
    return path
