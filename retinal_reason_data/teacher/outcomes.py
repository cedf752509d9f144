"""Failure classes of teacher requests and replies, and the checks that find them.

Transport failures (no reply came back; the request is retried, and asked again on a rerun):
`rate_limited`, `server_error`, `timeout`, `connection_error`, `malformed_response`, `bad_request`,
and the endpoint-level `auth_error` and `not_found` (a wrong key, URL or model name: the endpoint is
taken out of the run); `cancelled` is a call abandoned in flight (the run stopped, or its endpoint stopped
answering), logged with the reason. Reply failures (the teacher answered and was paid; the attempt counts
and is not asked again): `empty`, `refusal`, `missing_tags` (`truncated` when the reply hit max_tokens
first), `malformed_tags` (an answer, but not in the <think>/<answer> layout: text after `</answer>`, a bare
`\boxed{}`), `wrong_answer`, and `reveals_guidance` for a guided trace that says it was told the answer.
`in_words` says a failed call the way a user can act on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

TRANSIENT = frozenset({"rate_limited", "server_error", "timeout", "connection_error", "malformed_response"})
ENDPOINT_FATAL = frozenset({"auth_error", "not_found"})
UNHEALTHY = frozenset({"server_error", "timeout", "connection_error"})


class TransportError(Exception):
    """A request that got no usable reply; `kind` is its failure class, `cause` what a connection error
    was when it is known ('refused', 'no_host', 'closed', 'tls')."""

    def __init__(
        self,
        kind: str,
        detail: str = "",
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.headers = headers
        self.cause = cause


_STATUS_NAMES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout"}
_STATUS_NAMES |= {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
_STATUS_NAMES |= {503: "Service Unavailable", 504: "Gateway Timeout"}


def in_words(
    failure: TransportError, url: str, key_env: str | None = None, model: str | None = None, timeout_s: float = 0
) -> str:
    """A failed call as a user can act on it: 'connection refused at URL', 'no reply within 120 s (timeout)
    from URL', '401 Unauthorized from URL: check TEACHER_API_KEY'."""
    kind, status = failure.kind, failure.status
    code = f"{status} {_STATUS_NAMES.get(status, 'error')}" if status else None
    detail = failure.detail.strip()
    if kind == "auth_error":
        hint = f"check {key_env}" if key_env else "it wants a key: set api_key_env to the variable that holds it"
        return f"{code} from {url}: {hint}"
    if kind == "not_found":
        return f"{code} from {url}: check base_url (it usually ends in /v1) and the model name {model!r}"
    if kind == "timeout" and status is None:
        return f"no reply within {timeout_s:g} s (timeout) from {url}"
    if kind == "connection_error":
        if failure.cause == "refused":
            return f"connection refused at {url}: is the server running, on that port?"
        if failure.cause == "no_host":
            return f"host not found: {url}"
        if failure.cause == "closed":
            return f"{url} closed the connection without a reply"
        if failure.cause == "tls":
            return f"TLS handshake failed with {url}: {detail[:160]}"
        return f"cannot connect to {url}: {detail[:160]}"
    if kind == "rate_limited":
        return f"{code} from {url}: lower its concurrency, rpm or tpm"
    if kind == "malformed_response":
        return f"{url} answered with something that is not a chat completion ({detail[:160]})"
    if kind == "unresponsive":
        return f"{url} accepts connections but does not answer: {detail}"
    if kind == "cancelled":
        return f"call to {url} cancelled: {detail}"
    return f"{code or kind} from {url}" + (f": {detail[:160]}" if detail else "")


def status_kind(status: int) -> str:
    """The failure class of an HTTP error status."""
    if status == 429:
        return "rate_limited"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth_error"
    if status == 404:
        return "not_found"
    return "bad_request"


_REFUSAL = re.compile(
    r"\b(?:I'?m\s+sorry|I\s+am\s+sorry|I\s+apologi[sz]e|unfortunately)?[\s,.]*(?:but\s+)?"
    r"I\s+(?:can(?:'|no)?t|cannot|am\s+(?:not\s+able|unable)\s+to|won'?t|must\s+decline\s+to)\s+"
    r"(?:help|assist|provide|comply|answer|analy[sz]e|interpret|diagnose|give|offer|do\s+that)",
    re.IGNORECASE,
)


def is_refusal(text: str | None, refusal: str | None, finish_reason: str | None) -> bool:
    """The provider's refusal field, its content filter, or an untagged reply that declines to answer."""
    if refusal or finish_reason == "content_filter":
        return True
    if not text or "<answer>" in text.lower():
        return False
    return _REFUSAL.search(text[:400]) is not None


_REVEALS = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\b(?:given|provided|supplied|stated|expected|reference|target|known)\s+(?:correct\s+)?answer\b",
        r"\banswer\s+(?:was|is|has\s+been|had\s+been)\s+(?:already\s+)?(?:given|provided|supplied|stated|told|revealed)",
        r"\b(?:I|we)\s+(?:was|were|am|are|have\s+been|had\s+been)\s+(?:told|given|informed|shown)\b",
        r"\b(?:you|the\s+prompt|the\s+user|the\s+instructions?|the\s+task)\s+(?:told|tells|says|said|states|stated|"
        r"gave|gives|indicates|indicated|revealed|reveals)\b[^.]{0,60}\banswer\b",
        r"\banswer\s+key\b",
        r"\bfor\s+teaching\s+purposes\b",
        r"\bwork(?:ing|ed)?\s+backwards?\b",
        r"\bjustify\s+(?:the|this)\s+(?:given\s+|provided\s+)?answer\b",
        r"\bas\s+(?:instructed|stated\s+in\s+the\s+(?:prompt|question|instructions?))\b",
        r"\bwithout\s+(?:mentioning|saying|revealing)\s+(?:that\s+)?(?:the\s+answer|I\s+was)",
    )
]


def reveals_guidance(text: str) -> bool:
    """True when a guided trace gives away that the answer was handed to it."""
    return any(pattern.search(text) for pattern in _REVEALS)


_SECRET_LIKE = re.compile(r"\b(?:sk|pk|rk|hf|key)[-_][A-Za-z0-9*_\-]{6,}", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every given secret, and anything shaped like an API key, replaced by '***'."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _SECRET_LIKE.sub("***", text)
