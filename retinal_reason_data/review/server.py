"""`rrd review`: the review page served by uvicorn (h11) over one recipe's build.

The page and its API are a Starlette app (app.py) behind a Guard (guard.py); sessions (sessions.py) bind each
browser to its annotator. Bound to the loopback by default, where no token is needed and only Host headers
naming the loopback are served; bound to any other address, a token is needed (at least 16 characters, or
generated and printed). Limits: a header must arrive within `header_timeout` seconds and a body within
`body_timeout`, bodies are capped while they stream, idle connections close after `keep_alive` seconds, and past
`max_connections` open connections a request gets 503. Every answer carries the security headers (CSP first),
uvicorn's own 400 and 503 included.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.app import build_app
from retinal_reason_data.review.bodies import ANNOTATOR_PATTERN, ANNOTATOR_RULE, MAX_BODY
from retinal_reason_data.review.guard import SECURITY_HEADERS, Policy, Refusal
from retinal_reason_data.review.protocol import protocol_class
from retinal_reason_data.review.sessions import SessionStore
from retinal_reason_data.review.state import QUEUE_PAGE, ReviewState

log = logging.getLogger(__name__)

DEFAULT_PORT = 8321
TOKEN = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")
TOKEN_RULE = "--token: 16 to 256 letters, digits, '.', '_', '~' or '-' (leave it out to have one generated)"


class SetupError(ValueError):
    """An option `rrd review` cannot start with (the message says which and why)."""


@dataclass(frozen=True)
class Limits:
    """Time and size limits of the review server (seconds, bytes, connections)."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keep_alive: int = 5
    max_connections: int = 64
    max_body: int = MAX_BODY
    shutdown_grace: int = 3


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_token(host: str, token: str | None) -> str | None:
    """The token a server on `host` requires: `token` once checked; else one generated when `host` is not the
    loopback; else none."""
    if token is not None:
        if not TOKEN.match(token):
            raise SetupError(TOKEN_RULE)
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class ReviewServer:
    """The review page and its API over one recipe's build. `annotator` names only the first browser session;
    `token` (any address but the loopback needs one; generated when not given) admits a browser once."""

    def __init__(
        self,
        recipe: Recipe,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        annotator: str | None = None,
        token: str | None = None,
        queue_page: int = QUEUE_PAGE,
        limits: Limits = Limits(),
    ) -> None:
        if annotator is not None and not re.match(ANNOTATOR_PATTERN, annotator):
            raise SetupError(f"--annotator: {ANNOTATOR_RULE}")
        token = server_token(host, token)
        self.host, self.token, self.limits = host, token, limits
        self.socket = _listen(host, port)
        self.port = self.socket.getsockname()[1]
        try:
            self.state = ReviewState(recipe, queue_page)
        except BaseException:
            self.socket.close()
            raise
        allowed = None
        if is_loopback(host) and token is None:
            names = {"127.0.0.1", "localhost", "[::1]", host if ":" not in host else f"[{host.strip('[]')}]"}
            allowed = frozenset(f"{name}:{self.port}" for name in names)
        self.policy = Policy(
            port=self.port, token=token, allowed_hosts=allowed, send_timeout=3 * limits.body_timeout,
            max_body=limits.max_body,
        )  # fmt: skip
        self.sessions = SessionStore(annotator)
        config = uvicorn.Config(
            build_app(self.state, self.sessions, self.policy, limits.body_timeout),
            http=protocol_class(limits.header_timeout),
            ws="none",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            headers=SECURITY_HEADERS,
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=limits.keep_alive,
            timeout_graceful_shutdown=limits.shutdown_grace,
        )
        config.load()
        self.uvicorn = uvicorn.Server(config)
        # the security headers from the very first answer (uvicorn sets them again on its first tick)
        self.uvicorn.server_state.default_headers = list(config.encoded_headers)
        self._thread: threading.Thread | None = None
        self._released = False

    @property
    def refusals(self) -> list[Refusal]:
        """Requests the Guard refused, oldest first (the last 1000)."""
        return list(self.policy.refusals)

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host.strip('[]')}]"
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C), then close."""
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self._release()

    def start(self, wait: float = 10.0) -> threading.Thread:
        """Serve on a background thread (tests, notebooks); returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self.uvicorn.run, kwargs={"sockets": [self.socket]}, name="rrd-review", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + wait
        while not self.uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.uvicorn.started:
            raise RuntimeError("the review server did not start")
        return self._thread

    def close(self) -> None:
        if self._thread is not None:
            self.uvicorn.should_exit = True
            self._thread.join(timeout=self.limits.shutdown_grace + 10)
            self._thread = None
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self.socket.close()
            self.state.close()


def serve(recipe: Recipe, echo: Callable[[str], None], **options: Any) -> None:
    """Run the review server until interrupted."""
    server = ReviewServer(recipe, **options)
    echo(f"reviewing {recipe.name}: {len(server.state.snapshot.entries)} traces; verdicts go to {server.state.folder}")
    echo(f"open {server.url}")
    server.serve_forever()
