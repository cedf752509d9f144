"""The review server on the wire, through raw loopback sockets: a request smuggled inside a refused request's body
is never parsed, malformed requests get 400 (with the security headers) and lose their connection, slow bodies
get 408, oversized streamed bodies 413, and stalled connections are dropped after the header timeout without
blocking anyone else."""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from retinal_reason_data.review.server import Limits, ReviewServer
from tests.helpers.builds import copy_build
from tests.helpers.review import Visitor, call, exported_traces, recipe_over, visitor, written

WAIT = 10.0  # seconds any single read may take before the test fails (the server answers in milliseconds)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_review_build: Path) -> Path:
    """A copy of the session's review build: this module's tests may write to its catalog."""
    return copy_build(shared_review_build, tmp_path_factory.mktemp("wire"))


def start(built: Path, folder: Path, limits: Limits | None = None) -> ReviewServer:
    running = ReviewServer(recipe_over(built, folder), port=0, limits=limits or Limits())
    running.start()
    return running


@pytest.fixture
def server(built: Path, tmp_path: Path) -> Iterator[ReviewServer]:
    running = start(built, tmp_path)
    yield running
    running.close()


def connect(server: ReviewServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)


def exchange(server: ReviewServer, data: bytes) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it."""
    with connect(server) as sock:
        sock.sendall(data)
        return read_to_close(sock)


def read_to_close(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):  # a socket timeout (WAIT) fails the test: the server never closed
        received += chunk
    return received


def statuses(data: bytes) -> list[int]:
    """The status of every answer in what a connection received (an answer may follow a body without a newline)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) [A-Z]", data)]


