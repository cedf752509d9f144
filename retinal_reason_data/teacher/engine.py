"""The request engine: sends every request to one of several endpoints with bounded concurrency, rate
limits, retries with backoff, cooldowns and failover, and hands each final reply to `deliver`.

One dispatcher coroutine pulls requests from an async source only when there is room, so memory stays
bounded whatever the size of the run. Each request goes to the endpoint with room that has served the
smallest share of its weight; a failed call is retried after backoff with jitter (or the server's
Retry-After), preferably elsewhere, up to `max_retries`; then its failure class is delivered. When every
endpoint is out (dead, or resting again after a failed probe) the run stops with `EndpointsExhausted`.
`stop()` stops gracefully (requests in flight finish and are delivered); a second `stop()` cancels them.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retinal_reason_data.recipe import TeacherSpec
from retinal_reason_data.teacher.endpoints import Endpoint
from retinal_reason_data.teacher.limits import backoff_s, retry_after_s
from retinal_reason_data.teacher.outcomes import ENDPOINT_FATAL, TRANSIENT, UNHEALTHY, TransportError, redact
from retinal_reason_data.teacher.requests import Reply, Request, sent_params

log = logging.getLogger(__name__)
Deliver = Callable[[Request, Reply | None, list[dict[str, Any]]], None]


class EndpointsExhausted(RuntimeError):
    """Every endpoint is out of the run; the message says what each one last did."""


@dataclass(slots=True)
class Job:
    request: Request
    tokens: float
    tries: int = 0
    avoid: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EngineStats:
    calls: int = 0
    failed_calls: Counter[str] = field(default_factory=Counter)


class Engine:
    def __init__(
        self,
        teacher: TeacherSpec,
        endpoints: list[Endpoint],
        deliver: Deliver,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.teacher = teacher
        self.endpoints = endpoints
        self.deliver = deliver
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = EngineStats()
        self.stopping = False
        self.aborted = False
        self.error: BaseException | None = None
        self._capacity = sum(endpoint.concurrency for endpoint in endpoints)
        self._params: dict[int, dict[str, Any]] = {}  # attempt -> sampling parameters
        self._waiter: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = itertools.count()
        self._prompt_seen = self._completion_seen = 0.0
        self._replies_seen = 0

    # --- control ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """First call: send nothing new, let requests in flight finish. Second call: cancel them too."""
        if self.stopping:
            self.aborted = True
            for task in list(self._tasks):
                task.cancel()
        self.stopping = True
        self._notify()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.error is None:
            self.error = task.exception()  # a bug in delivering a reply: stop rather than lose replies quietly
            self.stop()
            self.stop()
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

    # --- the dispatcher ---------------------------------------------------------------------------
    async def run(self, source: AsyncIterator[Request]) -> None:
        """Send every request of `source`; returns when all are delivered or the engine was stopped."""
        loop = asyncio.get_running_loop()
        retries: list[tuple[float, int, Job]] = []
        job: Job | None = None
        exhausted = False
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
                        continue
                    elif exhausted and not self._tasks and not retries:
                        break
                    else:
                        await self._sleep(retries[0][0] - now if retries else None)
                        continue
                endpoint, wait = self._choose(job, now)
                if endpoint is None:
                    if wait is None:
                        raise EndpointsExhausted(self._exhausted_message())
                    if retries:
                        wait = min(wait, max(0.0, retries[0][0] - now))
                    await self._sleep(wait)
                    continue
                endpoint.take(job.tokens, now)
                task = loop.create_task(self._call(job, endpoint, retries))
                self._tasks.add(task)
                task.add_done_callback(self._finished)
                job = None
        except BaseException:
            self.aborted = True
            raise
        finally:
            if self.aborted:
                for task in list(self._tasks):
                    task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            leftover = [entry[2] for entry in retries] + ([job] if job is not None else [])
            for pending in leftover:
                if pending.events:
                    self.deliver(pending.request, None, pending.events)
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.error is not None:
            raise self.error

    def _choose(self, job: Job, now: float) -> tuple[Endpoint | None, float | None]:
        """The endpoint for `job` now, or none and how long to wait (None: every endpoint is out)."""
        best: Endpoint | None = None
        best_key: tuple[bool, float] | None = None
        soonest = math.inf
        usable = False
        for endpoint in self.endpoints:
            wait = endpoint.wait_s(job.tokens, now)
            if wait is None:
                continue
            usable = usable or not endpoint.out_for_run()
            if wait > 0:
                soonest = min(soonest, wait)
                continue
            key = (endpoint.name == job.avoid, endpoint.sent / endpoint.spec.weight)
            if best_key is None or key < best_key:
                best, best_key = endpoint, key
        if best is not None:
            return best, 0.0
        return None, (soonest if usable else None)

    def _exhausted_message(self) -> str:
        lines = "\n".join(f"  {endpoint.describe()}" for endpoint in self.endpoints)
        return f"every teacher endpoint failed; stopping:\n{lines}"

    # --- one call ---------------------------------------------------------------------------------
    async def _call(self, job: Job, endpoint: Endpoint, retries: list[tuple[float, int, Job]]) -> None:
        request = job.request
        payload = {"model": endpoint.spec.model or self.teacher.model, "messages": request.messages}
        payload.update(self._sampling(request.attempt))
        started = self.clock()
        self.stats.calls += 1
        failure: TransportError | None = None
        try:
            async with asyncio.timeout(self.teacher.timeout_s):
                completion = await endpoint.transport.complete(payload, request.fingerprint)
        except TransportError as exc:
            failure = exc
        except TimeoutError:
            failure = TransportError("timeout", f"no reply within {self.teacher.timeout_s:g} s")
        except Exception as exc:  # noqa: BLE001 - an unexpected client error is a failed call, not a crash
            failure = TransportError("connection_error", redact(f"{type(exc).__name__}: {exc}"[:300]))
        finally:
            endpoint.inflight -= 1
            self._notify()
        now = self.clock()
        job.tries += 1
        if failure is None:
            used = completion.prompt_tokens + completion.completion_tokens
            endpoint.succeeded(job.tokens, used or job.tokens, completion.headers, now)
            self._learn(completion.prompt_tokens, completion.completion_tokens)
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
            self.deliver(request, reply, job.events)
            return
        self._failed(job, endpoint, failure, started, now, retries)

    def _failed(
        self,
        job: Job,
        endpoint: Endpoint,
        failure: TransportError,
        started: float,
        now: float,
        retries: list[tuple[float, int, Job]],
    ) -> None:
        kind = failure.kind
        self.stats.failed_calls[kind] += 1
        job.events.append(
            {
                "logged_at": datetime.now(UTC).replace(tzinfo=None),
                "fingerprint": job.request.fingerprint,
                "item_id": job.request.item.item_id,
                "attempt": job.request.attempt,
                "endpoint": endpoint.name,
                "kind": kind,
                "status": failure.status,
                "detail": failure.detail[:300] or None,
            }
        )
        final = False
        not_before = now
        if kind in ENDPOINT_FATAL:
            if endpoint.dead is None:
                log.warning("teacher endpoint %s is out of this run: %s (HTTP %s)", endpoint.name, kind, failure.status)
            endpoint.kill(f"{kind} (HTTP {failure.status}): {failure.detail[:200]}")
            job.tries -= 1  # the endpoint's fault, not the request's
        elif kind == "rate_limited":
            until = endpoint.rate_limited(retry_after_s(failure.headers), now)
            if until - now > 60:
                log.warning("teacher endpoint %s asks to wait %.0f s (rate limited)", endpoint.name, until - now)
        elif kind in TRANSIENT:
            if kind in UNHEALTHY:
                endpoint.failed(kind, now, started)
            wait = retry_after_s(failure.headers)
            if wait is None:
                wait = backoff_s(job.tries, self.teacher.backoff_s, self.teacher.backoff_max_s, self.rng)
            not_before = now + min(wait, self.teacher.backoff_max_s)
            job.avoid = endpoint.name
        else:
            final = True
        if final or job.tries > self.teacher.max_retries:
            reply = Reply(None, 0, 0, now - started, kind, endpoint=endpoint.name, tries=job.tries)
            self.deliver(job.request, reply, job.events)
        elif self.stopping:
            self.deliver(job.request, None, job.events)
        else:
            heapq.heappush(retries, (not_before, next(self._seq), job))
        self._notify()

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
