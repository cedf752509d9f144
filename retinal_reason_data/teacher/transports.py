"""Two clients of the OpenAI chat-completions protocol behind one small interface.

`openai`: the official `openai` client (its aiohttp transport when `aiohttp` is installed), the default.
`aiohttp`: a lean client of the same protocol on a bare `aiohttp` session, for self-hosted endpoints at
high concurrency, where the official client's own work per request (several ms of CPU) caps a run.
Both raise `TransportError` with a failure class, never retry on their own (the engine does), and read
the API key once from the environment variable the recipe names; the key is held by the client only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from retinal_reason_data.recipe import EndpointSpec
from retinal_reason_data.teacher.outcomes import TransportError, redact, status_kind


@dataclass(frozen=True, slots=True)
class Completion:
    """The parts of a chat completion the engine uses."""

    text: str | None
    refusal: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    headers: Mapping[str, str] | None


class Transport(Protocol):
    async def complete(self, payload: dict[str, Any], request_id: str) -> Completion: ...

    async def close(self) -> None: ...


class MissingKey(RuntimeError):
    """The recipe names an environment variable for the key and it is not set."""


def endpoint_name(spec: EndpointSpec) -> str:
    """A label for reports: the recipe's name, or host:port of the URL (never credentials)."""
    if spec.name:
        return spec.name
    parts = urlsplit(spec.base_url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "endpoint"


def read_key(spec: EndpointSpec) -> str:
    """The API key from the named environment variable ('' for endpoints without one)."""
    if not spec.api_key_env:
        return ""
    key = os.environ.get(spec.api_key_env, "")
    if not key:
        raise MissingKey(
            f"teacher endpoint {endpoint_name(spec)}: environment variable {spec.api_key_env} is not set "
            "(the recipe's api_key_env names the variable that holds the API key)"
        )
    return key


def _auth_headers(spec: EndpointSpec, key: str) -> dict[str, str]:
    if not key:
        return {}
    if spec.api_key_header and spec.api_key_header.lower() != "authorization":
        return {spec.api_key_header: key}
    return {"Authorization": f"Bearer {key}"}


def _base_url(spec: EndpointSpec) -> str:
    """The base URL without a trailing slash and without user:password (sent as a header instead)."""
    parts = urlsplit(spec.base_url.rstrip("/"))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _timeout_or_connection(exc: BaseException) -> str:
    """'timeout' when a real timeout is behind `exc`, 'connection_error' when a refused or dropped one is."""
    import aiohttp

    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return "timeout"
        if isinstance(cause, OSError | aiohttp.ClientConnectionError):
            return "connection_error"
        cause = cause.__cause__ or cause.__context__
    return "timeout"


def make_transport(kind: str, spec: EndpointSpec, timeout_s: float) -> Transport:
    """A client for one endpoint; `kind` is the recipe's `teacher.transport`."""
    key = read_key(spec)
    if kind == "aiohttp":
        return AiohttpTransport(spec, key, timeout_s)
    return OpenAITransport(spec, key, timeout_s)


class OpenAITransport:
    """The official `openai` client, with retries off (the engine retries across endpoints)."""

    def __init__(self, spec: EndpointSpec, key: str, timeout_s: float) -> None:
        import openai

        self._openai = openai
        self._key = key
        http_client: Any = None
        try:
            http_client = openai.DefaultAioHttpClient(timeout=timeout_s)
        except (RuntimeError, AttributeError):  # no aiohttp extra, or an openai without it: httpx it is
            http_client = None
        extra_headers = _auth_headers(spec, key) if spec.api_key_header else {}
        self._client = openai.AsyncOpenAI(
            base_url=_base_url(spec),
            api_key=key if key and not spec.api_key_header else "not-needed",
            timeout=timeout_s,
            max_retries=0,
            default_headers=extra_headers or None,
            default_query=spec.query or None,
            http_client=http_client,
        )

    async def complete(self, payload: dict[str, Any], request_id: str) -> Completion:
        openai = self._openai
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                **payload, extra_headers={"x-client-request-id": request_id}
            )
            completion = raw.parse()
        except openai.APIStatusError as exc:
            raise TransportError(
                status_kind(exc.status_code), self._detail(exc), exc.status_code, exc.response.headers
            ) from None
        except openai.APITimeoutError as exc:
            # the aiohttp backend reports refused and dropped connections as timeouts: look at the cause
            raise TransportError(_timeout_or_connection(exc), self._detail(exc.__cause__ or exc)) from None
        except openai.APIConnectionError as exc:
            raise TransportError("connection_error", self._detail(exc.__cause__ or exc)) from None
        except (openai.APIResponseValidationError, ValueError, TypeError) as exc:
            raise TransportError("malformed_response", self._detail(exc)) from None
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list):
            raise TransportError("malformed_response", "no choices list in the reply")
        usage = getattr(completion, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        if not choices:
            return Completion(None, None, None, prompt_tokens, completion_tokens, raw.headers)
        message = choices[0].message
        return Completion(
            getattr(message, "content", None),
            getattr(message, "refusal", None),
            choices[0].finish_reason,
            prompt_tokens,
            completion_tokens,
            raw.headers,
        )

    def _detail(self, exc: BaseException) -> str:
        return redact(f"{type(exc).__name__}: {exc}"[:300], [self._key])

    async def close(self) -> None:
        await self._client.close()


class AiohttpTransport:
    """The chat-completions protocol on a bare aiohttp session: one JSON POST, one JSON reply."""

    def __init__(self, spec: EndpointSpec, key: str, timeout_s: float) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._key = key
        self._url = _base_url(spec) + "/chat/completions"
        self._query = spec.query or None
        self._headers = {"Content-Type": "application/json", **_auth_headers(spec, key)}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: Any = None

    async def complete(self, payload: dict[str, Any], request_id: str) -> Completion:
        aiohttp = self._aiohttp
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        headers = {**self._headers, "x-client-request-id": request_id}
        try:
            async with self._session.post(
                self._url, data=json.dumps(payload), headers=headers, params=self._query
            ) as response:
                body = await response.read()
                status, response_headers = response.status, response.headers
        except TimeoutError:
            raise TransportError("timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError("connection_error", self._detail(exc)) from None
        if status >= 400:
            detail = self._detail(body.decode(errors="replace"))
            raise TransportError(status_kind(status), detail, status, response_headers)
        try:
            data = json.loads(body)
            choices = data["choices"]
            usage = data.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            if not choices:
                return Completion(None, None, None, prompt_tokens, completion_tokens, response_headers)
            choice = choices[0]
            message = choice.get("message") or {}
            return Completion(
                message.get("content"),
                message.get("refusal"),
                choice.get("finish_reason"),
                prompt_tokens,
                completion_tokens,
                response_headers,
            )
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise TransportError("malformed_response", self._detail(exc)) from None

    def _detail(self, exc: BaseException | str) -> str:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return redact(text[:300], [self._key])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
