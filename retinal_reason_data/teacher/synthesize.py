"""The synthesis stage: ask the teacher for every attempt not yet answered, verify, commit as replies land.

Blind attempts first (the teacher does not see the answer), `attempts` per item; then, when the recipe
asks for it, `guided_attempts` per item whose blind attempts all came back and none was right: the
teacher is told the answer, the trace is marked guided and rejected if it says it was told. Every
request has a fingerprint; an attempt whose fingerprint has a reply in the catalog is never asked again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retinal_reason_data.batches import batched
from retinal_reason_data.catalog import Catalog
from retinal_reason_data.catalog.teacher import unguided_answers
from retinal_reason_data.ingest.imaging import ImageError
from retinal_reason_data.ontology import Ontology
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Case, Generation, Item
from retinal_reason_data.teacher import offline
from retinal_reason_data.teacher.backends import backend_of
from retinal_reason_data.teacher.images import data_url_or_error, image_data_url, image_token_estimate
from retinal_reason_data.teacher.outcomes import is_refusal, reveals_guidance
from retinal_reason_data.teacher.prefetch import DONE, drain
from retinal_reason_data.teacher.progress import Progress
from retinal_reason_data.teacher.prompts import (
    GUIDED_PROMPT_VERSION,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    build_messages,
    guided_fingerprint,
    guided_text,
    request_fingerprint,
    user_text,
)
from retinal_reason_data.teacher.requests import Reply, Request
from retinal_reason_data.teacher.signals import install_stop_signals
from retinal_reason_data.teacher.verify import score

__all__ = ["SynthesisReport", "SynthesisStopped", "failure_reason", "image_data_url", "synthesize", "teacher_identity"]

BATCH_ITEMS = 256
OFFLINE_COMMIT_ROWS = 256


@dataclass
class SynthesisReport:
    requests: int = 0
    cache_hits: int = 0
    verified: int = 0
    guided: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    failed_calls: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0


class SynthesisStopped(RuntimeError):
    """The stage stopped before it was done (Ctrl-C, SIGTERM, every endpoint failing, a missing key);
    every reply that arrived is committed, and a rerun resumes."""

    def __init__(self, message: str, report: SynthesisReport, exit_code: int) -> None:
        super().__init__(message)
        self.report = report
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Attempt:
    item: Item
    case: Case
    attempt: int
    fingerprint: str
    guided: bool = False


def teacher_identity(recipe: Recipe) -> tuple[str, dict[str, object]]:
    """The model name and parameters that enter every request fingerprint."""
    return backend_of(recipe).identity(recipe.teacher, recipe.seed)


def blind_fingerprints(recipe: Recipe, item: Item) -> list[str]:
    """The fingerprints of an item's blind attempts 1..k."""
    model, params = teacher_identity(recipe)
    return [request_fingerprint(model, params, item, n) for n in range(1, recipe.teacher.attempts + 1)]


def guided_fingerprints(recipe: Recipe, item: Item) -> list[str]:
    """The fingerprints of an item's guided attempts 1..g."""
    model, params = teacher_identity(recipe)
    return [guided_fingerprint(model, params, item, n) for n in range(1, recipe.teacher.guided_attempts + 1)]


def pending_attempts(
    catalog: Catalog, recipe: Recipe, report: SynthesisReport, guided: bool = False
) -> Iterator[list[Attempt]]:
    """Batches of attempts without a reply in the catalog, items grouped by case (so that a case's images
    are encoded once); answered ones are counted as cache hits. Guided attempts are wanted only for items
    whose k blind attempts all have a reply and none is verified."""
    model, params = teacher_identity(recipe)
    spec = recipe.teacher
    rows = catalog.iter_items_with_cases(by_case=True)
    for chunk in batched(rows, BATCH_ITEMS):
        if guided:
            wanted = _guided_wanted(catalog, recipe, chunk)
        else:
            wanted = [
                Attempt(item, case, n, request_fingerprint(model, params, item, n))
                for item, case in chunk
                for n in range(1, spec.attempts + 1)
            ]
        answered = catalog.answered_among([attempt.fingerprint for attempt in wanted])
        report.cache_hits += len(answered)
        missing = [attempt for attempt in wanted if attempt.fingerprint not in answered]
        if missing:
            yield missing


