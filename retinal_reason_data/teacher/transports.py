"""Two clients of the OpenAI chat-completions protocol behind one small interface.

`aiohttp` (the default): a lean client of the protocol on a bare `aiohttp` session, about a quarter of the
official client's CPU per request, which caps a run at high concurrency. `openai`: the official `openai`
client (its aiohttp backend when `aiohttp` is installed).
Both raise `TransportError` with a failure class, never retry on their own (the engine does), and read
the API key once from the environment variable the recipe names; the key is held by the client only.
`answers_at_all` asks an endpoint for GET /models: whether anything answers there at all.
"""

from __future__ import annotations

import errno
import json
import os
import ssl
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


def plain_base_url(spec: EndpointSpec) -> str:
    """The base URL without a trailing slash and without user:password (sent as a header instead)."""
    parts = urlsplit(spec.base_url.rstrip("/"))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def with_reasoning(content: str | None, reasoning: object) -> str | None:
    """The reply text; a reasoning server's separate reasoning (vLLM's reasoning parser, DeepSeek's
    `reasoning_content`) goes back inside <think></think> when the content has no think block of its own."""
    if not isinstance(reasoning, str) or not reasoning.strip() or (content and "<think>" in content.lower()):
        return content
    return f"<think>\n{reasoning.strip()}\n</think>\n{(content or '').strip()}"


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


def server_message(body: object) -> str | None:
    """The `error.message` of an OpenAI-style error body (bytes, or the client's parsed object)."""
    if isinstance(body, bytes):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        return message if isinstance(message, str) and message.strip() else None
    return None


def connection_cause(exc: BaseException | None) -> str | None:
    """What a failed connection was, from the exception and its causes: 'refused', 'no_host' (the name
    does not resolve), 'closed' (dropped without a reply), 'tls'; None when none of these."""
    import socket

    import aiohttp

    seen = 0
    while exc is not None and seen < 8:
        seen += 1
        if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
            return "no_host"
        if isinstance(exc, ssl.SSLError | aiohttp.ClientSSLError):
            return "tls"
        if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
            return "refused"
        os_error = getattr(exc, "os_error", None)
        if isinstance(os_error, ConnectionRefusedError):
            return "refused"
        if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError | BrokenPipeError):
            return "closed"
        name = type(exc).__name__
        if name in ("RemoteProtocolError", "ServerDisconnectedError"):  # httpx's and others' dropped connections
            return "closed"
        exc = exc.__cause__ or exc.__context__
    return None


async def answers_at_all(spec: EndpointSpec, timeout_s: float) -> str | None:
    """None when GET {base_url}/models gets any HTTP answer within `timeout_s` (a 401 or 404 too: something
    answers); otherwise what happened instead ('no answer within 5 s', 'connection refused')."""
    import aiohttp

    headers = _auth_headers(spec, read_key(spec))
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(plain_base_url(spec) + "/models", headers=headers, params=spec.query or None) as response,
        ):
            await response.read()
            return None
    except TimeoutError:
        return f"no answer to GET /models within {timeout_s:g} s either"
    except (aiohttp.ClientError, OSError) as exc:
        cause = connection_cause(exc)
        return {"refused": "connection refused", "closed": "connection closed without a reply"}.get(
            cause or "", f"GET /models failed: {type(exc).__name__}"
        )


