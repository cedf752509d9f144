"""Statistics of the exported rows, counted as they stream past: what the card, its figures and the manifest
report. Bounded memory: counters keyed by value, not lists of rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

BREAKDOWN_FIELDS = ("source", "modality", "task", "question_type")
# upper edges (words) of the trace length histogram; the last bin is open
TRACE_BINS = (25, 50, 100, 150, 200, 300, 400, 600, 800, 1200, 1600)


class ReleaseSummary(BaseModel):
    """Rows per config and split, breakdowns, trace lengths (words of `think`), pass@k, teacher and prompts."""

    rows: dict[str, dict[str, int]] = Field(default_factory=dict)
    breakdown: dict[str, dict[str, dict[str, int]]] = Field(
        default_factory=dict, description="field -> value -> 'config/split' -> rows"
    )
    trace_words: dict[int, int] = Field(default_factory=dict, description="words of think -> sft rows")
    pass_at_k: dict[str, dict[str, int]] = Field(default_factory=dict, description="config -> value -> rows")
    teacher_models: dict[str, int] = Field(default_factory=dict)
    prompt_versions: dict[str, int] = Field(default_factory=dict)

    def add(self, config: str, split: str, row: dict[str, Any]) -> None:
        """Count one row."""
        splits = self.rows.setdefault(config, {})
        splits[split] = splits.get(split, 0) + 1
        for name in BREAKDOWN_FIELDS:
            cell = self.breakdown.setdefault(name, {}).setdefault(str(row[name]), {})
            cell[f"{config}/{split}"] = cell.get(f"{config}/{split}", 0) + 1
        value = row.get("pass_at_k")
        label = "none" if value is None else f"{value:.2f}"
        counts = self.pass_at_k.setdefault(config, {})
        counts[label] = counts.get(label, 0) + 1
        if config == "sft":
            words = len((row.get("think") or "").split())
            self.trace_words[words] = self.trace_words.get(words, 0) + 1
            _bump(self.teacher_models, row["teacher_model"])
            _bump(self.prompt_versions, row["prompt_version"])

    def totals(self, name: str, config: str | None = None) -> list[tuple[str, int]]:
        """(value, rows) of one breakdown field, over every split of `config` (or of every config)."""
        totals: Counter[str] = Counter()
        for value, cells in self.breakdown.get(name, {}).items():
            totals[value] += sum(n for key, n in cells.items() if config is None or key.startswith(f"{config}/"))
        return sorted(((value, n) for value, n in totals.items() if n), key=lambda pair: (-pair[1], pair[0]))

    def trace_percentiles(self, quantiles: tuple[float, ...] = (0.0, 0.1, 0.5, 0.9, 1.0)) -> dict[str, int]:
        """Exact percentiles of the trace length in words (empty when there are no traces)."""
        total = sum(self.trace_words.values())
        if not total:
            return {}
        ordered = sorted(self.trace_words.items())
        result = {}
        for quantile in quantiles:
            rank, seen = min(total - 1, int(quantile * (total - 1) + 0.5)), 0
            for words, count in ordered:
                seen += count
                if seen > rank:
                    result[_percentile_name(quantile)] = words
                    break
        return result

    def trace_histogram(self) -> list[tuple[str, int]]:
        """(bin label, sft rows) over TRACE_BINS, up to the last bin that holds a trace."""
        counts = [0] * (len(TRACE_BINS) + 1)
        for words, count in self.trace_words.items():
            counts[next((i for i, edge in enumerate(TRACE_BINS) if words < edge), len(TRACE_BINS))] += count
        lower = (0, *TRACE_BINS)
        labels = [f"{lo}-{hi - 1}" for lo, hi in zip(lower, TRACE_BINS, strict=False)] + [f"{TRACE_BINS[-1]}+"]
        last = max((i for i, count in enumerate(counts) if count), default=0)
        return list(zip(labels, counts, strict=True))[: last + 1]


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def _percentile_name(quantile: float) -> str:
    return {0.0: "min", 1.0: "max", 0.5: "median"}.get(quantile, f"p{round(quantile * 100)}")