def _guided_wanted(catalog: Catalog, recipe: Recipe, chunk: list[tuple[Item, Case]]) -> list[Attempt]:
    model, params = teacher_identity(recipe)
    blind = {item.item_id: blind_fingerprints(recipe, item) for item, _ in chunk}
    answered = catalog.answered_among([f for fingerprints in blind.values() for f in fingerprints])
    wanted = []
    for item, case in chunk:
        replies = [answered[f] for f in blind[item.item_id] if f in answered]
        if len(replies) == recipe.teacher.attempts and not any(replies):
            wanted += [
                Attempt(item, case, n, guided_fingerprint(model, params, item, n), guided=True)
                for n in range(1, recipe.teacher.guided_attempts + 1)
            ]
    return wanted


def judge(attempt: Attempt | Request, model: str, reply: Reply) -> Generation:
    """The generation for a reply: verified, or why not (refusal, empty, missing tags, wrong answer, and
    for a guided trace, revealing that it was told the answer)."""
    item = attempt.item
    text = reply.text or ""
    extracted, verified, failure = None, False, None
    if reply.error is None:
        if is_refusal(reply.text, reply.refusal, reply.finish_reason):
            failure = "refusal"
        elif not text.strip():
            failure = "empty"
        else:
            verdict = score(item.question_type, item.answer.text, item.answer.aliases, text)
            extracted = verdict.extracted
            if extracted is None:
                failure = "truncated" if reply.finish_reason == "length" else "missing_tags"
            elif not verdict.well_formed:  # an answer, but text after </answer>, a bare \boxed{}, stray tags
                failure = "malformed_tags"
            elif not verdict.correct:
                failure = "wrong_answer"
            elif attempt.guided and reveals_guidance(text):
                failure = "reveals_guidance"
            else:
                verified = True
    return Generation(
        fingerprint=attempt.fingerprint,
        item_id=item.item_id,
        attempt=attempt.attempt,
        model=model,
        prompt_version=GUIDED_PROMPT_VERSION if attempt.guided else PROMPT_VERSION,
        response=reply.text if reply.error is None else None,
        extracted_answer=extracted,
        verified=verified,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        latency_s=round(reply.latency_s, 4),
        error=reply.error,
        failure=failure,
        guided=attempt.guided,
        finish_reason=reply.finish_reason,
        endpoint=reply.endpoint,
        tries=reply.tries,
        cost=round(reply.cost, 8),
    )


def failure_reason(generation: Generation) -> str:
    """Why an attempt does not count: its transport error, or what was wrong with the reply."""
    if generation.error:
        return generation.error
    if generation.failure:
        return generation.failure
    if generation.extracted_answer is None:
        return "missing_tags"
    return "wrong_answer"


def _count(report: SynthesisReport, generation: Generation, progress: Progress) -> None:
    report.requests += 1
    report.guided += generation.guided
    report.prompt_tokens += generation.prompt_tokens
    report.completion_tokens += generation.completion_tokens
    report.cost += generation.cost
    if generation.verified:
        report.verified += 1
    else:
        report.failed[failure_reason(generation)] += 1
    progress.update(generation.prompt_tokens + generation.completion_tokens, generation.cost, not generation.verified)


def expected_requests(catalog: Catalog, recipe: Recipe) -> int:
    """About how many blind requests are still to send (for the progress bar: items x k less the replies of
    this model to them)."""
    k = recipe.teacher.attempts
    model, _ = teacher_identity(recipe)
    return max(0, catalog.count("items") * k - unguided_answers(catalog, model, k))


