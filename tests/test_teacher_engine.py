"""The request engine through real clients (the official `openai` client and the lean aiohttp one) against
the OpenAI-compatible server on 127.0.0.1, with injected faults, and a server that never answers."""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import openai  # noqa: F401 - imported once here, so that no test times the import
import pytest

from retinal_reason_data.recipe import TeacherSpec
from retinal_reason_data.teacher.endpoints import Endpoint
from retinal_reason_data.teacher.engine import EndpointsExhausted, Engine
from retinal_reason_data.teacher.progress import Progress
from retinal_reason_data.teacher.requests import Reply, Request
from retinal_reason_data.teacher.synthesize import judge
from retinal_reason_data.teacher.transports import encode_payload, make_transport
from tests import fake_openai as fake
from tests.fake_openai import FakeOpenAI, SilentServer
from tests.helpers.teacher import make_request

pytestmark = pytest.mark.slow  # real clients against servers with real timeouts and rate limits

TRANSPORTS = ["openai", "aiohttp"]


@dataclass
class Run:
    replies: dict[str, Reply] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    seconds: float = 0.0
    engine: Engine | None = None
    stopped: str | None = None  # the EndpointsExhausted message, when the run stopped (allow_stop=True)
    undelivered: int = 0  # requests handed back without a reply (asked again on the next run)

    def event_kinds(self) -> Counter[str]:
        return Counter(event["kind"] for event in self.events)

    def reconciles(self) -> bool:
        """Every call the engine made is a reply or exactly one logged event."""
        assert self.engine is not None
        stats = self.engine.stats
        ok_replies = sum(reply.error is None for reply in self.replies.values())
        return stats.calls == ok_replies + len(self.events) == stats.replies + sum(stats.failed_calls.values())


def teacher(**overrides: Any) -> TeacherSpec:
    values: dict[str, Any] = {
        "kind": "openai",
        "model": "fake-vlm",
        "concurrency": 4,
        "timeout_s": 2.0,
        "max_tokens": 16,
        "backoff_s": 0.02,
        "backoff_max_s": 0.2,
        "max_retries": 3,
    }
    values.update(overrides)
    return TeacherSpec.model_validate(values)


