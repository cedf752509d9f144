"""The catalog's queries for the teacher's outputs: replies (`generations`), the judge's verdicts
(`judgements`) and the teacher's readings of case reports (`extractions`)."""

from __future__ import annotations

from collections.abc import Iterator

from retinal_reason_data.catalog import Catalog


# --- generations ------------------------------------------------------------------------------------------
def completion_history(catalog: Catalog, model: str) -> tuple[float, int]:
    """(mean completion tokens, replies) of this model's answered requests."""
    row = catalog.query(
        "SELECT avg(completion_tokens), count(*) FROM generations WHERE error IS NULL AND completion_tokens > 0 "
        "AND json_extract_string(data, '$.model') = ?",
        [model],
    )[0]
    return float(row[0] or 0.0), int(row[1])


def guided_answered(catalog: Catalog) -> int:
    """How many answered requests were guided (shown the reference answer)."""
    sql = "SELECT count(*) FROM generations WHERE error IS NULL AND CAST(json_extract(data, '$.guided') AS BOOLEAN)"
    return int(catalog.query(sql)[0][0])


def mean_latency(catalog: Catalog) -> float | None:
    """The mean latency (s) of the answered requests that recorded one; None without any."""
    return catalog.query(
        "SELECT avg(CAST(json_extract(data, '$.latency_s') AS DOUBLE)) FROM generations "
        "WHERE error IS NULL AND CAST(json_extract(data, '$.latency_s') AS DOUBLE) > 0"
    )[0][0]


def unguided_answers(catalog: Catalog, model: str, max_attempt: int) -> int:
    """Answered, unguided attempts up to `max_attempt` by `model` on items still in the catalog."""
    row = catalog.query(
        "SELECT count(*) FROM generations g JOIN items i USING (item_id) WHERE g.error IS NULL AND g.attempt <= ? "
        "AND json_extract_string(g.data, '$.model') = ? "
        "AND NOT coalesce(CAST(json_extract(g.data, '$.guided') AS BOOLEAN), false)",
        [max_attempt, model],
    )
    return int(row[0][0])


def iter_unverified_answers(catalog: Catalog, question_type: str) -> Iterator[tuple[str, str]]:
    """(generation JSON, item JSON) of every answered, unverified attempt at items of this question type, by
    fingerprint, streamed."""
    yield from catalog.iter_rows(  # type: ignore[misc]
        "SELECT g.data, i.data FROM generations g JOIN items i USING (item_id) "
        "WHERE g.error IS NULL AND NOT g.verified AND i.question_type = ? ORDER BY g.fingerprint",
        [question_type],
        batch=1000,
    )


# --- judgements -------------------------------------------------------------------------------------------
def judgement_verdicts(catalog: Catalog) -> dict[str, str]:
    """judgement fingerprint -> verdict, for every stored judgement."""
    return dict(catalog.iter_rows("SELECT fingerprint, verdict FROM judgements"))


# --- extractions ------------------------------------------------------------------------------------------
def extraction_fingerprints(catalog: Catalog) -> set[str]:
    return {fingerprint for (fingerprint,) in catalog.iter_rows("SELECT fingerprint FROM extractions")}


def iter_extraction_outcomes(catalog: Catalog) -> Iterator[tuple[str | None, str | None]]:
    """(disagreements JSON, error) of every stored reading, streamed."""
    yield from catalog.iter_rows("SELECT disagreements, error FROM extractions")  # type: ignore[misc]


def stored_readings(catalog: Catalog) -> dict[str, tuple[str | None, str | None]]:
    """reading fingerprint -> (teacher JSON, error) of every stored reading."""
    rows = catalog.iter_rows("SELECT fingerprint, teacher, error FROM extractions")
    return {fingerprint: (teacher, error) for fingerprint, teacher, error in rows}
