"""Quality filters for teacher traces: well-formed tags, length bounds, repetition."""

from __future__ import annotations

from collections import Counter

from retinal_reason_data.recipe import FiltersSpec
from retinal_reason_data.verify import split_response


def trace_problem(response: str, spec: FiltersSpec) -> str | None:
    """The first reason this trace should not be exported, or None when it passes."""
    think, answer = split_response(response)
    if think is None or answer is None:
        return "malformed_tags"
    if len(think) < spec.min_think_chars:
        return "think_too_short"
    if len(think) > spec.max_think_chars:
        return "think_too_long"
    lines = [line.strip().lower() for line in think.splitlines() if line.strip()]
    if len(lines) >= 4:
        repeated = sum(count - 1 for count in Counter(lines).values())
        if repeated / len(lines) > spec.max_repeated_line_ratio:
            return "repetitive"
    return None