def make_transport(kind: str, spec: EndpointSpec, timeout_s: float | None = None) -> Transport:
    """A client for one endpoint; `kind` is the recipe's `teacher.transport`. The engine holds every call to
    the endpoint's timeout (`timeout_s`, else the spec's); the client's own timeout is a looser backstop, so
    that a timeout always reads the same."""
    key = read_key(spec)
    timeout_s = (timeout_s or spec.timeout_s or 120.0) * 1.5 + 1.0
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
            base_url=plain_base_url(spec),
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
            # the messages go in `extra_body`, which the client merges into the JSON as they are: given as
            # `messages`, the client walks every part of them against its type hints first (about 40% of its
            # CPU time per request); the body that reaches the server is the same
            fields = {key: value for key, value in payload.items() if key != "messages"}
            raw = await self._client.chat.completions.with_raw_response.create(
                messages=[],
                **fields,
                extra_body={"messages": payload["messages"]},
                extra_headers={"x-client-request-id": request_id},
            )
            completion = raw.parse()
        except openai.APIStatusError as exc:
            raise TransportError(
                status_kind(exc.status_code),
                self._detail(server_message(exc.body) or exc),
                exc.status_code,
                exc.response.headers,
            ) from None
        except openai.APITimeoutError as exc:
            # the aiohttp backend reports refused and dropped connections as timeouts: look at the cause
            kind = _timeout_or_connection(exc)
            cause = connection_cause(exc.__cause__) if kind == "connection_error" else None
            raise TransportError(kind, self._detail(exc.__cause__ or exc), cause=cause) from None
        except openai.APIConnectionError as exc:
            detail = self._detail(exc.__cause__ or exc)
            raise TransportError("connection_error", detail, cause=connection_cause(exc.__cause__)) from None
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
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
        return Completion(
            with_reasoning(getattr(message, "content", None), reasoning),
            getattr(message, "refusal", None),
            choices[0].finish_reason,
            prompt_tokens,
            completion_tokens,
            raw.headers,
        )

    def _detail(self, exc: BaseException | str) -> str:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return redact(text[:300], [self._key])

    async def close(self) -> None:
        await self._client.close()


_PLACEHOLDER = "\x00image\x00"
_ENCODED_URLS: dict[str, bytes] = {}
_ENCODED_MAX_URLS = 256
_ENCODED_MAX_BYTES = 64 << 20  # the URL and its bytes are held twice: a release's full-size images are MBs each
_encoded_bytes = 0


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The JSON body of a request, with each image data URL spliced in from a cache of its encoded bytes.

    A data URL is 50-200 kB and is shared (the same string object) by every request that shows its image;
    `json.dumps` would scan it on every request (about 1 ms), splicing copies it (about 20 us). Base64 and
    the `data:image/jpeg;base64,` prefix need no JSON escaping. The cache holds at most 256 URLs and 64 MB."""
    global _encoded_bytes
    urls: list[str] = []
    messages = []
    for message in payload["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                url = part.get("image_url", {}).get("url") if part.get("type") == "image_url" else None
                if isinstance(url, str) and (url in _ENCODED_URLS or _spliceable(url)):
                    urls.append(url)
                    part = {**part, "image_url": {**part["image_url"], "url": _PLACEHOLDER}}
                parts.append(part)
            message = {**message, "content": parts}
        messages.append(message)
    skeleton = json.dumps({**payload, "messages": messages}).encode()
    if not urls:
        return skeleton
    pieces = skeleton.split(b"\\u0000image\\u0000")
    body = [pieces[0]]
    for url, piece in zip(urls, pieces[1:], strict=True):
        encoded = _ENCODED_URLS.get(url)
        if encoded is None:
            if len(_ENCODED_URLS) >= _ENCODED_MAX_URLS or _encoded_bytes + len(url) > _ENCODED_MAX_BYTES:
                _ENCODED_URLS.clear()
                _encoded_bytes = 0
            encoded = _ENCODED_URLS[url] = url.encode("ascii")
            _encoded_bytes += len(encoded)
        body += [encoded, piece]
    return b"".join(body)


def _spliceable(url: str) -> bool:
    """A data URL that JSON would write as it is (checked once per URL: the cache remembers the rest)."""
    return url.startswith("data:") and url.isascii() and '"' not in url and "\\" not in url and url.isprintable()


class AiohttpTransport:
    """The chat-completions protocol on a bare aiohttp session: one JSON POST, one JSON reply."""

    def __init__(self, spec: EndpointSpec, key: str, timeout_s: float) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._key = key
        self._url = plain_base_url(spec) + "/chat/completions"
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
                self._url, data=encode_payload(payload), headers=headers, params=self._query
            ) as response:
                body = await response.read()
                status, response_headers = response.status, response.headers
        except TimeoutError:
            raise TransportError("timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError("connection_error", self._detail(exc), cause=connection_cause(exc)) from None
        if status >= 400:
            detail = self._detail(server_message(body) or body.decode(errors="replace"))
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
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = "".join(part.get("text") or "" for part in content if isinstance(part, dict))
            return Completion(
                with_reasoning(content, message.get("reasoning_content") or message.get("reasoning")),
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
