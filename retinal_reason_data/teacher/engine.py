"""The request engine: sends every request to one of several endpoints with bounded concurrency, rate
limits, retries with backoff, cooldowns and failover, and hands each final reply to `deliver`.

One dispatcher coroutine pulls requests from an async source only when there is room, so memory stays
bounded whatever the size of the run. A failed call is retried after backoff with jitter (or the server's
Retry-After), preferably elsewhere, up to `max_retries` (the endpoint's own, else the teacher's); then its
failure class is delivered. When every endpoint is out (dead, or resting again after a failed probe) the
calls in flight get a short grace, the rest are cancelled, and the run stops with `EndpointsExhausted`,
whose message says in words what each endpoint last did. `stop()` stops gracefully (requests in flight
finish and are delivered); a second `stop()` cancels them.

Weights: each endpoint has a share, requests sent / weight. A request goes to the endpoint with room whose
share after it would be the smallest; when an endpoint that is at its concurrency would have the smaller
share, the request waits for one of its slots instead of taking another endpoint's (as long as that endpoint
keeps answering): the weights hold while every endpoint is full. An endpoint that was away (resting, paused,
held by its limits) comes back at the share of the others, without credit for the time it was away, so
nobody idles while it catches up.

Stalls: after `stall_warning_s` without a reply a warning names each endpoint and its last error. An
endpoint whose calls have waited that long is asked GET /models; when that gets no answer either, the
endpoint is out of the run (rested, if it had answered before) and its calls are sent elsewhere.

Every call ends either as a reply or as one `teacher_events` row (its failure class, or `cancelled` with the
reason): `stats.calls == stats.replies + sum(stats.failed_calls.values())`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retinal_reason_data.recipe import TeacherSpec
from retinal_reason_data.teacher.endpoints import Endpoint
from retinal_reason_data.teacher.limits import backoff_s, retry_after_s
from retinal_reason_data.teacher.outcomes import ENDPOINT_FATAL, TRANSIENT, UNHEALTHY, TransportError, redact
from retinal_reason_data.teacher.requests import Reply, Request, sent_params
from retinal_reason_data.teacher.transports import answers_at_all

log = logging.getLogger(__name__)
Deliver = Callable[[Request, Reply | None, list[dict[str, Any]]], None]

EXHAUSTED_GRACE_S = 2.0  # calls in flight when every endpoint is out may still land (a 401 does at once)
CHECK_TIMEOUT_S = 5.0  # GET /models of an endpoint whose calls stalled


class EndpointsExhausted(RuntimeError):
    """Every endpoint is out of the run; the message says in words what each one last did."""


@dataclass(slots=True)
class Job:
    request: Request
    tokens: float
    tries: int = 0
    avoid: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    settled: bool = True  # delivered or queued for a retry; False while a call of it is dispatched
    abandon: str | None = None  # why its call in flight is being given up and the request sent elsewhere


@dataclass(slots=True)
class Call:
    job: Job
    endpoint: Endpoint
    started: float


@dataclass
class EngineStats:
    calls: int = 0
    replies: int = 0
    failed_calls: Counter[str] = field(default_factory=Counter)
    warnings: list[tuple[float, str]] = field(default_factory=list)  # (clock, message) of every stall warning


class Engine:
    def __init__(
        self,
        teacher: TeacherSpec,
        endpoints: list[Endpoint],
        deliver: Deliver,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        check_timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self.teacher = teacher
        self.check_timeout_s = check_timeout_s
        self.endpoints = endpoints
        self.deliver = deliver
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = EngineStats()
        self.stopping = False
        self.aborted = False
        self.cancel_reason = "stopped"
        self.error: BaseException | None = None
        self._capacity = sum(endpoint.concurrency for endpoint in endpoints)
        self._params: dict[int, dict[str, Any]] = {}  # attempt -> sampling parameters
        self._waiter: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._calls: dict[asyncio.Task[None], Call] = {}
        self._retries: list[tuple[float, int, Job]] = []
        self._away: set[str] = set()
        self._seq = itertools.count()
        self._prompt_seen = self._completion_seen = 0.0
        self._replies_seen = 0
        self._last_reply = clock()
        self._open = 0  # requests taken from the source and not delivered yet

    # --- control ----------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped at once (a second Ctrl-C or SIGTERM)") -> None:
        """First call: send nothing new, let requests in flight finish. Second call: cancel them too; each
        is logged as `cancelled` with `reason`."""
        if self.stopping:
            self._cancel_all(reason)
        self.stopping = True
        self._notify()

    def _cancel_all(self, reason: str) -> None:
        self.aborted = True
        self.cancel_reason = reason
        for task in list(self._tasks):
            task.cancel()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        call = self._calls.pop(task, None)
        if task.cancelled():
            if call is not None and not call.job.settled:  # cancelled before it ran: nothing was sent
                call.endpoint.inflight -= 1
                self._requeue_or_hand_back(call.job, call.endpoint)
        elif task.exception() is not None and self.error is None:
            self.error = task.exception()  # a bug in delivering a reply: stop rather than lose replies quietly
            self.stopping = True
            self._cancel_all(f"stopped: {type(self.error).__name__} while storing a reply")
        self._notify()

    def _notify(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep(self, seconds: float | None) -> None:
        """Until something changes (a call ends, stop()) or `seconds` pass."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        handle = None if seconds is None or math.isinf(seconds) else loop.call_later(max(seconds, 0.001), self._notify)
        try:
            await self._waiter
        finally:
            if handle is not None:
                handle.cancel()
            self._waiter = None

    def _deliver(self, job: Job, reply: Reply | None) -> None:
        """Hand a request's outcome (a reply, or None: asked again on the next run) and its events over."""
        if reply is not None or job.events:
            self.deliver(job.request, reply, job.events)
        job.events = []
        self._open -= 1

    # --- the dispatcher ---------------------------------------------------------------------------
    async def run(self, source: AsyncIterator[Request]) -> None:
        """Send every request of `source`; returns when all are delivered or the engine was stopped."""
        loop = asyncio.get_running_loop()
        retries = self._retries
        job: Job | None = None
        exhausted = False
        self._last_reply = self.clock()
        watchdog = loop.create_task(self._watch()) if self.teacher.stall_warning_s else None
        try:
            while not self.stopping:
                now = self.clock()
                if job is None:
                    if retries and retries[0][0] <= now:
                        job = heapq.heappop(retries)[2]
                    elif not exhausted and len(self._tasks) + len(retries) < self._capacity:
                        try:
                            request = await anext(source)
                        except StopAsyncIteration:
                            exhausted = True
                            continue
                        job = Job(request, self._estimate(request))
                        self._open += 1
                        continue
                    elif exhausted and not self._tasks and not retries:
                        break
                    else:
                        await self._sleep(retries[0][0] - now if retries else None)
                        continue
                endpoint, wait = self._choose(job, now)
                if endpoint is None:
                    if wait is None:
                        if self._tasks:  # let the calls in flight land (a late reply may revive its endpoint)
                            await asyncio.wait(list(self._tasks), timeout=EXHAUSTED_GRACE_S)
                            endpoint, wait = self._choose(job, self.clock())
                        if endpoint is None and wait is None:
                            raise EndpointsExhausted(self._exhausted_message())
                        continue
                    if retries:
                        wait = min(wait, max(0.0, retries[0][0] - now))
                    await self._sleep(wait)
                    continue
                endpoint.take(job.tokens, now)
                job.settled = False
                task = loop.create_task(self._call(job, endpoint))
                self._tasks.add(task)
                self._calls[task] = Call(job, endpoint, now)
                task.add_done_callback(self._finished)
                job = None
        except EndpointsExhausted:
            self._cancel_all("stopped: every teacher endpoint is out")
            raise
        except BaseException as exc:
            self._cancel_all(f"stopped: {type(exc).__name__}")
            raise
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if watchdog is not None:
                watchdog.cancel()
                with suppress(asyncio.CancelledError):
                    await watchdog
            leftover = [entry[2] for entry in retries] + ([job] if job is not None else [])
            retries.clear()
            for pending in leftover:
                self._deliver(pending, None)
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.error is not None:
            raise self.error

    def _choose(self, job: Job, now: float) -> tuple[Endpoint | None, float | None]:
        """The endpoint for `job` now, or none and how long to wait (None: every endpoint is out)."""
        best: Endpoint | None = None
        best_key: tuple[bool, float] | None = None
        full_share = math.inf  # the smallest share after one more request among endpoints at their concurrency
        recheck = math.inf  # when the endpoint waited for would stop counting as answering
        soonest = math.inf
        usable = False
        self._lift(now)
        for endpoint in self.endpoints:
            wait = endpoint.wait_s(job.tokens, now)
            if wait is None:
                continue
            usable = usable or not endpoint.out_for_run()
            share = endpoint.share + 1.0 / endpoint.spec.weight
            if wait > 0:
                soonest = min(soonest, wait)
                waited_for = endpoint.name not in self._away and endpoint.name != job.avoid
                if math.isinf(wait) and waited_for and endpoint.answering(now) and share < full_share:
                    full_share, recheck = share, endpoint.answering_until() - now
                continue
            key = (endpoint.name == job.avoid, share)
            if best_key is None or key < best_key:
                best, best_key = endpoint, key
        if best is not None and best_key is not None:
            if best_key[1] <= full_share:
                return best, 0.0
            soonest = min(soonest, max(recheck, 0.001))  # a slot of `best` stays free: look again then
        return None, (soonest if usable else None)

    def _lift(self, now: float) -> None:
        """Endpoints back from being away start at the smallest share of those that stayed."""
        away = {endpoint.name for endpoint in self.endpoints if endpoint.away(now)}
        back = [endpoint for endpoint in self.endpoints if endpoint.name in self._away - away]
        self._away = away
        stayed = [endpoint.share for endpoint in self.endpoints if endpoint.name not in away and endpoint not in back]
        if back and stayed:
            for endpoint in back:
                endpoint.share = max(endpoint.share, min(stayed))

    def _exhausted_message(self) -> str:
        now = self.clock()
        lines = "\n".join(f"  {endpoint.describe(now)}" for endpoint in self.endpoints)
        return f"every teacher endpoint failed; stopping. By endpoint:\n{lines}"

    # --- one call ---------------------------------------------------------------------------------
    async def _call(self, job: Job, endpoint: Endpoint) -> None:
        request = job.request
        payload = {"model": endpoint.spec.model or self.teacher.model, "messages": request.messages}
        payload.update(self._sampling(request.attempt))
        started = self.clock()
        self.stats.calls += 1
        failure: TransportError | None = None
        timeout = endpoint.timeout_s
        try:
            async with asyncio.timeout(timeout):
                completion = await endpoint.transport.complete(payload, request.fingerprint)
        except TransportError as exc:
            failure = exc
        except TimeoutError:
            failure = TransportError("timeout", f"no reply within {timeout:g} s")
        except asyncio.CancelledError:
            requeued = self._cancelled(job, endpoint)
            if not requeued:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return
        except Exception as exc:  # noqa: BLE001 - an unexpected client error is a failed call, not a crash
            failure = TransportError("connection_error", redact(f"{type(exc).__name__}: {exc}"[:300]))
        finally:
            endpoint.inflight -= 1
            self._notify()
        now = self.clock()
        job.tries += 1
        if failure is not None:
            self._failed(job, endpoint, failure, started, now)
            return
        used = completion.prompt_tokens + completion.completion_tokens
        endpoint.heard(now, now - started)
        endpoint.succeeded(job.tokens, used or job.tokens, completion.headers, now)
        self._learn(completion.prompt_tokens, completion.completion_tokens)
        self._last_reply = now
        self.stats.replies += 1
        reply = Reply(
            text=completion.text if isinstance(completion.text, str) else None,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_s=now - started,
            error=None,
            finish_reason=completion.finish_reason,
            refusal=completion.refusal,
            endpoint=endpoint.name,
            tries=job.tries,
            cost=endpoint.cost(completion.prompt_tokens, completion.completion_tokens),
        )
        job.settled = True
        self._deliver(job, reply)

    def _event(self, job: Job, endpoint: Endpoint, kind: str, status: int | None, detail: str) -> dict[str, Any]:
        return {
            "logged_at": datetime.now(UTC).replace(tzinfo=None),
            "fingerprint": job.request.fingerprint,
            "item_id": job.request.item.item_id,
            "attempt": job.request.attempt,
            "endpoint": endpoint.name,
            "kind": kind,
            "status": status,
            "detail": detail[:300] or None,
        }

    def _cancelled(self, job: Job, endpoint: Endpoint) -> bool:
        """Log a call cancelled in flight; True when its request goes back to the queue (its endpoint was given
        up, not the run), False when it is handed back undelivered (asked again on the next run)."""
        reason = job.abandon or self.cancel_reason
        self.stats.failed_calls["cancelled"] += 1
        job.events.append(self._event(job, endpoint, "cancelled", None, reason))
        return self._requeue_or_hand_back(job, endpoint)

    def _requeue_or_hand_back(self, job: Job, endpoint: Endpoint) -> bool:
        """A job whose call was cancelled: back in the queue when only its endpoint was given up (True), else
        handed back undelivered, to be asked again on the next run."""
        job.settled = True
        if job.abandon is not None and not self.aborted and not self.stopping:
            job.abandon, job.avoid = None, endpoint.name
            heapq.heappush(self._retries, (self.clock(), next(self._seq), job))
            return True
        job.abandon = None
        self._deliver(job, None)
        return False

    def _failed(self, job: Job, endpoint: Endpoint, failure: TransportError, started: float, now: float) -> None:
        kind = failure.kind
        self.stats.failed_calls[kind] += 1
        job.events.append(self._event(job, endpoint, kind, failure.status, failure.detail))
        if failure.status is not None or kind == "malformed_response":
            endpoint.heard(now)
        endpoint.note(failure)
        final = False
        not_before = now
        if kind in ENDPOINT_FATAL:
            if endpoint.dead is None:
                said = f"; the server said: {failure.detail[:200]}" if failure.detail else ""
                endpoint.kill(f"{endpoint.last_error}{said}")
                log.warning("teacher endpoint %s is out of this run: %s", endpoint.name, endpoint.dead)
            job.tries -= 1  # the endpoint's fault, not the request's
        elif kind == "rate_limited":
            until = endpoint.rate_limited(retry_after_s(failure.headers), now)
            if until - now > 60:
                log.warning("teacher endpoint %s asks to wait %.0f s (rate limited)", endpoint.name, until - now)
        elif kind in TRANSIENT:
            if kind in UNHEALTHY and endpoint.failed(kind, now, started) and not endpoint.out_for_run():
                in_row = "its probe failed" if endpoint.rests > 1 else f"{endpoint.failures} failed calls"
                log.warning(
                    "teacher endpoint %s: %s (%s); resting it %.0f s, then one probe",
                    endpoint.name,
                    endpoint.last_error,
                    in_row,
                    endpoint.resting_until - now,
                )
            wait = retry_after_s(failure.headers)
            if wait is None:
                wait = backoff_s(job.tries, self.teacher.backoff_s, self.teacher.backoff_max_s, self.rng)
            not_before = now + min(wait, self.teacher.backoff_max_s)
            job.avoid = endpoint.name
        else:
            final = True
        job.settled = True
        if final or job.tries > endpoint.max_retries:
            self._deliver(job, Reply(None, 0, 0, now - started, kind, endpoint=endpoint.name, tries=job.tries))
        elif self.stopping:
            self._deliver(job, None)
        else:
            heapq.heappush(self._retries, (not_before, next(self._seq), job))
        self._notify()

    # --- stalls -----------------------------------------------------------------------------------
    async def _watch(self) -> None:
        """Warn when no reply came for `stall_warning_s` (then after twice as long, and so on), and check
        endpoints whose calls have waited that long (GET /models); give up those that do not answer."""
        stall = float(self.teacher.stall_warning_s or 0)
        next_warning = stall
        checked: dict[str, float] = {}  # endpoint -> when its calls were last checked
        while True:
            await asyncio.sleep(min(1.0, stall / 4))
            now = self.clock()
            quiet = now - self._last_reply
            if quiet < stall:
                next_warning = stall
            waiting = self._open > 0
            due = waiting and quiet >= next_warning
            suspects = []  # endpoints whose calls waited long enough (any with calls in flight when a warning is due)
            for endpoint in self.endpoints:
                since = self._quiet_since(endpoint)
                if since is None or checked.get(endpoint.name, -math.inf) >= since:
                    continue
                if due or now - since >= stall:
                    suspects.append(endpoint)
            if not suspects and not due:
                continue
            verdicts = await asyncio.gather(
                *(answers_at_all(endpoint.spec, self.check_timeout_s) for endpoint in suspects),
                return_exceptions=True,
            )
            now = self.clock()
            notes = {}
            for endpoint, verdict in zip(suspects, verdicts, strict=True):
                checked[endpoint.name] = now
                notes[endpoint.name] = self._judge_stall(endpoint, verdict, now)
            if due:
                lines = [
                    f"  {endpoint.name}: {notes[endpoint.name]}"
                    if endpoint.name in notes
                    else f"  {endpoint.describe(now)}"
                    for endpoint in self.endpoints
                ]
                message = (
                    f"teacher: no reply for {now - self._last_reply:.0f} s ({self.stats.replies} replies so far, "
                    f"{self._open} requests in progress). By endpoint:\n" + "\n".join(lines)
                )
                next_warning *= 2
            else:
                message = "\n".join(f"teacher endpoint {name}: {note}" for name, note in notes.items())
            self.stats.warnings.append((now, message))
            log.warning("%s", message)
            self._notify()

    def _quiet_since(self, endpoint: Endpoint) -> float | None:
        """Since when the calls in flight on `endpoint` have heard nothing from it (None: no call in flight)."""
        starts = [call.started for call in self._calls.values() if call.endpoint is endpoint]
        if not starts or endpoint.dead is not None:
            return None
        return max(min(starts), endpoint.last_heard)

    def _judge_stall(self, endpoint: Endpoint, verdict: str | BaseException | None, now: float) -> str:
        """Act on the GET /models check of a stalled endpoint; returns what to say about it."""
        calls = [(task, call) for task, call in self._calls.items() if call.endpoint is endpoint]
        waited = now - (self._quiet_since(endpoint) or now)
        if verdict is None:
            return (
                f"{len(calls)} calls waiting {waited:.0f} s at {endpoint.url} (last error: "
                f"{endpoint.last_error or 'none'}); it answers GET /models, so it is up but slow (a call may take "
                f"up to timeout_s, {endpoint.timeout_s:g} s)"
            )
        if isinstance(verdict, BaseException):
            verdict = f"GET /models failed: {type(verdict).__name__}"
        out = endpoint.unresponsive(f"no reply to {len(calls)} calls within {waited:.0f} s, and {verdict}", now)
        for task, call in calls:
            call.job.abandon = f"given up: {endpoint.name} accepts connections but does not answer"
            task.cancel()
        others = any(other is not endpoint and not other.out_for_run() for other in self.endpoints)
        where = "its calls go to the other endpoints" if others else "no other endpoint is left"
        if out:
            return f"{endpoint.last_error}; it is out of this run, {where}"
        return f"{endpoint.last_error}; resting it {endpoint.resting_until - now:.0f} s, {where}"

    # --- estimates --------------------------------------------------------------------------------
    def _sampling(self, attempt: int) -> dict[str, Any]:
        params = self._params.get(attempt)
        if params is None:
            params = self._params[attempt] = sent_params(self.teacher, attempt)
        return params

    def _estimate(self, request: Request) -> float:
        """Tokens a request will use, for the tokens-per-minute bucket (corrected once the reply tells)."""
        if self._replies_seen >= 8:
            prompt = self._prompt_seen
            completion = min(float(self.teacher.max_tokens), self._completion_seen * 1.25)
        else:
            prompt, completion = float(request.prompt_tokens_estimate), float(self.teacher.max_tokens)
        return max(1.0, prompt + completion)

    def _learn(self, prompt_tokens: int, completion_tokens: int) -> None:
        if not prompt_tokens and not completion_tokens:
            return
        self._replies_seen += 1
        share = 1.0 / min(self._replies_seen, 50)
        self._prompt_seen += (prompt_tokens - self._prompt_seen) * share
        self._completion_seen += (completion_tokens - self._completion_seen) * share
