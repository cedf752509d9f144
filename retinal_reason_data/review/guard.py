"""The review server's door: every request passes here before any route sees it.

- Methods other than GET, HEAD and POST: 501. On the loopback without a token, only Host headers naming the
  loopback and the server's port (no DNS rebinding).
- Sessions: the page (`/`) opens one (loopback) or the token does (`/?token=...`, any other address); every other
  path needs one. The session rides in an HttpOnly, SameSite=Strict cookie named after the port.
- State-changing requests (POST) are refused before their body is read unless they carry JSON
  (`Content-Type: application/json`), come from the page's own origin (`Origin`, and `Sec-Fetch-Site` when the
  browser sends it), carry `X-RRD-Request: 1` and the session's CSRF token in `X-RRD-CSRF`, and announce no
  more than the body cap. No page on another origin can send such a request: a form or a `no-cors` fetch
  cannot set the type or the headers, and a CORS request that sets them needs a preflight this server never
  grants.
- Every answer of 400 and above closes its connection (`Connection: close`), so a body the server did not read
  can never be taken for the next request; every answer gets `Cache-Control: no-store` unless it set its own.
  (The security headers, CSP first, are added to every answer by the HTTP server itself: see server.py.)
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import anyio
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser

from retinal_reason_data.review.bodies import MAX_BODY
from retinal_reason_data.review.sessions import Session, SessionStore

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
METHODS = ("GET", "HEAD", "POST")
MAX_HEADER = 16 * 1024  # bytes of header fields (h11 caps a header that arrives in pieces; this, one in one piece)
PAGE_PATHS = ("/", "/index.html")  # where a browser without a session gets one (loopback, no token)
OPEN_PATHS = ("/favicon.ico",)  # served without a session
REQUEST_HEADER = "x-rrd-request"  # must be "1" on a POST: a header no form and no no-cors fetch can set
CSRF_HEADER = "x-rrd-csrf"  # the session's CSRF token, which the page reads from /api/session


@dataclass(frozen=True)
class Refusal:
    """A request the door refused (kept for the log and for tests)."""

    status: int
    reason: str  # a short code: method, host, session, token, content-type, origin, ...
    method: str
    path: str


@dataclass
class Policy:
    """What the door checks: the token (None on the loopback without one), the Host headers served (None: any),
    the port (it names the cookie) and the time a client may take to read an answer."""

    port: int
    token: str | None = None
    allowed_hosts: frozenset[str] | None = None
    send_timeout: float = 30.0
    max_body: int = MAX_BODY
    refusals: deque[Refusal] = field(default_factory=lambda: deque(maxlen=1000))

    @property
    def cookie(self) -> str:
        return f"rrd_review_{self.port}"


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class Refused(Exception):
    def __init__(self, status: HTTPStatus, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (a repeated header keeps its last value, except Cookie: joined)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}; {value}" if name == "cookie" and name in headers else value
    return headers


def _same(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def json_body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


async def send_json(send: Send, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
    body = json_body(value)
    raw = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode("latin-1"), text.encode("latin-1")) for name, text in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class Guard:
    """ASGI middleware in front of the review app (see the module's docstring)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], policy: Policy, sessions: SessionStore):
        self.app = app
        self.policy = policy
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        set_cookie: list[str] = []
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if message["status"] >= 400:
                    headers["Connection"] = "close"
                for value in set_cookie:
                    headers.append("Set-Cookie", value)
            with anyio.fail_after(self.policy.send_timeout):  # a client that stops reading is dropped
                await send(message)

        try:
            scope["rrd.session"] = self._admit(scope, set_cookie)
            await self.app(scope, receive, guarded_send)
        except Redirect as redirect:
            headers = [(b"location", redirect.location.encode("latin-1")), (b"content-length", b"0")]
            await guarded_send({"type": "http.response.start", "status": 303, "headers": headers})
            await guarded_send({"type": "http.response.body", "body": b"", "more_body": False})
        except Refused as refused:
            self._note(scope, refused)
            await send_json(guarded_send, refused.status, {"error": str(refused)})
        except Exception:
            log.exception("review server: %s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                await send_json(guarded_send, 500, {"error": "server error (the server's log has the details)"})

    def _note(self, scope: Scope, refused: Refused) -> None:
        refusal = Refusal(int(refused.status), refused.reason, scope.get("method", ""), scope.get("path", ""))
        self.policy.refusals.append(refusal)
        log.info("review server refused %s %s: %s (%s)", refusal.method, refusal.path, refused, refusal.reason)

    def _admit(self, scope: Scope, set_cookie: list[str]) -> Session | None:
        """The request's session, once every check has passed; raises Refused otherwise (or to redirect)."""
        method, path, headers = scope["method"], scope["path"], _headers(scope)
        if method not in METHODS:
            raise Refused(HTTPStatus.NOT_IMPLEMENTED, "method", f"method {method} is not supported here")
        if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER:
            too_large = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            raise Refused(too_large, "header", f"request headers are at most {MAX_HEADER} bytes")
        allowed = self.policy.allowed_hosts
        if allowed is not None and headers.get("host", "") not in allowed:
            raise Refused(HTTPStatus.BAD_REQUEST, "host", "unexpected Host header")
        session = self.sessions.get(cookie_parser(headers.get("cookie", "")).get(self.policy.cookie))
        token = self.policy.token
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if token is not None and method in ("GET", "HEAD") and "token" in query:
            if not _same(query["token"], token):
                raise Refused(HTTPStatus.UNAUTHORIZED, "token", "wrong token: open the address `rrd review` printed")
            if session is None:
                secret, session = self.sessions.create()
                set_cookie.append(self._cookie(secret))
            rest = urlencode({name: value for name, value in query.items() if name != "token"})
            here = "/" + quote(path.lstrip("/"), safe="/")  # one leading slash: never `//elsewhere`
            raise Redirect(here + (f"?{rest}" if rest else ""))
        if session is None:
            session = self._new_session(method, path, headers, set_cookie)
        if method == "POST":
            self._check_post(headers, session)
        return session

    def _new_session(self, method: str, path: str, headers: dict[str, str], set_cookie: list[str]) -> Session | None:
        if path in OPEN_PATHS:
            return None
        if self.policy.token is not None:
            raise Refused(HTTPStatus.UNAUTHORIZED, "session", "open the address that `rrd review` printed")
        if path not in PAGE_PATHS or method == "POST":
            raise Refused(HTTPStatus.UNAUTHORIZED, "session", "no review session (server restarted?): reload the page")
        if headers.get("sec-fetch-dest", "document") != "document":  # an <img> or <iframe> elsewhere opens nothing
            raise Refused(HTTPStatus.FORBIDDEN, "session", "open the review page itself")
        secret, session = self.sessions.create()
        set_cookie.append(self._cookie(secret))
        return session

    def _cookie(self, secret: str) -> str:
        return f"{self.policy.cookie}={secret}; HttpOnly; SameSite=Strict; Path=/"

    def _check_post(self, headers: dict[str, str], session: Session | None) -> None:
        """A state-changing request must come from the page itself (see the module's docstring)."""
        kind, _, parameters = headers.get("content-type", "").partition(";")
        charset = dict(
            (name.strip().lower(), value.strip().strip('"').lower())
            for name, _, value in (part.partition("=") for part in parameters.split(";") if part.strip())
        ).get("charset", "utf-8")
        if kind.strip().lower() != "application/json" or charset != "utf-8":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "content-type", "send JSON (application/json, UTF-8)")
        if headers.get("sec-fetch-site", "same-origin") != "same-origin":
            raise Refused(HTTPStatus.FORBIDDEN, "fetch-site", "cross-site request refused")
        if headers.get("origin") != f"http://{headers.get('host', '')}":
            raise Refused(HTTPStatus.FORBIDDEN, "origin", "cross-origin request refused (or no Origin header)")
        if headers.get(REQUEST_HEADER) != "1":
            raise Refused(HTTPStatus.FORBIDDEN, "request-header", "the page's own requests carry X-RRD-Request: 1")
        if session is None or not _same(headers.get(CSRF_HEADER, ""), session.csrf):
            raise Refused(HTTPStatus.FORBIDDEN, "csrf", "missing or stale CSRF token: reload the page")
        length = headers.get("content-length", "0")
        if not length.isdigit():  # h11 refuses such a request before it gets here; this holds without h11 too
            raise Refused(HTTPStatus.BAD_REQUEST, "content-length", "Content-Length: a whole number of bytes")
        if int(length) > self.policy.max_body:
            limit = self.policy.max_body
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too-large", f"a request body is at most {limit} bytes")
