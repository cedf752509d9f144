"""Rate limits and retry timing: token buckets, backoff with jitter, Retry-After and rate-limit headers."""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Mapping

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class TokenBucket:
    """`per_minute` units refilled continuously, holding at most one second's worth (at least one unit).

    A request is admitted once the bucket holds its cost, or is full when the cost is larger than the
    bucket; the level may then go below zero (debt), which later admissions wait out. `settle` corrects
    the level once the real cost is known (tokens reported by the server instead of the estimate).
    """

    def __init__(self, per_minute: float, now: float, burst_s: float = 1.0) -> None:
        self.rate_per_s = per_minute / 60.0
        self.capacity = max(1.0, self.rate_per_s * burst_s)
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate_per_s)
            self.updated = now

    def wait_s(self, cost: float, now: float) -> float:
        """Seconds until a request of `cost` units may go (0 when it may go now)."""
        self._refill(now)
        missing = min(cost, self.capacity) - self.level
        return 0.0 if missing <= 1e-9 else missing / self.rate_per_s

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.level -= cost

    def settle(self, estimated: float, actual: float, now: float) -> None:
        """Give back (or charge more of) the difference between what was taken and what it really cost."""
        self._refill(now)
        self.level = min(self.capacity, self.level + estimated - actual)


def backoff_s(retry: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: half of min(max, base * 2^(retry-1)) plus a random share of the other half."""
    ceiling = min(max_s, base_s * 2 ** max(0, retry - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_duration(text: str | None) -> float | None:
    """Seconds in '20ms', '1.5s', '6m0s', '1h2m' or a plain number of seconds; None when unreadable."""
    if not text:
        return None
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def retry_after_s(headers: Mapping[str, str] | None, now_epoch: float | None = None) -> float | None:
    """The wait a server asks for: `retry-after-ms`, `retry-after` in seconds or as an HTTP date."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = parse_duration(value)
    if seconds is not None:
        return seconds
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - (now_epoch if now_epoch is not None else time.time()))


def exhausted_for_s(headers: Mapping[str, str] | None, next_tokens: float) -> float:
    """How long the server's rate-limit headers say to hold off (0 when there is room): no requests left
    until `x-ratelimit-reset-requests`, or fewer tokens left than the next request needs."""
    if not headers:
        return 0.0
    wait = 0.0
    remaining = _number(headers.get("x-ratelimit-remaining-requests"))
    if remaining is not None and remaining < 1:
        wait = max(wait, parse_duration(headers.get("x-ratelimit-reset-requests")) or 1.0)
    tokens = _number(headers.get("x-ratelimit-remaining-tokens"))
    if tokens is not None and tokens < next_tokens:
        wait = max(wait, parse_duration(headers.get("x-ratelimit-reset-tokens")) or 1.0)
    return wait


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