def synthesize(recipe: Recipe, catalog: Catalog, ontology: Ontology) -> SynthesisReport:
    """Draft traces for every item and attempt not yet answered; a rerun sends nothing it already has."""
    report = SynthesisReport()
    started, wall_started = time.perf_counter(), datetime.now(UTC)
    model, _ = teacher_identity(recipe)
    progress = Progress(expected_requests(catalog, recipe), f"synthesize ({model})")
    try:
        backend_of(recipe).run(recipe, catalog, ontology, report, progress)
    finally:
        progress.close()
        report.seconds = time.perf_counter() - started
        catalog.bump("teacher.requests_total", report.requests)
        catalog.record_stage_run(
            "synthesize",
            started=wall_started,
            summary={
                "requests": report.requests,
                "cache_hits": report.cache_hits,
                "calls": report.calls,
                "failed_calls": dict(sorted(report.failed_calls.items())),
                "cost": round(report.cost, 6),
                "seconds": round(report.seconds, 3),
            },
        )
    return report


# --- the offline drafter ------------------------------------------------------------------------------
def synthesize_offline(
    recipe: Recipe, catalog: Catalog, ontology: Ontology, report: SynthesisReport, progress: Progress
) -> None:
    """The offline drafter's run: a templated trace for every pending attempt, committed in batches."""
    spec = recipe.teacher
    batch: list[Generation] = []
    phases = [False, True] if spec.guided_attempts else [False]
    try:
        for guided in phases:
            if guided:
                catalog.add_generations(batch)
                batch.clear()
            for missing in pending_attempts(catalog, recipe, report, guided):
                for attempt in missing:
                    error_rate = 0.0 if guided else spec.offline_error_rate
                    text = offline.draft(attempt.item, attempt.case, ontology, attempt.attempt, error_rate, recipe.seed)
                    generation = judge(attempt, offline.MODEL_NAME, Reply(text, 0, len(text.split()), 0.0, None))
                    batch.append(generation)
                    _count(report, generation, progress)
                if len(batch) >= OFFLINE_COMMIT_ROWS:
                    catalog.add_generations(batch)
                    batch.clear()
    finally:
        catalog.add_generations(batch)


# --- OpenAI-compatible endpoints ----------------------------------------------------------------------
def synthesize_remote(
    recipe: Recipe, catalog: Catalog, ontology: Ontology, report: SynthesisReport, progress: Progress
) -> None:
    """A model's run: every pending attempt through the engine (limits, retries, cache, resume)."""
    from retinal_reason_data.teacher.engine import EndpointsExhausted  # imports the clients only when used
    from retinal_reason_data.teacher.transports import MissingKey, read_key

    try:
        for endpoint in recipe.teacher.endpoint_specs():
            read_key(endpoint)
    except MissingKey as exc:
        raise SynthesisStopped(str(exc), report, exit_code=2) from None
    try:
        stopped = asyncio.run(_remote_main(recipe, catalog, report, progress))
    except EndpointsExhausted as exc:
        raise SynthesisStopped(f"{exc}\n{_kept(report)}", report, exit_code=1) from None
    if stopped:
        raise SynthesisStopped(f"interrupted; {_kept(report)}", report, exit_code=130)


def _kept(report: SynthesisReport) -> str:
    return f"{report.requests} replies of this run are committed; rerun the same command to resume"


