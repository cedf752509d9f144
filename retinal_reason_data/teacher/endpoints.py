"""The live state of one endpoint during a run: room, rate limits, cooldowns and health."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from retinal_reason_data.recipe import EndpointSpec, PriceSpec, TeacherSpec
from retinal_reason_data.teacher.limits import TokenBucket, backoff_s, exhausted_for_s
from retinal_reason_data.teacher.transports import Transport, endpoint_name


@dataclass
class Endpoint:
    """Concurrency with additive increase and multiplicative decrease on 429; a requests bucket and a
    tokens bucket when the recipe sets rpm/tpm; a pause after a 429 (Retry-After, or backoff with
    jitter) or when the rate-limit headers say the window is used up; a rest after
    `max_consecutive_failures` failures in a row, then one probe request; out for the run after an
    authentication or not-found error."""

    spec: EndpointSpec
    transport: Transport
    teacher: TeacherSpec
    now: float
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    name: str = ""
    price: PriceSpec | None = None
    window: float = 0.0
    inflight: int = 0
    sent: int = 0
    paused_until: float = 0.0
    rate_limited_in_row: int = 0
    failures_in_row: int = 0
    resting_until: float = 0.0
    rested_at: float = -math.inf
    rests: int = 0
    probing: bool = False
    dead: str | None = None
    last_failure: str | None = None
    requests: TokenBucket | None = None
    tokens: TokenBucket | None = None

    def __post_init__(self) -> None:
        self.name = self.name or endpoint_name(self.spec)
        self.window = float(self.concurrency)
        self.requests = TokenBucket(self.spec.rpm, self.now) if self.spec.rpm else None
        self.tokens = TokenBucket(self.spec.tpm, self.now) if self.spec.tpm else None
        served = self.spec.model or self.teacher.model
        self.price = self.teacher.prices.get(served) or self.teacher.prices.get(self.teacher.model)

    @property
    def concurrency(self) -> int:
        return int(self.spec.concurrency or self.teacher.concurrency)

    @property
    def room(self) -> int:
        """Requests this endpoint may have in flight now."""
        if self.probing:
            return 1
        return max(1, int(self.window))

    def out_for_run(self) -> bool:
        """Dead, or resting again after a probe failed: the run cannot count on it any more."""
        return self.dead is not None or (self.resting_until > 0 and self.rests >= 2)

    def wait_s(self, tokens: float, now: float) -> float | None:
        """Seconds until this endpoint can take a request of `tokens` (0: now; inf: when one in flight
        finishes); None when it is dead."""
        if self.dead is not None:
            return None
        if self.resting_until > now:
            return self.resting_until - now
        if self.resting_until:
            self.resting_until, self.probing = 0.0, True
        if self.inflight >= self.room:
            return math.inf
        wait = max(0.0, self.paused_until - now)
        if self.requests is not None:
            wait = max(wait, self.requests.wait_s(1, now))
        if self.tokens is not None:
            wait = max(wait, self.tokens.wait_s(tokens, now))
        return wait

    def take(self, tokens: float, now: float) -> None:
        self.inflight += 1
        self.sent += 1
        if self.requests is not None:
            self.requests.take(1, now)
        if self.tokens is not None:
            self.tokens.take(tokens, now)

    def succeeded(self, estimated: float, used: float, headers: Mapping[str, str] | None, now: float) -> None:
        self.failures_in_row = self.rate_limited_in_row = self.rests = 0
        self.probing = False
        self.resting_until = 0.0
        self.window = min(float(self.concurrency), self.window + 0.25)
        if self.tokens is not None:
            self.tokens.settle(estimated, used, now)
        hold = exhausted_for_s(headers, estimated)
        if hold:
            self.paused_until = max(self.paused_until, now + hold)

    def rate_limited(self, retry_after: float | None, now: float) -> float:
        """Pause after a 429 (the server's Retry-After, else backoff with jitter); returns the pause end."""
        self.rate_limited_in_row += 1
        self.window = max(1.0, self.window / 2)
        pause = retry_after if retry_after is not None else self._backoff(self.rate_limited_in_row)
        self.paused_until = max(self.paused_until, now + pause)
        self.last_failure = "rate_limited"
        return self.paused_until

    def failed(self, kind: str, now: float, started: float) -> None:
        """A 5xx, timeout or dropped connection of a call sent at `started`; enough in a row (or a failed
        probe) rests the endpoint. Calls sent before the last rest began are already counted by it."""
        self.last_failure = kind
        if started < self.rested_at:
            return
        self.failures_in_row += 1
        if self.probing or self.failures_in_row >= self.teacher.max_consecutive_failures:
            self.rests += 1
            self.probing = False
            self.failures_in_row = 0
            self.rested_at = now
            self.resting_until = now + self.teacher.endpoint_rest_s * 2 ** (self.rests - 1)

    def kill(self, reason: str) -> None:
        self.dead = reason

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        if self.price is None:
            return 0.0
        return (prompt_tokens * self.price.prompt_per_mtok + completion_tokens * self.price.completion_per_mtok) / 1e6

    def _backoff(self, retry: int) -> float:
        return backoff_s(retry, self.teacher.backoff_s, self.teacher.backoff_max_s, self.rng)

    def describe(self) -> str:
        """One line for the message when the run stops."""
        if self.dead:
            return f"{self.name}: {self.dead}"
        return f"{self.name}: {self.last_failure or 'failing'} ({self.rests} rests)"
