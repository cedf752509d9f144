"""Rate limits and retry timing: token buckets on a clock the test controls, backoff, server headers."""

from __future__ import annotations

import random

import pytest

from retinal_reason_data.teacher.limits import (
    TokenBucket,
    backoff_s,
    exhausted_for_s,
    parse_duration,
    retry_after_s,
)


def admitted_within(bucket: TokenBucket, cost: float, seconds: float, step: float = 0.001) -> int:
    """How many requests of `cost` a greedy sender gets through in `seconds` of simulated time."""
    now, sent = 0.0, 0
    while now < seconds:
        if bucket.wait_s(cost, now) == 0:
            bucket.take(cost, now)
            sent += 1
        else:
            now += step
    return sent


def test_requests_bucket_holds_the_rate_with_a_one_second_burst() -> None:
    bucket = TokenBucket(per_minute=600, now=0.0)  # 10 per second, 10 at once
    assert admitted_within(bucket, 1, 10.0) == pytest.approx(10 + 100, abs=1)
    slow = TokenBucket(per_minute=30, now=0.0)  # one every 2 s, never a burst of more than one
    assert admitted_within(slow, 1, 10.0) == 5 + 1


def test_a_request_larger_than_the_bucket_goes_when_full_and_leaves_a_debt() -> None:
    tokens = TokenBucket(per_minute=6000, now=0.0)  # 100 tokens per second, holds 100
    assert tokens.wait_s(400, 0.0) == 0
    tokens.take(400, 0.0)
    assert tokens.wait_s(400, 0.0) == pytest.approx(4.0)  # 300 of debt + 100 to fill = 4 s
    assert admitted_within(TokenBucket(per_minute=6000, now=0.0), 400, 20.0) == pytest.approx(20 * 100 / 400 + 1, abs=1)


def test_settle_returns_what_an_estimate_took_too_much() -> None:
    tokens = TokenBucket(per_minute=60_000, now=0.0)  # 1000/s
    tokens.take(1000, 0.0)
    assert tokens.wait_s(500, 0.0) > 0
    tokens.settle(estimated=1000, actual=300, now=0.0)
    assert tokens.level == pytest.approx(700) and tokens.wait_s(500, 0.0) == 0
    tokens.settle(estimated=100, actual=900, now=0.0)  # a reply that cost more than estimated
    assert tokens.level == pytest.approx(-100)


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    rng = random.Random(1)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 30.0)]:
        waits = [backoff_s(retry, 1.0, 30.0, rng) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling
        assert max(waits) - min(waits) > ceiling / 4, "no jitter"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20ms", 0.02), ("1s", 1.0), ("1.5s", 1.5), ("6m0s", 360.0), ("1h2m3s", 3723.0), ("2", 2.0), ("abc", None)],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_in_seconds_milliseconds_or_a_date() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now_epoch=1445412480.0) == 10.0
    assert retry_after_s({}) is None and retry_after_s(None) is None


def test_rate_limit_headers_hold_off_when_the_window_is_used_up() -> None:
    assert exhausted_for_s({"x-ratelimit-remaining-requests": "5"}, 100) == 0
    assert exhausted_for_s({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}, 100) == 1.5
    headers = {"x-ratelimit-remaining-tokens": "50", "x-ratelimit-reset-tokens": "6m0s"}
    assert exhausted_for_s(headers, 100) == 360.0
    assert exhausted_for_s(headers, 40) == 0
