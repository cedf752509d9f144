"""What the synthesis stage sends to a teacher and what it gets back (no client imports here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retinal_reason_data.recipe import TeacherSpec
from retinal_reason_data.schema import Item


@dataclass(frozen=True)
class Request:
    fingerprint: str
    item: Item
    attempt: int
    messages: list[dict[str, Any]]


@dataclass(frozen=True)
class Reply:
    text: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    error: str | None


def generation_params(spec: TeacherSpec) -> dict[str, Any]:
    """The sampling parameters sent with every request (and hashed into its fingerprint)."""
    params: dict[str, Any] = {"temperature": spec.temperature, "max_tokens": spec.max_tokens}
    if spec.top_p is not None:
        params["top_p"] = spec.top_p
    if spec.seed is not None:
        params["seed"] = spec.seed
    return params