async def _remote_main(recipe: Recipe, catalog: Catalog, report: SynthesisReport, progress: Progress) -> bool:
    """Run the blind then the guided phase; True when stopped by a signal before the end."""
    from retinal_reason_data.teacher.endpoints import Endpoint
    from retinal_reason_data.teacher.engine import Engine
    from retinal_reason_data.teacher.transports import make_transport
    from retinal_reason_data.teacher.writer import ReplyWriter

    spec = recipe.teacher
    loop = asyncio.get_running_loop()
    now = time.monotonic()
    endpoints = [
        Endpoint(spec=e, transport=make_transport(spec.transport, e), teacher=spec, now=now)
        for e in spec.endpoint_specs()
    ]
    writer = ReplyWriter(catalog)

    def deliver(request: Request, reply: Reply | None, events: list[dict[str, Any]]) -> None:
        generation = None
        if reply is not None:
            generation = judge(request, spec.model, reply)
            _count(report, generation, progress)
        writer.add(generation, events)

    engine = Engine(spec, endpoints, deliver)
    writer.on_error = lambda _exc: (engine.stop(), engine.stop("stopped: the catalog writer failed"))
    signals = install_stop_signals(loop, engine)
    pool = ThreadPoolExecutor(2, thread_name_prefix="rrd-requests")
    writer.start()
    ticker = loop.create_task(_tick(progress))
    try:
        await engine.run(_requests(catalog, recipe, report, pool, deliver, None))
        if spec.guided_attempts and not engine.stopping:
            await writer.flush()
            await engine.run(_requests(catalog, recipe, report, pool, deliver, progress))
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        ticker.cancel()
        report.calls = engine.stats.calls
        report.failed_calls = engine.stats.failed_calls
        try:
            await writer.close()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # no catalog read may outlive the stage
            for endpoint in endpoints:
                with suppress(Exception):
                    await endpoint.transport.close()
    return engine.stopping


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(0.5)
        progress.tick()


def _requests(
    catalog: Catalog,
    recipe: Recipe,
    report: SynthesisReport,
    pool: ThreadPoolExecutor,
    deliver: Any,
    guided: Progress | None,
) -> AsyncIterator[Request]:
    """The requests to send, built ahead on worker threads (catalog reads, fingerprints, image encoding)
    into a bounded queue, so the event loop only sends and receives. `guided`: the guided phase, whose
    requests are added to the progress bar's total as they are found."""
    spec = recipe.teacher
    queue: asyncio.Queue[Any] = asyncio.Queue(max(64, 2 * sum(e.concurrency or 1 for e in spec.endpoint_specs())))
    pending = pending_attempts(catalog, recipe, report, guided is not None)
    return drain(queue, _produce(pending, recipe, pool, deliver, queue, guided))


async def _produce(
    pending: Iterator[list[Attempt]],
    recipe: Recipe,
    pool: ThreadPoolExecutor,
    deliver: Any,
    queue: asyncio.Queue[Any],
    progress: Progress | None,
) -> None:
    loop = asyncio.get_running_loop()
    side = recipe.teacher.image_max_side
    image_tokens = recipe.teacher.image_tokens
    try:
        while (batch := await loop.run_in_executor(pool, next, pending, None)) is not None:
            if progress is not None:
                progress.add_total(len(batch))
            paths = sorted({image.path for attempt in batch for image in attempt.case.images})
            encoded = await asyncio.gather(*(loop.run_in_executor(pool, data_url_or_error, p, side) for p in paths))
            urls = dict(zip(paths, encoded, strict=True))
            for attempt in batch:
                case_urls = [urls[image.path] for image in attempt.case.images]
                broken = next((url for url in case_urls if isinstance(url, ImageError)), None)
                if broken is not None:
                    request = Request(attempt.fingerprint, attempt.item, attempt.attempt, [], attempt.guided)
                    deliver(request, Reply(None, 0, 0, 0.0, broken.reason), [])
                    continue
                text = guided_text(attempt.item) if attempt.guided else user_text(attempt.item)
                estimate = (len(SYSTEM_PROMPT) + len(text)) // 4 + sum(
                    image_tokens or image_token_estimate(side, image.width, image.height)
                    for image in attempt.case.images
                )
                messages = build_messages(attempt.item, case_urls, attempt.guided)  # type: ignore[arg-type]
                await queue.put(
                    Request(attempt.fingerprint, attempt.item, attempt.attempt, messages, attempt.guided, estimate)
                )
        await queue.put(DONE)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
        await queue.put(exc)
