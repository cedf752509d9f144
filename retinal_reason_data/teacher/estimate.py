"""`rrd synthesize RECIPE --dry-run`: requests, tokens, cost and time before anything is spent, and the
endpoints as they will be used (each with the name of the variable its key is read from, never the key)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.catalog.teacher import completion_history, guided_answered, mean_latency
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.teacher.backends import backend_of
from retinal_reason_data.teacher.images import image_token_estimate
from retinal_reason_data.teacher.prompts import SYSTEM_PROMPT, user_text
from retinal_reason_data.teacher.synthesize import SynthesisReport, pending_attempts, teacher_identity

MIN_HISTORY = 20


@dataclass
class Estimate:
    items: int
    requests: int
    answered: int
    guided_at_most: int
    prompt_tokens: int
    completion_tokens: int
    completion_tokens_at_most: int
    completion_basis: str
    cost: float | None
    cost_at_most: float | None
    price_note: str
    seconds_at_least: float | None
    time_basis: str
    endpoints: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def lines(self) -> list[str]:
        per = self.prompt_tokens // self.requests if self.requests else 0
        cost = (
            f"~{self.cost:,.2f} (at most {self.cost_at_most:,.2f}) {self.price_note}"
            if self.cost is not None
            else self.price_note
        )
        time = (
            f"at least {_duration(self.seconds_at_least)} ({self.time_basis})"
            if self.seconds_at_least
            else self.time_basis
        )
        guided = f"; guided: up to {self.guided_at_most:,} more" if self.guided_at_most else ""
        return [
            "dry run: nothing is sent",
            f"  items              {self.items:,}",
            f"  requests           {self.requests:,} to send, {self.answered:,} answered already{guided}",
            f"  prompt tokens      ~{self.prompt_tokens:,} (~{per:,} per request)",
            f"  completion tokens  ~{self.completion_tokens:,} ({self.completion_basis}), "
            f"at most {self.completion_tokens_at_most:,}",
            f"  cost               {cost}",
            f"  time               {time}",
            *(_endpoint_line(endpoint) for endpoint in self.endpoints),
        ]


def _endpoint_line(endpoint: dict[str, object]) -> str:
    if endpoint["api_key_env"]:
        key = f"key from ${endpoint['api_key_env']}" + (
            "" if endpoint["key_set"] else " (NOT SET: set it before sending)"
        )
    else:
        key = "no key"
    limits = ", ".join(
        f"{name} {endpoint[name]:,}" for name in ("concurrency", "rpm", "tpm") if endpoint[name] is not None
    )
    return (
        f"  endpoint {endpoint['name']}  {endpoint['base_url']}, model {endpoint['model']}, {key}, {limits}, "
        f"weight {endpoint['weight']:g}, timeout {endpoint['timeout_s']:g} s, {endpoint['max_retries']} retries"
    )


def endpoint_plan(recipe: Recipe) -> list[dict[str, object]]:
    """Each endpoint as the run will use it: what it sets and what it takes from the teacher, and the name of
    the environment variable its key comes from (whether it is set; the key itself is never read out)."""
    from retinal_reason_data.teacher.transports import endpoint_name, plain_base_url

    if not backend_of(recipe).is_model:
        return []
    return [
        {
            "name": endpoint_name(endpoint),
            "base_url": plain_base_url(endpoint),
            "model": endpoint.model,
            "api_key_env": endpoint.api_key_env,
            "key_set": bool(endpoint.api_key_env and os.environ.get(endpoint.api_key_env)),
            "concurrency": endpoint.concurrency,
            "rpm": endpoint.rpm,
            "tpm": endpoint.tpm,
            "weight": endpoint.weight,
            "timeout_s": endpoint.timeout_s,
            "max_retries": endpoint.max_retries,
        }
        for endpoint in recipe.teacher.endpoint_specs()
    ]


def estimate(recipe: Recipe, catalog: Catalog) -> Estimate:
    """What `rrd synthesize` would send for the blind attempts now (cache-aware), with token, cost and time
    estimates; guided requests are bounded from above (they depend on the blind replies)."""
    spec = recipe.teacher
    report = SynthesisReport()
    requests = prompt_tokens = 0
    for batch in pending_attempts(catalog, recipe, report):
        for attempt in batch:
            requests += 1
            images = sum(
                spec.image_tokens or image_token_estimate(spec.image_max_side, image.width, image.height)
                for image in attempt.case.images
            )
            prompt_tokens += (len(SYSTEM_PROMPT) + len(user_text(attempt.item))) // 4 + images
    items = catalog.count("items")
    model, _ = teacher_identity(recipe)
    mean, count = _history(catalog, model)
    if count >= MIN_HISTORY:
        per_reply, basis = int(mean), f"{int(mean):,} per reply, the mean of {count:,} stored replies"
    else:
        per_reply, basis = spec.max_tokens // 2, f"assumed {spec.max_tokens // 2:,} per reply, half of max_tokens"
    guided_at_most = max(0, items * spec.guided_attempts - _guided_answered(catalog)) if spec.guided_attempts else 0
    completion = requests * per_reply
    completion_max = (requests + guided_at_most) * spec.max_tokens
    price = spec.prices.get(spec.model)
    if not backend_of(recipe).is_model:
        cost = cost_max = 0.0
        note = "(the offline drafter is free)"
    elif price is None:
        cost = cost_max = None
        note = f"unknown: no price for {spec.model} in teacher.prices"
    else:
        cost = (prompt_tokens * price.prompt_per_mtok + completion * price.completion_per_mtok) / 1e6
        prompt_max = prompt_tokens * (requests + guided_at_most) / max(requests, 1)
        cost_max = (prompt_max * price.prompt_per_mtok + completion_max * price.completion_per_mtok) / 1e6
        note = f"at {price.prompt_per_mtok:g} / {price.completion_per_mtok:g} per 1M prompt / completion tokens"
    seconds, time_basis = _time_bound(recipe, catalog, requests, (prompt_tokens + completion) / max(requests, 1))
    return Estimate(
        items=items,
        requests=requests,
        answered=report.cache_hits,
        guided_at_most=guided_at_most,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion,
        completion_tokens_at_most=requests * spec.max_tokens,
        completion_basis=basis,
        cost=None if cost is None else round(cost, 4),
        cost_at_most=None if cost_max is None else round(cost_max, 4),
        price_note=note,
        seconds_at_least=seconds,
        time_basis=time_basis,
        endpoints=endpoint_plan(recipe),
    )


def _history(catalog: Catalog, model: str) -> tuple[float, int]:
    return completion_history(catalog, model)


def _guided_answered(catalog: Catalog) -> int:
    return guided_answered(catalog)


def _time_bound(recipe: Recipe, catalog: Catalog, requests: int, tokens_per_request: float) -> tuple[float | None, str]:
    """A lower bound on the time: the rpm/tpm limits, and concurrency over the latency seen so far."""
    spec = recipe.teacher
    if not backend_of(recipe).is_model or not requests:
        return None, "no requests to wait for"
    latency = mean_latency(catalog)
    rate = 0.0
    for endpoint in spec.endpoint_specs():
        bounds = []
        if endpoint.rpm:
            bounds.append(endpoint.rpm / 60)
        if endpoint.tpm:
            bounds.append(endpoint.tpm / 60 / max(tokens_per_request, 1.0))
        if latency:
            bounds.append((endpoint.concurrency or spec.concurrency) / float(latency))
        if not bounds:
            return None, "no rpm/tpm limits and no latency measured yet: as fast as the endpoints answer"
        rate += min(bounds)
    basis = "rpm/tpm limits" + (f" and {float(latency):.1f} s mean latency so far" if latency else "")
    return requests / rate, basis


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