def smuggled(server: ReviewServer, page: Visitor, item: str, generation: str) -> bytes:
    """A complete, valid verdict request: session cookie, CSRF token, origin and all (the worst case)."""
    body = json.dumps(
        {"item_id": item, "generation_id": generation, "decision": "reject", "reason": "reference_wrong"}
    ).encode()
    head = (
        f"POST /api/verdict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Origin: http://127.0.0.1:{server.port}\r\nX-RRD-Request: 1\r\nX-RRD-CSRF: {page.csrf}\r\n"
        f"Cookie: {page.cookie}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_a_request_smuggled_inside_a_refused_request_is_never_parsed(server: ReviewServer) -> None:
    page = visitor(server, "alice")
    item, generation, _ = exported_traces(server.state.recipe)[0]
    inner = smuggled(server, page, item, generation)
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    carriers = {
        # what a no-cors fetch or a text/plain form sends: the wrong type, the smuggled request as its body
        415: f"POST /api/verdict HTTP/1.1\r\n{host}Content-Type: text/plain\r\nCookie: {page.cookie}\r\n"
        f"Content-Length: {len(inner)}\r\n\r\n".encode()
        + inner,
        # JSON type but no origin
        403: f"POST /api/verdict HTTP/1.1\r\n{host}Content-Type: application/json\r\nCookie: {page.cookie}\r\n"
        f"Content-Length: {len(inner)}\r\n\r\n".encode()
        + inner,
        # announced too large, refused before a byte of the body is read
        413: f"POST /api/verdict HTTP/1.1\r\n{host}Content-Type: application/json\r\nCookie: {page.cookie}\r\n"
        f"Origin: http://127.0.0.1:{server.port}\r\nX-RRD-Request: 1\r\nX-RRD-CSRF: {page.csrf}\r\n"
        f"Content-Length: 99999999\r\n\r\n".encode()
        + inner,
        # chunked, the wrong type
        401: f"POST /api/verdict HTTP/1.1\r\n{host}Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"{len(inner):x}\r\n".encode()
        + inner
        + b"\r\n0\r\n\r\n",
    }
    for status, data in carriers.items():
        answer = exchange(server, data)
        assert statuses(answer) == [status], answer  # one answer, then the connection is closed
        assert b"\r\nconnection: close\r\n" in answer.lower()
    # a request the server answers (and keeps the connection for) still reads its body as a body
    carrier = f"GET /favicon.ico HTTP/1.1\r\n{host}Content-Length: {len(inner)}\r\n\r\n".encode() + inner
    follow_up = f"GET /favicon.ico HTTP/1.1\r\n{host}Connection: close\r\n\r\n".encode()
    assert statuses(exchange(server, carrier + follow_up)) == [204, 204]
    assert written(server) == 0

    answer = exchange(server, inner + follow_up)  # on its own the same request is accepted: framing kept it out
    assert statuses(answer) == [200, 204] and written(server) == 1


def test_malformed_requests_get_400_with_the_security_headers(server: ReviewServer) -> None:
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    malformed = {
        "Content-Length: abc": f"POST /api/verdict HTTP/1.1\r\n{host}Content-Length: abc\r\n\r\n{{}}".encode(),
        "two lengths": f"POST / HTTP/1.1\r\n{host}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}".encode(),
        "no colon": f"GET / HTTP/1.1\r\n{host}this is not a header\r\n\r\n".encode(),
        "raw non-ASCII target": f"GET /?token=\u00e9t\u00e9 HTTP/1.1\r\n{host}\r\n".encode(),
        "NUL in a header": f"GET / HTTP/1.1\r\n{host}X-A: a\x00b\r\n\r\n".encode(),
        "header of 64 KB": f"GET / HTTP/1.1\r\n{host}X-A: {'a' * 65536}\r\n\r\n".encode(),
        "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello TLS\r\n\r\n",
    }
    for name, data in malformed.items():
        answer = exchange(server, data)
        # h11 refuses a header past 16 KB that arrives in pieces (400); one that arrives whole, the server (431)
        assert statuses(answer) == [400] or (name == "header of 64 KB" and statuses(answer) == [431]), (name, answer)
        head = answer.split(b"\r\n\r\n")[0].lower()
        assert b"content-security-policy: default-src 'none'" in head and b"x-content-type-options: nosniff" in head
        assert b"connection: close" in head, name
    assert written(server) == 0


def test_a_body_that_does_not_arrive_gets_408_and_a_streamed_body_past_the_cap_413(built: Path, tmp_path: Path) -> None:
    running = start(built, tmp_path, Limits(body_timeout=1.0, max_body=4096))
    try:
        page = visitor(running, "alice")
        head = (
            f"POST /api/verdict HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\nContent-Type: application/json\r\n"
            f"Origin: http://127.0.0.1:{running.port}\r\nX-RRD-Request: 1\r\nX-RRD-CSRF: {page.csrf}\r\n"
            f"Cookie: {page.cookie}\r\n"
        )
        with connect(running) as sock:  # 100 bytes announced, 10 sent
            sock.sendall(f"{head}Content-Length: 100\r\n\r\n".encode() + b'{"item_id"')
            answer = read_to_close(sock)
        assert statuses(answer) == [408] and b"did not arrive within 1 s" in answer
        with connect(running) as sock:  # chunked (no length announced): refused once 4096 bytes have streamed in
            chunk = b"x" * 3000
            sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + b"bb8\r\n" + chunk + b"\r\n")
            sock.sendall(b"bb8\r\n" + chunk + b"\r\n")
            answer = read_to_close(sock)
        assert statuses(answer) == [413] and b"at most 4096 bytes" in answer
        assert written(running) == 0
    finally:
        running.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (the socket reads EOF or a reset) without waiting."""
    ready, _, _ = select.select([sock], [], [], 0)
    if not ready:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_stalled_connections_are_dropped_and_block_no_one(built: Path, tmp_path: Path) -> None:
    running = start(built, tmp_path, Limits(header_timeout=1.0, max_connections=64))
    stalled: list[socket.socket] = []
    try:
        for _ in range(50):  # half a header each, never finished
            sock = connect(running)
            sock.sendall(f"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\nX-Slow: ".encode())
            stalled.append(sock)
        page = visitor(running, "alice")  # meanwhile a browser works as usual
        item, generation, _ = exported_traces(running.state.recipe)[0]
        assert page.verdict(item_id=item, generation_id=generation, decision="accept")[0] == 200
        for sock in stalled:
            assert read_to_close(sock) == b""  # dropped without an answer
        # a connection that answers one request, then trickles the next header a byte at a time, is dropped too
        with connect(running) as sock:
            sock.sendall(f"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n\r\n".encode())
            assert statuses(sock.recv(65536)) == [204]
            deadline, dropped = time.monotonic() + WAIT, False
            while not dropped and time.monotonic() < deadline:
                try:
                    sock.sendall(b"G")
                except (BrokenPipeError, ConnectionResetError):
                    dropped = True
                    break
                time.sleep(0.1)
                dropped = closed_by_server(sock)
            assert dropped, "a connection trickling its header was never dropped"
    finally:
        for sock in stalled:
            sock.close()
        running.close()


def test_past_the_connection_cap_a_request_gets_503_until_stalled_ones_are_dropped(built: Path, tmp_path: Path) -> None:
    running = start(built, tmp_path, Limits(header_timeout=1.0, max_connections=8))
    stalled = []
    try:
        for _ in range(10):
            sock = connect(running)
            sock.sendall(b"GET / HTTP/1.1\r\n")
            stalled.append(sock)
        status, headers, _ = call(running, "GET", "/")
        assert status == 503 and "content-security-policy" in headers
        for sock in stalled:
            assert read_to_close(sock) == b""
        assert call(running, "GET", "/")[0] == 200
    finally:
        for sock in stalled:
            sock.close()
        running.close()
