"""Small text requests to the recipe's teacher endpoints (extraction checks, answer judging).

One function, `ask`, sends a few chat requests through the teacher package's transports (the same clients,
keys and endpoints as synthesis), with the recipe's concurrency, retries and backoff; it returns what came
back for each request id. Callers fingerprint and store the replies themselves, so nothing is paid twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retinal_reason_data.recipe import TeacherSpec


@dataclass(frozen=True)
class TeacherReply:
    text: str | None
    error: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def ask(spec: TeacherSpec, requests: Sequence[tuple[str, list[dict[str, Any]]]]) -> dict[str, TeacherReply]:
    """Send `(request id, messages)` pairs at temperature 0; a failed request gets its failure class."""
    if not requests:
        return {}
    return asyncio.run(_ask_all(spec, requests))


async def _ask_all(spec: TeacherSpec, requests: Sequence[tuple[str, list[dict[str, Any]]]]) -> dict[str, TeacherReply]:
    from retinal_reason_data.teacher.transports import make_transport  # the clients are imported only when used

    endpoints = spec.endpoint_specs()
    transports = [make_transport(spec.transport, endpoint, spec.timeout_s) for endpoint in endpoints]
    room = asyncio.Semaphore(spec.concurrency)
    rng = random.Random(0)

    async def one(index: int, request_id: str, messages: list[dict[str, Any]]) -> tuple[str, TeacherReply]:
        from retinal_reason_data.teacher.limits import backoff_s, retry_after_s
        from retinal_reason_data.teacher.outcomes import TRANSIENT, TransportError

        kind = "server_error"
        async with room:
            for retry in range(spec.max_retries + 1):
                slot = (index + retry) % len(transports)
                payload = {
                    "model": endpoints[slot].model or spec.model,
                    "messages": messages,
                    "temperature": 0.0,
                    "max_tokens": spec.max_tokens,
                }
                wait: float | None = None
                try:
                    async with asyncio.timeout(spec.timeout_s):
                        done = await transports[slot].complete(payload, request_id)
                except TransportError as exc:
                    kind = exc.kind
                    if kind not in TRANSIENT:
                        return request_id, TeacherReply(None, kind)
                    wait = retry_after_s(exc.headers)
                except TimeoutError:
                    kind = "timeout"
                else:
                    text = done.text if isinstance(done.text, str) and done.text.strip() else None
                    reply = TeacherReply(text, None if text else "empty", done.prompt_tokens, done.completion_tokens)
                    return request_id, reply
                delay = wait if wait is not None else backoff_s(retry + 1, spec.backoff_s, spec.backoff_max_s, rng)
                await asyncio.sleep(min(delay, spec.backoff_max_s))
        return request_id, TeacherReply(None, kind)

    try:
        results = await asyncio.gather(*(one(i, rid, messages) for i, (rid, messages) in enumerate(requests)))
    finally:
        for transport in transports:
            await transport.close()
    return dict(results)