def run_engine(
    spec: TeacherSpec,
    n: int,
    transport: str = "openai",
    allow_stop: bool = False,
    attempts: int = 1,
    check_timeout_s: float = 5.0,
) -> Run:
    """Send n requests (x `attempts`) through the engine; collect every delivered reply and failed-call event.
    `allow_stop`: a run that stops because every endpoint failed returns with `stopped` set; `check_timeout_s`:
    how long the GET /models check of a stalled endpoint waits."""
    result = Run()

    def deliver(request: Request, reply: Reply | None, events: list[dict[str, Any]]) -> None:
        key = request.fingerprint if request.attempt == 1 else f"{request.fingerprint}/{request.attempt}"
        if reply is not None:
            assert key not in result.replies, "a reply was delivered twice"
            result.replies[key] = reply
        else:
            result.undelivered += 1
        result.events.extend(events)

    async def source():  # noqa: ANN202 - an async generator
        for i in range(n):
            for attempt in range(1, attempts + 1):
                request = make_request(i)
                yield Request(request.fingerprint, request.item, attempt, request.messages, False, 84)

    async def main() -> None:
        now = time.monotonic()
        result.endpoints = [
            Endpoint(spec=e, transport=make_transport(transport, e), teacher=spec, now=now)
            for e in spec.endpoint_specs()
        ]
        result.engine = Engine(spec, result.endpoints, deliver, rng=random.Random(0), check_timeout_s=check_timeout_s)
        try:
            await result.engine.run(source())
        finally:
            for endpoint in result.endpoints:
                await endpoint.transport.close()

    started = time.perf_counter()
    try:
        asyncio.run(main())
    except EndpointsExhausted as exc:
        if not allow_stop:
            raise
        result.stopped = str(exc)
    finally:
        result.seconds = time.perf_counter() - started
    return result


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_transient_faults_are_retried_until_every_request_has_its_reply(transport: str) -> None:
    with FakeOpenAI() as server:
        server.inject(
            fake.http_error(429, retry_after=0.05),
            fake.http_error(429),
            fake.http_error(500),
            fake.http_error(503, retry_after=0.05),
            fake.drop(),
            fake.slow(2.0),
            fake.invalid_json(),
        )
        spec = teacher(base_url=server.base_url, concurrency=2, max_retries=10, timeout_s=0.5)
        run = run_engine(spec, 10, transport)
        faults = list(zip(server.faulted_ids, server.faults_applied, strict=True))
    assert set(run.replies) == {f"fp-{i:03d}" for i in range(10)}
    assert all(
        reply.error is None and reply.text and "<answer>A</answer>" in reply.text for reply in run.replies.values()
    )
    expected = {
        "429": "rate_limited",
        "500": "server_error",
        "503": "server_error",
        "drop": "connection_error",
        "slow": "timeout",
        "invalid_json": "malformed_response",
    }
    seen = Counter((event["fingerprint"], event["kind"]) for event in run.events)
    wanted = Counter((request_id, expected[fault]) for request_id, fault in faults)
    assert not wanted - seen, f"faults not classified as expected: {wanted - seen}"
    extra = seen - wanted
    assert set(kind for _, kind in extra) <= {"timeout"}, extra  # only a loaded machine's slow replies
    assert sum(reply.tries for reply in run.replies.values()) == 10 + len(run.events)
    assert {event["status"] for event in run.events if event["kind"] == "server_error"} == {500, 503}
    # the slow reply was abandoned at the timeout and asked again, not waited for
    slow_id = next(request_id for request_id, fault in faults if fault == "slow")
    assert any(e["fingerprint"] == slow_id and e["detail"] == "no reply within 0.5 s" for e in run.events)


@pytest.mark.parametrize("retry_after", [0.4, None])
def test_a_429_pauses_the_endpoint_for_retry_after_or_a_backoff(retry_after: float | None) -> None:
    with FakeOpenAI(latency_s=0.05) as server:
        server.inject(fake.http_error(429, retry_after=retry_after))
        run = run_engine(teacher(base_url=server.base_url, concurrency=4, backoff_s=0.5, backoff_max_s=0.5), 12)
        arrivals = list(server.arrivals)
        statuses = list(server.faults_applied)
    assert statuses == ["429"] and len(run.replies) == 12
    first = arrivals[0]
    # the three sent with the first were already in flight; nothing new went until the pause was over
    later = [t - first for t in arrivals[4:]]
    floor = retry_after if retry_after is not None else 0.25  # backoff with jitter: between half and all of 0.5 s
    assert min(later) >= floor - 0.02, later


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_replies_that_came_back_are_classified_and_not_retried(transport: str) -> None:
    with FakeOpenAI() as server:
        server.inject(
            fake.empty_choices(),
            fake.refusal(),
            fake.content_filter(),
            fake.text("The image shows drusen, so B."),
            fake.text("I'm sorry, but I can't help with diagnosing medical images."),
            fake.text("<think>Exudates are seen near the fovea.</think><answer>B</answer>"),
            fake.truncated("<think>Step 1: a colour fundus photograph. Step 2: the exudates"),
            fake.reasoning("<answer>A</answer>", "Hard exudates ring the fovea; option A fits."),
            fake.text("<think>Exudates ring the fovea.</think><answer>A</answer> Actually, the answer is C."),
            fake.text("<think>Exudates ring the fovea.</think> \\boxed{A}"),
        )
        run = run_engine(teacher(base_url=server.base_url, concurrency=1), 11, transport)
        assert len(server.requests) == 11
    reasons = [judge(make_request(i), "fake-vlm", run.replies[f"fp-{i:03d}"]).failure for i in range(11)]
    expected = ["empty", "refusal", "refusal", "missing_tags", "refusal", "wrong_answer", "truncated", None]
    expected += ["malformed_tags", "malformed_tags", None]  # text after </answer>; a bare \boxed{}; the default reply
    assert reasons == expected
    # a reasoning server's separate reasoning comes back inside <think>
    assert run.replies["fp-007"].text.startswith("<think>\nHard exudates ring the fovea")
    assert all(reply.tries == 1 and reply.error is None for reply in run.replies.values())
    assert not run.events


