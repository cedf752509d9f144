"""Requests to any OpenAI-compatible endpoint (vLLM, SGLang, OpenAI, ...) with bounded concurrency."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Iterator

import openai

from retinal_reason_data.recipe import TeacherSpec
from retinal_reason_data.teacher.requests import Reply, Request, generation_params


def classify(exc: BaseException) -> str:
    """A short failure class for a request error."""
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APITimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error"
    if isinstance(exc, openai.InternalServerError) or (
        isinstance(exc, openai.APIStatusError) and exc.status_code >= 500
    ):
        return "server_error"
    if isinstance(exc, openai.APIStatusError):
        return f"http_{exc.status_code}"
    return "malformed_response"


def make_client(spec: TeacherSpec) -> openai.AsyncOpenAI:
    """An AsyncOpenAI client; the key is read from the named environment variable and kept nowhere else."""
    api_key = os.environ.get(spec.api_key_env, "") if spec.api_key_env else ""
    return openai.AsyncOpenAI(
        base_url=spec.base_url, api_key=api_key or "not-needed", timeout=spec.timeout_s, max_retries=2
    )


async def ask(client: openai.AsyncOpenAI, spec: TeacherSpec, request: Request) -> Reply:
    """Send one request and describe what came back; never raises for a failed request."""
    started = time.perf_counter()
    try:
        completion = await client.chat.completions.create(
            model=spec.model,
            messages=request.messages,
            **generation_params(spec),  # type: ignore[arg-type]
        )
    except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
        return Reply(None, 0, 0, time.perf_counter() - started, classify(exc))
    latency = time.perf_counter() - started
    usage = getattr(completion, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    choices = getattr(completion, "choices", None) or []
    if not choices:
        return Reply(None, prompt_tokens, completion_tokens, latency, "empty")
    text = getattr(choices[0].message, "content", None)
    if not text or not text.strip():
        return Reply(None, prompt_tokens, completion_tokens, latency, "empty")
    return Reply(text, prompt_tokens, completion_tokens, latency, None)


async def run_requests(
    spec: TeacherSpec,
    requests: Iterable[Request],
    on_reply: Callable[[Request, Reply], None],
) -> None:
    """Send every request with `spec.concurrency` workers pulling from one lazy iterator (bounded memory);
    `on_reply` runs as each reply lands, so it is committed before the next request of that worker."""
    pending: Iterator[Request] = iter(requests)
    client = make_client(spec)

    async def worker() -> None:
        for request in pending:
            on_reply(request, await ask(client, spec, request))

    try:
        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    finally:
        await client.close()
