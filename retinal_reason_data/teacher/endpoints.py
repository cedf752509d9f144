"""The live state of one endpoint during a run: room, rate limits, cooldowns and health."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from retinal_reason_data.recipe import EndpointSpec, PriceSpec, TeacherSpec
from retinal_reason_data.teacher.limits import TokenBucket, backoff_s, exhausted_for_s
from retinal_reason_data.teacher.outcomes import TransportError, in_words
from retinal_reason_data.teacher.transports import Transport, endpoint_name, plain_base_url


@dataclass
class Endpoint:
    """Concurrency with additive increase and multiplicative decrease on 429; a requests bucket and a
    tokens bucket when the recipe sets rpm/tpm; a pause after a 429 (Retry-After, or backoff with
    jitter) or when the rate-limit headers say the window is used up; a rest after
    `max_consecutive_failures` failures in a row, then one probe request; out for the run after an
    authentication or not-found error. `share` (requests sent / weight, lifted when the endpoint comes back
    from being away) is what the engine balances; `last_error` says the last failure in words."""

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
    last_error: str | None = None
    failures: int = 0
    share: float = 0.0
    heard_any: bool = False
    last_heard: float = -math.inf
    latency_s: float = 0.0  # moving mean of the latency of its replies
    requests: TokenBucket | None = None
    tokens: TokenBucket | None = None
    url: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or endpoint_name(self.spec)
        self.url = plain_base_url(self.spec)
        self.window = float(self.concurrency)
        self.requests = TokenBucket(self.spec.rpm, self.now) if self.spec.rpm else None
        self.tokens = TokenBucket(self.spec.tpm, self.now) if self.spec.tpm else None
        served = self.spec.model or self.teacher.model
        self.price = self.teacher.prices.get(served) or self.teacher.prices.get(self.teacher.model)

    @property
    def concurrency(self) -> int:
        return int(self.spec.concurrency or self.teacher.concurrency)

    @property
    def timeout_s(self) -> float:
        return float(self.spec.timeout_s or self.teacher.timeout_s)

    @property
    def max_retries(self) -> int:
        return self.teacher.max_retries if self.spec.max_retries is None else self.spec.max_retries

    def away(self, now: float) -> bool:
        """Not serving at its full share now: dead, resting, probing, paused, held by its rpm/tpm buckets, or
        with its concurrency cut after a 429. Other endpoints do not wait for it."""
        if self.dead is not None or self.probing or self.resting_until > now or self.paused_until > now:
            return True
        if self.window < self.concurrency:
            return True
        return (self.requests is not None and self.requests.wait_s(1, now) > 0) or (
            self.tokens is not None and self.tokens.wait_s(1, now) > 0
        )

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
        self.share += 1.0 / self.spec.weight
        if self.requests is not None:
            self.requests.take(1, now)
        if self.tokens is not None:
            self.tokens.take(tokens, now)

    def heard(self, now: float, latency_s: float | None = None) -> None:
        """Something came back from the server (a reply, with its latency, or an HTTP error)."""
        self.heard_any = True
        self.last_heard = now
        if latency_s is not None:
            self.latency_s = latency_s if not self.latency_s else self.latency_s * 0.9 + latency_s * 0.1

    def answering(self, now: float) -> bool:
        """It has answered, and recently enough for its latency: worth waiting for one of its slots. One
        that has gone quiet (a stalled server) is not waited for."""
        return self.heard_any and now <= self.answering_until()

    def answering_until(self) -> float:
        return self.last_heard + 2 * self.latency_s + 1.0

    def note(self, failure: TransportError) -> None:
        """Remember a failed call, in words, for warnings and the message when the run stops."""
        self.failures += 1
        self.last_failure = failure.kind
        self.last_error = in_words(failure, self.url, self.spec.api_key_env, self.spec.model, self.timeout_s)

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

    def failed(self, kind: str, now: float, started: float) -> bool:
        """A 5xx, timeout or dropped connection of a call sent at `started`; enough in a row (or a failed
        probe) rests the endpoint (returns True when this one did). Calls sent before the last rest began are
        already counted by it."""
        self.last_failure = kind
        if started < self.rested_at:
            return False
        self.failures_in_row += 1
        if self.probing or self.failures_in_row >= self.teacher.max_consecutive_failures:
            self.rests += 1
            self.probing = False
            self.failures_in_row = 0
            self.rested_at = now
            self.resting_until = now + self.teacher.endpoint_rest_s * 2 ** (self.rests - 1)
            return True
        return False

    def kill(self, reason: str) -> None:
        self.dead = reason

    def unresponsive(self, reason: str, now: float) -> bool:
        """Its calls got no reply for a while and GET /models none either: out for the run when it has not
        answered anything yet (or already rested once), else rested. True when it is out."""
        self.last_failure = "unresponsive"
        self.last_error = f"{self.url} accepts connections but does not answer: {reason}"
        self.failures_in_row = 0
        self.probing = False
        if not self.heard_any or self.rests >= 1:
            self.kill(self.last_error)
            return True
        self.rests += 1
        self.rested_at = now
        self.resting_until = now + self.teacher.endpoint_rest_s * 2 ** (self.rests - 1)
        return False

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        if self.price is None:
            return 0.0
        return (prompt_tokens * self.price.prompt_per_mtok + completion_tokens * self.price.completion_per_mtok) / 1e6

    def _backoff(self, retry: int) -> float:
        return backoff_s(retry, self.teacher.backoff_s, self.teacher.backoff_max_s, self.rng)

    def describe(self, now: float) -> str:
        """One line on this endpoint's state and last error, for warnings and the message when the run stops."""
        if self.dead is not None:
            return f"{self.name}: {self.dead} (out of this run)"
        error = self.last_error or "no error yet"
        calls = f"{self.failures} failed call{'s' * (self.failures != 1)}"
        if self.out_for_run():
            return f"{self.name}: {error} ({calls}; failed again after a rest)"
        if self.resting_until > now:
            return f"{self.name}: {error} ({calls}; resting {self.resting_until - now:.0f} s more)"
        if self.paused_until > now:
            return f"{self.name}: {error} ({calls}; paused {self.paused_until - now:.0f} s more)"
        return f"{self.name}: {error} ({calls})"
