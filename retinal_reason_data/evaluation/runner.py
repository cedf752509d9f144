"""Sending a release's samples through the request engine, every reply into the journal as it lands.

The samples are read, fingerprinted and turned into messages on a worker thread, a batch at a time, into a
bounded queue, so memory holds a batch and the requests in flight whatever the size of the split, and the event
loop only sends and receives. An attempt whose fingerprint has a reply in the journal is not sent again; one whose
images cannot be decoded is set aside with its id and the reason. The engine (teacher/engine.py) brings the
limits, retries with backoff, stall checks and the graceful stop on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from retinal_reason_data.evaluation.journal import Journal
from retinal_reason_data.evaluation.messages import (
    ImageUnreadable,
    build_messages,
    fingerprint,
    image_digests,
    prompt_tokens_estimate,
)
from retinal_reason_data.evaluation.release_samples import Release, ReleaseInputError
from retinal_reason_data.evaluation.samples import Sample
from retinal_reason_data.evaluation.scorers import SCORERS
from retinal_reason_data.recipe import TeacherSpec
from retinal_reason_data.schema import Item
from retinal_reason_data.teacher.prefetch import DONE, drain
from retinal_reason_data.teacher.progress import Progress
from retinal_reason_data.teacher.requests import Reply, Request, sent_params

PLAN_BATCH = 16  # samples read and prepared per step of the worker thread


@dataclass(frozen=True, slots=True)
class Planned:
    """A sample as the run keeps it once its requests are made: what a row needs, without the image bytes."""

    sample_id: str
    case_id: str
    source: str
    task: str
    question_type: str
    modality: str
    answer: str
    ground_truth: str
    scorer: str
    fingerprints: tuple[str, ...]  # by attempt, 1..K


@dataclass
class Plan:
    """What reading the release found: the samples planned, those set aside, the attempts already answered."""

    samples: list[Planned] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sample id, why its images cannot be sent)
    cached: int = 0
    to_send: int = 0


@dataclass
class SendReport:
    stopped: bool = False
    calls: int = 0
    failed_calls: Counter[str] = field(default_factory=Counter)
    replies: int = 0


def planned(sample: Sample, fingerprints: list[str]) -> Planned:
    return Planned(
        sample.sample_id,
        sample.case_id,
        sample.source,
        sample.task,
        sample.question_type,
        sample.modality,
        sample.answer,
        sample.ground_truth,
        sample.scorer,
        tuple(fingerprints),
    )


def minimal_item(sample: Sample, digests: list[str]) -> Item:
    """The engine's requests carry an Item (it logs its id with every failed call): the sample's ids and image
    hashes, unvalidated (every field given: a default factory costs pydantic a signature lookup per object)."""
    return Item.model_construct(
        item_id=sample.sample_id,
        case_id=sample.case_id,
        question=sample.prompt,
        options=[],
        image_shas=digests,
        captions=[],
    )


def plan_batches(
    release: Release, spec: TeacherSpec, journal: Journal, plan: Plan, image_max_side: int | None
) -> Iterator[list[Request]]:
    """The requests still to send, a batch of samples at a time (run on a worker thread); fills `plan`."""
    params = {attempt: sent_params(spec, attempt) for attempt in range(1, spec.attempts + 1)}
    batch: list[Request] = []
    for count, sample in enumerate(release.samples(), 1):
        if sample.scorer not in SCORERS:
            raise ReleaseInputError(
                f"sample {sample.sample_id}: no scorer {sample.scorer!r} (known: {', '.join(SCORERS)})"
            )
        digests = image_digests(sample)
        fingerprints = [fingerprint(spec.model, params[n], sample, digests, n, image_max_side) for n in params]
        missing = [(n, f) for n, f in zip(params, fingerprints, strict=True) if not journal.answered(f)]
        if missing:
            try:
                messages = build_messages(sample, image_max_side)
            except ImageUnreadable as exc:
                plan.skipped.append((sample.sample_id, str(exc)))
                continue
            item = minimal_item(sample, digests)
            estimate = prompt_tokens_estimate(sample)
            batch += [Request(f, item, n, messages, prompt_tokens_estimate=estimate) for n, f in missing]
        plan.samples.append(planned(sample, fingerprints))
        plan.cached += len(fingerprints) - len(missing)
        plan.to_send += len(missing)
        if count % PLAN_BATCH == 0 and batch:
            yield batch
            batch = []
    if batch:
        yield batch


def reply_entry(request: Request, reply: Reply, events: list[dict[str, Any]], secrets: list[str]) -> dict[str, Any]:
    """The journal line of a reply (or of a call that failed after its retries, with what the server said last)."""
    from retinal_reason_data.teacher.outcomes import redact

    text = reply.text if reply.text is not None else (reply.refusal or "")
    detail = next((event["detail"] for event in reversed(events) if event.get("detail")), None)
    return {
        "fingerprint": request.fingerprint,
        "sample_id": request.item.item_id,
        "attempt": request.attempt,
        "response": None if reply.error else text,
        "error": reply.error,
        "detail": redact(detail, secrets) if reply.error and detail else None,
        "finish_reason": reply.finish_reason,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "latency_s": round(reply.latency_s, 4),
        "tries": reply.tries,
        "endpoint": reply.endpoint,
    }


def send(
    release: Release,
    spec: TeacherSpec,
    journal: Journal,
    plan: Plan,
    image_max_side: int | None,
    progress: Progress,
) -> SendReport:
    """Send every attempt not yet in the journal; returns when all are answered or the run was stopped. Raises
    teacher.engine.EndpointsExhausted when every endpoint failed (what landed is kept)."""
    report = SendReport()
    asyncio.run(_main(release, spec, journal, plan, image_max_side, progress, report))
    return report


async def _main(
    release: Release,
    spec: TeacherSpec,
    journal: Journal,
    plan: Plan,
    image_max_side: int | None,
    progress: Progress,
    report: SendReport,
) -> None:
    import time

    from retinal_reason_data.teacher.endpoints import Endpoint
    from retinal_reason_data.teacher.engine import Engine
    from retinal_reason_data.teacher.signals import install_stop_signals
    from retinal_reason_data.teacher.transports import make_transport

    loop = asyncio.get_running_loop()
    endpoints = [
        Endpoint(spec=e, transport=make_transport(spec.transport, e), teacher=spec, now=time.monotonic())
        for e in spec.endpoint_specs()
    ]
    secrets = [os.environ.get(e.api_key_env, "") for e in spec.endpoint_specs() if e.api_key_env]

    def deliver(request: Request, reply: Reply | None, events: list[dict[str, Any]]) -> None:
        if reply is None:  # stopped before it was answered: asked again on the next run
            return
        journal.add(reply_entry(request, reply, events, secrets))
        report.replies += 1
        progress.update(reply.prompt_tokens + reply.completion_tokens, reply.cost, reply.error is not None)

    engine = Engine(spec, endpoints, deliver)
    signals = install_stop_signals(loop, engine)
    pool = ThreadPoolExecutor(1, thread_name_prefix="rrd-eval-requests")
    batches = plan_batches(release, spec, journal, plan, image_max_side)
    ticker = loop.create_task(_tick(progress))
    try:
        await engine.run(_requests(batches, pool, progress, max(32, spec.concurrency // 2)))
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        ticker.cancel()
        report.stopped = engine.stopping
        report.calls, report.failed_calls = engine.stats.calls, engine.stats.failed_calls
        pool.shutdown(wait=True, cancel_futures=True)
        for endpoint in endpoints:
            with suppress(Exception):
                await endpoint.transport.close()


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(0.5)
        progress.tick()


def _requests(
    batches: Iterator[list[Request]], pool: ThreadPoolExecutor, progress: Progress, bound: int
) -> AsyncIterator[Request]:
    """The requests, prepared ahead on the worker thread into a queue of `bound` (images are held once sent)."""
    queue: asyncio.Queue[Any] = asyncio.Queue(bound)
    return drain(queue, _produce(batches, pool, progress, queue))


async def _produce(
    batches: Iterator[list[Request]], pool: ThreadPoolExecutor, progress: Progress, queue: asyncio.Queue[Any]
) -> None:
    loop = asyncio.get_running_loop()
    try:
        while (batch := await loop.run_in_executor(pool, next, batches, None)) is not None:
            progress.add_total(len(batch))
            for request in batch:
                await queue.put(request)
        await queue.put(DONE)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
        await queue.put(exc)
