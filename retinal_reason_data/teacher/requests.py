"""What the synthesis stage sends to a teacher and what it gets back (no client imports here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retinal_reason_data.recipe import TeacherSpec
from retinal_reason_data.schema import Item


@dataclass(frozen=True, slots=True)
class Request:
    fingerprint: str
    item: Item
    attempt: int
    messages: list[dict[str, Any]]
    guided: bool = False
    prompt_tokens_estimate: int = 0


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back for one request, after retries: text, or the class of the transport failure."""

    text: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    error: str | None
    finish_reason: str | None = None
    refusal: str | None = None
    endpoint: str | None = None
    tries: int = 1
    cost: float = 0.0


def generation_params(spec: TeacherSpec) -> dict[str, Any]:
    """The sampling parameters of the recipe (hashed into every fingerprint, sent with every request)."""
    params: dict[str, Any] = {"temperature": spec.temperature, "max_tokens": spec.max_tokens}
    if spec.top_p is not None:
        params["top_p"] = spec.top_p
    if spec.seed is not None:
        params["seed"] = spec.seed
    return params


def sent_params(spec: TeacherSpec, attempt: int) -> dict[str, Any]:
    """The parameters sent with one attempt: a recipe seed becomes seed + attempt - 1, so that the k
    attempts of an item are k samples and not one sample k times."""
    params = generation_params(spec)
    if spec.seed is not None:
        params["seed"] = spec.seed + attempt - 1
    return params
