"""uvicorn's h11 protocol with a header timeout and the security headers on its own 400 answers.

h11 frames every request by its Content-Length (or chunks): bytes inside a body are body, never a second
request, whether or not the app reads them. What uvicorn leaves open is time: a client that sends half a header
(or trickles bytes after an answer) holds its connection for ever. Here a connection must complete each
request's header within `header_timeout` seconds of connecting or of its previous answer, or it is closed.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from retinal_reason_data.review.guard import SECURITY_HEADERS


class ReviewProtocol(H11Protocol):
    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._watch_header()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_header()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_header()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        """No request in hand: the client owes the server (the rest of) a request header."""
        return self.cycle is None or self.cycle.response_complete

    def _watch_header(self) -> None:
        if self.transport.is_closing() or not self._between_requests():
            self._stop_header_timer()
        elif self._header_timer is None:  # armed once per request: trickling bytes does not extend it
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_too_slow(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.logger.info("review server: closed a connection that sent no complete header in time")
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """h11 could not parse the request (a bad Content-Length, a broken header line, ...): 400, closed."""
        headers = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS]
        headers += [
            (b"cache-control", b"no-store"),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"connection", b"close"),
        ]
        try:
            output = self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request"))
            output += self.conn.send(h11.Data(data=msg.encode("ascii")))
            output += self.conn.send(h11.EndOfMessage())
            self.transport.write(output)
        except h11.LocalProtocolError:  # an answer had already begun: nothing more can be said
            pass
        self.transport.close()


def protocol_class(header_timeout: float) -> type[ReviewProtocol]:
    """The protocol with this server's header timeout."""
    return type("ReviewProtocol", (ReviewProtocol,), {"header_timeout": header_timeout})