def test_retries_run_out_and_the_failure_class_is_delivered() -> None:
    with FakeOpenAI() as server:
        server.fault_rule = lambda request, headers: fake.http_error(500)
        run = run_engine(teacher(base_url=server.base_url, max_retries=2, max_consecutive_failures=100), 3)
    assert {reply.error for reply in run.replies.values()} == {"server_error"}
    assert {reply.tries for reply in run.replies.values()} == {3}
    assert run.event_kinds() == {"server_error": 9}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_run_keeps_going_when_one_endpoint_is_down(transport: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
    down_url = closed_port_url()
    with FakeOpenAI() as server:
        endpoints = [
            {"name": "down", "base_url": down_url, "concurrency": 2},
            {"name": "up", "base_url": server.base_url, "concurrency": 2},
        ]
        spec = teacher(endpoints=endpoints, max_consecutive_failures=3, endpoint_rest_s=30)
        run = run_engine(spec, 20, transport)
        assert len(server.requests) == 20
    assert len(run.replies) == 20 and all(reply.error is None for reply in run.replies.values())
    assert {reply.endpoint for reply in run.replies.values()} == {"up"}
    down = run.endpoints[0]
    assert down.resting_until > 0 and set(run.event_kinds()) == {"connection_error"}
    # three failures in a row rest it; at most one more was already in flight (its concurrency is 2)
    assert 3 <= run.event_kinds()["connection_error"] <= 4
    assert f"teacher endpoint down: connection refused at {down_url}: is the server running" in caplog.text
    assert "resting it 30 s, then one probe" in caplog.text
    assert run.reconciles()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_run_stops_with_a_clear_message_when_every_endpoint_fails(transport: str) -> None:
    endpoints = [{"name": "first", "base_url": closed_port_url()}, {"name": "second", "base_url": closed_port_url()}]
    spec = teacher(endpoints=endpoints, max_consecutive_failures=2, endpoint_rest_s=0.05, max_retries=50)
    started = time.perf_counter()
    with pytest.raises(EndpointsExhausted) as raised:
        run_engine(spec, 50, transport)
    message = str(raised.value)
    assert "every teacher endpoint failed" in message
    for name, url in zip(["first", "second"], [e["base_url"] for e in endpoints], strict=True):
        assert f"{name}: connection refused at {url}: is the server running" in message, message
    assert time.perf_counter() - started < 60, "it did not stop"


def test_a_wrong_key_takes_its_endpoint_out_and_never_shows_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOD_KEY", "sk-good-secret-111")
    monkeypatch.setenv("BAD_KEY", "sk-bad-secret-999")
    with FakeOpenAI(expected_key="sk-good-secret-111") as server:
        endpoints = [
            {"name": "bad", "base_url": server.base_url, "api_key_env": "BAD_KEY", "weight": 100},
            {"name": "good", "base_url": server.base_url, "api_key_env": "GOOD_KEY"},
        ]
        run = run_engine(teacher(endpoints=endpoints), 8)
    assert len(run.replies) == 8 and {reply.endpoint for reply in run.replies.values()} == {"good"}
    dead = run.endpoints[0].dead
    assert dead is not None and dead.startswith(f"401 Unauthorized from {server.base_url}: check BAD_KEY")
    assert all(reply.tries == 1 for reply in run.replies.values()), "an endpoint's fault is not the request's"
    assert "sk-bad-secret-999" not in repr(run.events) + dead
    assert "Incorrect API key" in dead
    assert run.reconciles()


@pytest.mark.parametrize(("limit", "per_request"), [({"rpm": 1200}, 1), ({"tpm": 120_000}, 100)])
def test_rate_limits_space_the_requests(limit: dict[str, int], per_request: int) -> None:
    """20 per second, at most one second's worth at once: 40 requests take at least one second."""
    with FakeOpenAI() as server:
        run = run_engine(teacher(base_url=server.base_url, concurrency=16, **limit), 40)
        arrivals = sorted(server.arrivals)
    assert len(run.replies) == 40
    # 20 at once, then 20 per second: 1 s of sending (less the first connection's setup); unlimited, the
    # 40 requests go out in a few milliseconds
    assert arrivals[-1] - arrivals[0] >= 0.75


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_endpoints_without_a_key_of_their_own_send_the_teachers(
    monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    """The teacher's api_key_env reaches every endpoint that names none; `api_key_env: null` sends no key."""
    monkeypatch.setenv("TEACHER_API_KEY", "sk-teacher-secret-42")
    with FakeOpenAI(expected_key="sk-teacher-secret-42") as first, FakeOpenAI() as keyless:
        endpoints = [
            {"name": "first", "base_url": first.base_url, "concurrency": 2},
            {"name": "local", "base_url": keyless.base_url, "api_key_env": None, "concurrency": 2},
        ]
        run = run_engine(teacher(api_key_env="TEACHER_API_KEY", endpoints=endpoints), 12, transport)
        assert first.requests and keyless.requests
        assert {h.get("authorization") for h in first.headers} == {"Bearer sk-teacher-secret-42"}
        assert all("sk-teacher-secret-42" not in h.get("authorization", "") for h in keyless.headers)
    assert len(run.replies) == 12 and not run.events and run.reconciles()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_when_every_endpoint_fails_every_call_sent_is_logged(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    """Two endpoints with a wrong key and 8 calls in flight each: the run stops, and every call the engine
    made is a logged event (the 401s that came back, and the rest as `cancelled` with the reason)."""
    monkeypatch.setenv("WRONG_KEY", "sk-wrong-secret-000")
    with FakeOpenAI(expected_key="sk-right", latency_s=0.05) as one, FakeOpenAI(expected_key="sk-right") as two:
        endpoints = [{"name": "one", "base_url": one.base_url}, {"name": "two", "base_url": two.base_url}]
        spec = teacher(api_key_env="WRONG_KEY", endpoints=endpoints, concurrency=8)
        run = run_engine(spec, 50, transport, allow_stop=True)
        sent = len(one.requests) + len(two.requests)
    assert run.stopped is not None and run.engine is not None
    assert f"one: 401 Unauthorized from {one.base_url}: check WRONG_KEY" in run.stopped
    assert f"two: 401 Unauthorized from {two.base_url}: check WRONG_KEY" in run.stopped
    assert not run.replies and run.reconciles()
    assert run.engine.stats.calls >= sent >= 2 and len(run.events) == run.engine.stats.calls
    assert set(run.event_kinds()) <= {"auth_error", "cancelled"}
    assert run.event_kinds()["auth_error"] >= 2
    cancelled = [event["detail"] for event in run.events if event["kind"] == "cancelled"]
    assert all(detail == "stopped: every teacher endpoint is out" for detail in cancelled)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_that_accepts_and_never_answers_is_named_and_given_up(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A silent server: the warning after stall_warning_s names it and says it does not answer GET /models
    either; its calls are cancelled and logged, and the run stops with the cause in words."""
    caplog.set_level("WARNING")
    with SilentServer() as silent:
        spec = teacher(base_url=silent.base_url, concurrency=3, timeout_s=60, stall_warning_s=0.4)
        run = run_engine(spec, 10, transport, allow_stop=True, check_timeout_s=1.0)
        assert silent.connections >= 1
    assert run.stopped is not None and run.engine is not None
    words = f"{silent.base_url} accepts connections but does not answer: no reply to 3 calls within"
    assert words in run.stopped and "no answer to GET /models within 1 s either" in run.stopped
    assert "out of this run" in run.stopped
    [(_, warning)] = run.engine.stats.warnings
    assert warning.startswith("teacher: no reply for") and words in warning, warning
    assert words in caplog.text
    assert run.event_kinds() == {"cancelled": 3} and run.engine.stats.calls == 3 and run.reconciles()
    name = run.endpoints[0].name
    assert {event["detail"] for event in run.events} == {f"given up: {name} accepts connections but does not answer"}
    assert run.undelivered == 3, "the requests taken are handed back, to be asked again on the next run"


def test_a_second_stop_cancels_the_calls_in_flight_and_logs_each_with_the_reason() -> None:
    events: list[dict[str, Any]] = []
    handed_back: list[str] = []

    def deliver(request: Request, reply: Reply | None, new_events: list[dict[str, Any]]) -> None:
        assert reply is None, "no call was answered"
        handed_back.append(request.fingerprint)
        events.extend(new_events)

    async def source():  # noqa: ANN202 - an async generator
        for i in range(20):
            yield make_request(i)

    async def main(server: FakeOpenAI) -> Engine:
        spec = teacher(base_url=server.base_url, concurrency=4, timeout_s=30, stall_warning_s=None)
        [endpoint_spec] = spec.endpoint_specs()
        endpoint = Endpoint(spec=endpoint_spec, transport=make_transport("openai", endpoint_spec), teacher=spec, now=0)
        engine = Engine(spec, [endpoint], deliver)
        running = asyncio.get_running_loop().create_task(engine.run(source()))
        for _ in range(200):  # until the four calls reached the server (at most 10 s)
            if len(server.requests) == 4:
                break
            await asyncio.sleep(0.05)
        engine.stop()
        engine.stop("stopped at once: test")
        await running
        await endpoint.transport.close()
        return engine

    with FakeOpenAI() as server:
        server.fault_rule = lambda request, headers: fake.hang()
        engine = asyncio.run(main(server))
        assert len(server.requests) == 4
    assert engine.stats.calls == 4 and engine.stats.failed_calls == {"cancelled": 4}
    assert [(event["kind"], event["detail"]) for event in events] == [("cancelled", "stopped at once: test")] * 4
    assert sorted(handed_back) == sorted(event["fingerprint"] for event in events)


def test_a_silent_endpoints_calls_go_to_the_other_one() -> None:
    with SilentServer() as silent, FakeOpenAI(latency_s=0.05) as server:
        endpoints = [
            {"name": "silent", "base_url": silent.base_url, "concurrency": 4, "weight": 10},
            {"name": "up", "base_url": server.base_url, "concurrency": 2},
        ]
        run = run_engine(teacher(endpoints=endpoints, timeout_s=60, stall_warning_s=0.4), 12, check_timeout_s=1.0)
        assert len(server.requests) == 12
    assert len(run.replies) == 12 and {reply.endpoint for reply in run.replies.values()} == {"up"}
    assert run.event_kinds() == {"cancelled": 4} and run.reconciles()
    assert all(event["endpoint"] == "silent" for event in run.events)
    assert run.endpoints[0].dead is not None and "accepts connections but does not answer" in run.endpoints[0].dead


def test_a_slow_server_that_answers_gets_a_warning_and_keeps_its_calls() -> None:
    with FakeOpenAI() as server:
        server.inject(*[fake.slow(1.5)] * 2)
        run = run_engine(teacher(base_url=server.base_url, concurrency=2, timeout_s=20, stall_warning_s=0.4), 4)
    assert len(run.replies) == 4 and not run.events and run.reconciles()
    assert run.engine is not None and run.engine.stats.warnings
    _, warning = run.engine.stats.warnings[0]
    assert "2 calls waiting" in warning and f"at {server.base_url}" in warning
    assert "it answers GET /models, so it is up but slow" in warning


def test_the_attempts_of_an_item_are_sent_with_distinct_seeds() -> None:
    with FakeOpenAI() as server:
        run = run_engine(teacher(base_url=server.base_url, temperature=0.7, seed=100), 4, attempts=3)
        by_item: dict[str, set[str]] = {}
        for request, request_id in zip(server.requests, server.request_ids(), strict=True):
            by_item.setdefault(request_id, set()).add(json.dumps(request, sort_keys=True))
        seeds = sorted(request["seed"] for request in server.requests)
    assert len(run.replies) == 12 and len(server.requests) == 12
    assert {request_id: len(bodies) for request_id, bodies in by_item.items()} == {f"fp-00{i}": 3 for i in range(4)}
    assert seeds == sorted([100, 101, 102] * 4)


def test_weights_hold_while_every_endpoint_is_full() -> None:
    """3:1 weights, the same concurrency and latency on both: a free slot of the light endpoint waits for the
    heavy one rather than tipping the share."""
    with FakeOpenAI(latency_s=0.03) as heavy, FakeOpenAI(latency_s=0.03) as light:
        endpoints = [
            {"name": "heavy", "base_url": heavy.base_url, "concurrency": 4, "weight": 3},
            {"name": "light", "base_url": light.base_url, "concurrency": 4, "weight": 1},
        ]
        run = run_engine(teacher(endpoints=endpoints, timeout_s=20), 200, "aiohttp")
    served = Counter(reply.endpoint for reply in run.replies.values())
    assert served["heavy"] + served["light"] == 200 and not run.events
    assert 2.7 <= served["heavy"] / served["light"] <= 3.3, served


def test_weights_share_the_requests_while_both_endpoints_have_room() -> None:
    with FakeOpenAI(latency_s=0.2) as heavy, FakeOpenAI(latency_s=0.2) as light:
        endpoints = [
            {"name": "heavy", "base_url": heavy.base_url, "concurrency": 40, "weight": 3},
            {"name": "light", "base_url": light.base_url, "concurrency": 40, "weight": 1},
        ]
        run = run_engine(teacher(endpoints=endpoints, timeout_s=5), 40)
        assert len(heavy.requests) + len(light.requests) == 40
    served = Counter(reply.endpoint for reply in run.replies.values())
    assert served == {"heavy": 30, "light": 10}


def test_the_lean_client_splices_image_urls_into_the_exact_json() -> None:
    url = "data:image/jpeg;base64," + "QUJD" * 5000
    payload = {
        "model": "fake-vlm",
        "messages": [
            {"role": "system", "content": 'Say "why" \u00e9\n'},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "image_url", "image_url": {"url": url[:-4] + "WFla", "detail": "high"}},
                    {"type": "text", "text": "Which finding?"},
                ],
            },
        ],
        "max_tokens": 16,
    }
    assert json.loads(encode_payload(payload)) == payload
    assert payload["messages"][1]["content"][0]["image_url"]["url"] == url, "the request was changed"


def test_the_progress_line_has_rate_tokens_cost_and_eta() -> None:
    progress = Progress(total=100, desc="test")
    for _ in range(25):
        progress.update(tokens=1000, cost=0.01, failed=False)
    line = progress.line()
    progress.close()
    assert re.fullmatch(
        r"25/100 requests, [\d.]+ req/s, [\d,]+ tok/s, cost 0\.25, 0 unverified, ETA \d+ (s|min|h)", line
    ), line


def test_rate_limit_headers_that_say_the_window_is_used_up_hold_the_endpoint() -> None:
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"}
    with FakeOpenAI(rate_headers=headers) as server:
        run = run_engine(teacher(base_url=server.base_url, concurrency=1), 4)
        arrivals = list(server.arrivals)
    assert len(run.replies) == 4 and not run.events
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) >= 0.29, gaps
