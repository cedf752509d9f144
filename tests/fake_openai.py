"""An OpenAI-compatible chat-completions server on 127.0.0.1 for tests and benchmarks.

Real HTTP/1.1 with keep-alive on an asyncio event loop (thousands of concurrent connections, no thread per
connection), so the real `openai` client and any other OpenAI-compatible client can be pointed at it.
Faults can be injected in arrival order (`inject`) or by rule (`fault_rule`): HTTP errors with and
without `Retry-After`, dropped connections, slow responses, requests never answered (`hang`), invalid
JSON, empty choices, refusals and arbitrary assistant text. `SilentServer` is a server that accepts
connections and never answers anything (a hung process, a dead backend behind a proxy). Run it alone
(benchmarks) with `python tests/fake_openai.py --latency 0.2`: it prints `PORT <n>` and serves until stdin
closes (`--silent`: the silent server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Responder = Callable[[dict[str, Any]], str]
FaultRule = Callable[[dict[str, Any], dict[str, str]], "Fault | None"]

DEFAULT_TEXT = (
    "<think>Step 1: This is a colour fundus photograph.\nStep 2: I weighed every option against what I see."
    "</think><answer>A</answer>"
)
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}


@dataclass(frozen=True)
class Fault:
    """What the server does instead of (or before) a normal reply."""

    kind: str  # status drop slow invalid_json empty_choices refusal content_filter text truncated reasoning
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def http_error(status: int, retry_after: float | str | None = None, **headers: str) -> Fault:
    """An HTTP error status (429, 500, 503, 401...), with a Retry-After header when given."""
    after = None if retry_after is None else str(retry_after)
    return Fault("status", status=status, retry_after=after, headers=headers)


def drop() -> Fault:
    """Close the connection after reading the request, without a response."""
    return Fault("drop")


def slow(delay_s: float) -> Fault:
    """Answer normally, but only after `delay_s` seconds (beyond a client's timeout)."""
    return Fault("slow", delay_s=delay_s)


def hang() -> Fault:
    """Read the request and never answer it (the connection stays open until the client gives up)."""
    return Fault("hang")


def invalid_json() -> Fault:
    return Fault("invalid_json")


def empty_choices() -> Fault:
    return Fault("empty_choices")


def refusal(text: str = "I'm sorry, but I can't help with that request.") -> Fault:
    """A reply whose message carries the `refusal` field, as OpenAI's API reports refusals."""
    return Fault("refusal", text=text)


def content_filter() -> Fault:
    """A reply stopped by the provider's content filter (finish_reason 'content_filter', no content)."""
    return Fault("content_filter")


def text(content: str) -> Fault:
    """A normal reply with this assistant text instead of the responder's (e.g. with missing tags)."""
    return Fault("text", text=content)


def truncated(content: str) -> Fault:
    """A reply cut off at max_tokens (finish_reason 'length')."""
    return Fault("truncated", text=content)


def reasoning(content: str, thoughts: str) -> Fault:
    """A reasoning server's reply: the thoughts in `reasoning_content`, the answer in `content`."""
    return Fault("reasoning", text=content, headers={"reasoning": thoughts})


class FakeOpenAI:
    """Serves /v1/chat/completions with `responder(request_json) -> assistant text`; records requests.

    `requests`/`headers` hold every chat request in arrival order; `served` the `x-client-request-id` of
    every request answered with 200 and fully written; `arrivals` their arrival times (monotonic);
    `faults_applied`/`faulted_ids` each fault (kind or status) and the request id it hit.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        expected_key: str | None = None,
        rate_headers: dict[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.responder = responder or (lambda _request: DEFAULT_TEXT)
        self.latency_s = latency_s
        self.expected_key = expected_key
        self.rate_headers = rate_headers or {}
        self.fault_rule: FaultRule | None = None
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.arrivals: list[float] = []
        self.served: list[str] = []
        self.faults_applied: list[str] = []
        self.faulted_ids: list[str] = []
        self._queued: list[Fault] = []
        self._lock = threading.Lock()
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._connections: set[asyncio.StreamWriter] = set()

    # --- control ----------------------------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Apply these faults, in order, to the next chat requests that arrive."""
        with self._lock:
            self._queued.extend(faults)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def request_ids(self) -> list[str]:
        """The `x-client-request-id` header of every chat request, in arrival order."""
        with self._lock:
            return [h.get("x-client-request-id", "") for h in self.headers]

    def __enter__(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._run_thread, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run_thread(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.start())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()  # type: ignore[union-attr]
            for writer in list(self._connections):
                writer.transport.abort()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._port, backlog=4096, limit=2**24)
        self._port = self._server.sockets[0].getsockname()[1]

    # --- HTTP -------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not await self._route(method, path, headers, body, writer):
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, asyncio.CancelledError):
            # (cancelled: the server is stopping; ending quietly spares asyncio's "exception never retrieved")
            pass
        finally:
            self._connections.discard(writer)
            writer.transport.abort()

    async def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if method == "GET" and "/stats" in path:  # /stats?since=N: counts, and arrival times from the Nth on
            since = int(path.split("since=", 1)[1]) if "since=" in path else len(self.arrivals)
            with self._lock:
                counts = {"requests": len(self.requests), "served": len(self.served), "arrivals": self.arrivals[since:]}
            await self._send(writer, 200, json.dumps(counts).encode())
            return True
        if method == "GET" and path.split("?")[0].endswith("/models"):
            models = {"object": "list", "data": [{"id": "fake-vlm", "object": "model", "owned_by": "fake"}]}
            await self._send(writer, 200, json.dumps(models).encode())
            return True
        if method != "POST" or not path.endswith("/chat/completions"):
            await self._send(writer, 404, b'{"error": {"message": "not found"}}')
            return True
        request = json.loads(body)
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)
            self.arrivals.append(time.monotonic())
            fault = self._queued.pop(0) if self._queued else None
        if fault is None and self.fault_rule is not None:
            fault = self.fault_rule(request, headers)
        if fault is not None:
            with self._lock:
                self.faults_applied.append(fault.kind if fault.kind != "status" else str(fault.status))
                self.faulted_ids.append(headers.get("x-client-request-id", ""))
        if self.expected_key is not None and headers.get("authorization") != f"Bearer {self.expected_key}":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {given}. You can find your API key in your account."
            await self._send(writer, 401, json.dumps({"error": {"message": message}}).encode())
            return True
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return await self._reply(request, headers, fault, writer)

    async def _reply(
        self, request: dict[str, Any], headers: dict[str, str], fault: Fault | None, writer: asyncio.StreamWriter
    ) -> bool:
        kind = fault.kind if fault else "ok"
        if kind == "drop":
            return False
        if kind == "hang":
            await asyncio.Event().wait()  # until the client closes the connection or the server stops
        if kind == "status":
            assert fault is not None
            extra = dict(fault.headers)
            if fault.retry_after is not None:
                extra["Retry-After"] = fault.retry_after
            error = {"error": {"message": f"injected {fault.status}", "type": "fake", "code": None}}
            await self._send(writer, fault.status, json.dumps(error).encode(), extra)
            return True
        if kind == "slow":
            assert fault is not None
            await asyncio.sleep(fault.delay_s)
        if kind == "invalid_json":
            await self._send(writer, 200, b'{"id": "chatcmpl-broken", "choices": [')
            return True
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish = "stop"
        if kind == "refusal":
            assert fault is not None
            message["refusal"] = fault.text
        elif kind == "content_filter":
            finish = "content_filter"
        elif kind in ("text", "truncated"):
            assert fault is not None
            message["content"] = fault.text
            finish = "length" if kind == "truncated" else finish
        elif kind == "reasoning":
            assert fault is not None
            message["content"], message["reasoning_content"] = fault.text, fault.headers["reasoning"]
        elif kind != "empty_choices":
            message["content"] = self.responder(request)
        content = message.get("content") or ""
        completion_tokens = len(content.split())
        payload = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": request.get("model", "fake"),
            "choices": []
            if kind == "empty_choices"
            else [{"index": 0, "finish_reason": finish, "message": message, "logprobs": None}],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": completion_tokens,
                "total_tokens": 100 + completion_tokens,
            },
        }
        await self._send(writer, 200, json.dumps(payload).encode(), self.rate_headers)
        with self._lock:
            self.served.append(headers.get("x-client-request-id", ""))
        return True

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter, status: int, data: bytes, extra: dict[str, str] | None = None
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in (extra or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()


class SilentServer:
    """Accepts every connection on 127.0.0.1 and never sends a byte: the TCP handshake succeeds, the request is
    read, no answer ever comes (to chat requests and GET /models alike). `connections` counts accepted ones."""

    def __init__(self, port: int = 0) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(4096)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self.connections = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)
            self.connections += 1

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self._held:
            connection.close()
        self._sock.close()


async def _serve_until_stdin_closes(server: FakeOpenAI) -> None:
    await server.start()
    print(f"PORT {server._port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.2, help="Seconds before each reply.")
    parser.add_argument("--silent", action="store_true", help="Accept connections and never answer.")
    args = parser.parse_args()
    if args.silent:
        with SilentServer(args.port) as silent:
            print(f"PORT {silent.port}", flush=True)
            sys.stdin.read()
        return
    asyncio.run(_serve_until_stdin_closes(FakeOpenAI(latency_s=args.latency, port=args.port)))


if __name__ == "__main__":
    main()
