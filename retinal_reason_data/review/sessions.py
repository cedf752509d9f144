"""Who reviews in which browser: sessions kept on the server, named by an HttpOnly, SameSite=Strict cookie.

A session is named once (its annotator) and renamed only by an explicit switch; every verdict records the
session's public id. The cookie's value is a secret the server keeps only as a SHA-256, so neither logs nor
verdict files ever hold it. The store is in memory and bounded: past `limit` sessions the least recently seen
unnamed one goes first."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class Session:
    """One browser's review session."""

    id: str  # public: written into verdicts
    csrf: str  # sent back by the page in a header on every state-changing request
    annotator: str | None = None
    seen: float = field(default_factory=time.monotonic)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """Sessions by the digest of their cookie. `first_annotator` names the first session created (the
    `--annotator` of `rrd review`); every later one starts unnamed."""

    def __init__(self, first_annotator: str | None = None, limit: int = 1000) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._first_annotator = first_annotator
        self._limit = limit
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> tuple[str, Session]:
        """A new session and the cookie value that names it."""
        secret = secrets.token_urlsafe(32)
        session = Session(id=secrets.token_hex(8), csrf=secrets.token_urlsafe(32))
        with self._lock:
            session.annotator, self._first_annotator = self._first_annotator, None
            self._sessions[_digest(secret)] = session
            while len(self._sessions) > self._limit:
                unnamed = next((k for k, s in self._sessions.items() if s.annotator is None), None)
                self._sessions.pop(unnamed if unnamed is not None else next(iter(self._sessions)))
        return secret, session

    def get(self, secret: str | None) -> Session | None:
        """The session a cookie names, or None (no cookie, or one this server did not give or has forgotten)."""
        if not secret:
            return None
        key = _digest(secret)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                session.seen = time.monotonic()
                self._sessions.move_to_end(key)
            return session

    def name(self, session: Session, annotator: str) -> None:
        with self._lock:
            session.annotator = annotator
