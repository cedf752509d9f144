"""The review server: the standard library's threading HTTP server, a small JSON API and the static page.

Why the standard library: the page needs six routes, a few users at a time and no templates; a web framework
would add a dependency (and its updates) for nothing an annotator would notice. The page itself is three
static files shipped in the package: no build step, nothing fetched from elsewhere.

Safety: bound to 127.0.0.1 by default, where only Host headers naming the loopback are served (no DNS
rebinding); bound to any other address, every request needs the token printed at start (kept in an HttpOnly
cookie after the first visit). Posts must be JSON from the page's own origin. Every response carries a
Content-Security-Policy that allows only the page's own script, and the page writes all text with
textContent, so nothing in a trace can run as script.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from PIL import Image
from pydantic import ValidationError

from retinal_reason_data.annotations import (
    ITEM_REASONS,
    REASON_LABELS,
    Key,
    TraceReview,
    VerdictLog,
    append_verdict,
    edit_problem,
    utc_now,
    verdict_folder,
)
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.snapshot import (
    FACETS,
    QUEUES,
    ReviewSet,
    SnapshotError,
    catalog_mark,
    queue_view,
    select,
)
from retinal_reason_data.schema import Decision, RejectReason, Verdict
from retinal_reason_data.verify import split_response

log = logging.getLogger(__name__)

DEFAULT_PORT = 8321
QUEUE_PAGE = 500  # keys per queue request; the page asks for the next ones as the annotator nears the end
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
COOKIE = "rrd_review_token"
ANNOTATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SHA = re.compile(r"^/image/([0-9a-f]{64})$")
MAX_BODY = 512 * 1024
BROWSER_IMAGES = {b"\xff\xd8": "image/jpeg", b"\x89P": "image/png", b"GI": "image/gif", b"BM": "image/bmp"}


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _annotator(name: str | None) -> str:
    if not name or not ANNOTATOR.match(name):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "annotator: a name of letters, digits, '.', '_' or '-' (it names your file)"
        )
    return name


def _verdict_view(verdict: Verdict) -> dict[str, Any]:
    return verdict.model_dump(mode="json", exclude_none=True)


def review_view(review: TraceReview | None, annotator: str) -> dict[str, Any]:
    """The verdicts on one trace as the page shows them."""
    if review is None:
        return {"verdicts": [], "decision": None, "disagreement": False, "mine": None, "edit": None}
    final = review.final
    mine = [v for v in review.verdicts if v.annotator == annotator]
    return {
        "verdicts": [_verdict_view(v) for v in review.verdicts],
        "decision": str(final.decision),
        "reason": final.reason,
        "disagreement": review.disagreement,
        "adjudicated": review.adjudication is not None,
        "mine": _verdict_view(mine[-1]) if mine else None,
        "edit": (
            {"think": final.edited_think, "answer": final.edited_answer, "annotator": final.annotator}
            if final.decision is Decision.EDIT
            else None
        ),
    }


class ReviewState:
    """The verdict files and the snapshot of the build, shared by the server's threads (behind one lock)."""

    def __init__(self, recipe: Recipe, annotator: str | None = None, queue_page: int = QUEUE_PAGE) -> None:
        self.recipe = recipe
        self.queue_page = queue_page
        self.default_annotator = annotator or ""
        self.folder = verdict_folder(recipe)
        self.log = VerdictLog(self.folder)
        self.log.refresh()
        self.snapshot = ReviewSet(recipe, self.log.trace_keys())
        self.lock = threading.RLock()
        self.build_note = ""
        self._selections: dict[tuple[Any, ...], tuple[list[Key], set[Key]]] = {}

    def close(self) -> None:
        self.snapshot.close()

    def refresh(self) -> None:
        """Read verdicts other annotators appended; take a new snapshot if the catalog was rebuilt."""
        with self.lock:
            self.log.refresh()
            if catalog_mark(self.recipe.catalog_path) == self.snapshot.mark:
                return
            try:
                fresh = ReviewSet(self.recipe, self.log.trace_keys())
            except SnapshotError as exc:
                self.build_note = f"showing the build as it was when review started: {exc}"
                return
            old, self.snapshot, self.build_note = self.snapshot, fresh, ""
            old.close()
            self._selections.clear()

    def session(self, annotator: str) -> dict[str, Any]:
        with self.lock:
            self.refresh()
            return {
                "recipe": self.recipe.name,
                "version": self.recipe.version,
                "annotator": annotator or self.default_annotator,
                "verdict_folder": str(self.folder),
                "facets": self.snapshot.facet_values(),
                "queues": list(QUEUES),
                "reasons": [
                    {"code": str(code), "label": label, "item": code in ITEM_REASONS}
                    for code, label in REASON_LABELS.items()
                ],
                "traces": len(self.snapshot.entries),
                "build_note": self.build_note,
            }

    def queue(self, params: dict[str, str]) -> dict[str, Any]:
        annotator = params.get("annotator", "")
        queue = params.get("queue", "unreviewed")
        if queue not in QUEUES:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"queue: one of {', '.join(QUEUES)}")
        filters = {name: params.get(name, "") for name in FACETS}
        sample = None
        try:
            if params.get("sample"):
                sample = (int(params["sample"]), int(params.get("seed") or 0))
            limit = min(max(int(params.get("limit") or self.queue_page), 1), 10 * QUEUE_PAGE)
        except ValueError:
            raise RequestError(HTTPStatus.BAD_REQUEST, "sample, seed and limit: whole numbers") from None
        after: Key | None = None
        if "|" in params.get("after", ""):
            item_id, generation_id = params["after"].split("|", 1)
            after = (item_id, generation_id)
        with self.lock:
            self.refresh()
            chosen, chosen_set = self._selected(filters, sample)
            reviews = self.log.reviews().values()
            keys, counts, more = queue_view(
                chosen, chosen_set, reviews, annotator, queue, after, limit, self.snapshot.second_reader_keys
            )
            if params.get("counts_only"):
                return {"counts": counts, "selected": len(chosen)}
            return {"keys": keys, "counts": counts, "selected": len(chosen), "more": more}

    def _selected(self, filters: dict[str, str], sample: tuple[int, int] | None) -> tuple[list[Key], set[Key]]:
        """The traces that pass the filters (and the batch), remembered for this snapshot."""
        key = (id(self.snapshot), tuple(sorted(filters.items())), sample)
        if key not in self._selections:
            if len(self._selections) > 32:
                self._selections.clear()
            chosen = [entry.key for entry in select(self.snapshot.entries, filters, sample)]
            self._selections[key] = (chosen, set(chosen))
        return self._selections[key]

    def item(self, key: Key, annotator: str) -> dict[str, Any]:
        with self.lock:
            self.refresh()
            detail = self.snapshot.detail(key)
            if detail is None:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no trace {key[1]} of item {key[0]} in this build")
            detail["review"] = review_view(self.log.review(key), annotator)
            return detail

    def add_verdict(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Validate a verdict from the page, append it to the annotator's file and return the trace's state."""
        annotator = _annotator(payload.get("annotator"))
        key = (str(payload.get("item_id", "")), str(payload.get("generation_id", "")))
        fields = {name: payload.get(name) for name in ("decision", "reason", "note", "edited_think", "edited_answer")}
        fields["note"] = (fields["note"] or "").strip() or None
        with self.lock:
            if key not in self.snapshot.by_key:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no trace {key[1]} of item {key[0]} in this build")
            if fields["decision"] == "edit":
                self._check_edit(key, fields)
            try:
                verdict = Verdict(
                    item_id=key[0],
                    generation_id=key[1],
                    annotator=annotator,
                    adjudication=bool(payload.get("adjudication")),
                    time=utc_now(),
                    **fields,
                )
            except ValidationError as exc:
                message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise RequestError(HTTPStatus.BAD_REQUEST, message) from None
            if verdict.decision is Decision.REJECT and verdict.reason is RejectReason.OTHER and not verdict.note:
                raise RequestError(HTTPStatus.BAD_REQUEST, "reason 'other': say why in the note")
            append_verdict(self.folder, verdict)
            self.log.refresh()
            return review_view(self.log.review(key), annotator)

    def _check_edit(self, key: Key, fields: dict[str, Any]) -> None:
        """Keep only what the annotator changed; refuse an edit the build could not export."""
        item, generation = self.snapshot.models(key)
        think, answer = split_response(generation.response or "")
        for name, current in (("edited_think", think), ("edited_answer", answer)):
            text = fields.get(name)
            if text is not None and not isinstance(text, str):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"{name}: text expected")
            fields[name] = None if text is None or text.strip() == (current or "").strip() else text.strip()
        if fields["edited_think"] is None and fields["edited_answer"] is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, "nothing was changed: accept the trace instead")
        problem = edit_problem(item, generation, fields["edited_think"], fields["edited_answer"])
        if problem:
            raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, problem)


def _static_files() -> dict[str, bytes]:
    folder = resources.files("retinal_reason_data.review") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}


def _image_bytes(data: bytes) -> tuple[bytes, str]:
    """Formats browsers show are sent as they are; others (TIFF, ...) are converted to PNG."""
    kind = BROWSER_IMAGES.get(data[:2])
    if kind:
        return data, kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return data, "image/webp"
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB" if image.mode not in ("L", "RGB", "RGBA") else image.mode).save(buffer, "PNG")
    return buffer.getvalue(), "image/png"


def make_handler(state: ReviewState, token: str | None, allowed_hosts: set[str] | None) -> type:
    """The request handler class, bound to one review state, token and set of accepted Host headers."""
    static = _static_files()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "rrd-review"
        sys_version = ""

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug("%s %s", self.address_string(), format % args)

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        # --- plumbing -------------------------------------------------------------------------------------
        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            params = {name: values[-1] for name, values in parse_qs(url.query).items()}
            try:
                self._guard(method, url.path, params)
                if method == "GET":
                    self._get(url.path, params)
                else:
                    self._post(url.path)
            except RequestError as exc:
                self._json({"error": str(exc)}, exc.status)
            except _Redirected:
                pass
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as exc:  # the page shows the message; the log has the traceback
                log.exception("review server: %s %s failed", method, url.path)
                self._json({"error": f"server error: {type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

        def _guard(self, method: str, path: str, params: dict[str, str]) -> None:
            if allowed_hosts is not None and self.headers.get("Host", "") not in allowed_hosts:
                raise RequestError(HTTPStatus.BAD_REQUEST, "unexpected Host header")
            if token is not None:
                offered = params.get("token")
                if method == "GET" and offered is not None and hmac.compare_digest(offered, token):
                    rest = urlencode({k: v for k, v in params.items() if k != "token"})
                    self._redirect(path + (f"?{rest}" if rest else ""), token)
                    raise _Redirected
                cookie = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
                if cookie is None or not hmac.compare_digest(cookie.value, token):
                    raise RequestError(HTTPStatus.UNAUTHORIZED, "open the address that `rrd review` printed")
            if method == "POST":
                if self.headers.get_content_type() != "application/json":
                    raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON")
                if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
                    raise RequestError(HTTPStatus.FORBIDDEN, "cross-site request refused")
                origin = self.headers.get("Origin")
                if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
                    raise RequestError(HTTPStatus.FORBIDDEN, "cross-origin request refused")

        def _get(self, path: str, params: dict[str, str]) -> None:
            if path in ("/", "/index.html"):
                self._send(static["index.html"], STATIC_TYPES["index.html"])
            elif path.startswith("/static/") and path[8:] in static:
                self._send(static[path[8:]], STATIC_TYPES[path[8:]])
            elif path == "/api/session":
                self._json(state.session(params.get("annotator", "")))
            elif path == "/api/queue":
                self._json(state.queue(params))
            elif path == "/api/item":
                key = (params.get("item", ""), params.get("generation", ""))
                self._json(state.item(key, params.get("annotator", "")))
            elif path == "/favicon.ico":
                self._send(b"", "image/x-icon", HTTPStatus.NO_CONTENT)
            elif match := SHA.match(path):
                self._image(match.group(1))
            else:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {path}")

        def _post(self, path: str) -> None:
            if path != "/api/verdict":
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a verdict is at most {MAX_BODY} bytes")
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                raise RequestError(HTTPStatus.BAD_REQUEST, "not valid JSON") from None
            if not isinstance(payload, dict):
                raise RequestError(HTTPStatus.BAD_REQUEST, "expected a JSON object")
            self._json(state.add_verdict(payload))

        def _image(self, sha: str) -> None:
            with state.lock:
                path = state.snapshot.image_path(sha)
            if path is None or not path.is_file():
                raise RequestError(HTTPStatus.NOT_FOUND, "image not found (open its item first)")
            data, kind = _image_bytes(path.read_bytes())
            self._send(data, kind, cache="private, max-age=86400, immutable")

        def _headers(self, status: HTTPStatus, kind: str, length: int, cache: str = "no-store") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            if status != HTTPStatus.NO_CONTENT:
                self.send_header("Content-Length", str(length))
            self.send_header("Cache-Control", cache)
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")

        def _send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK, cache: str = "no-store") -> None:
            self._headers(status, kind, len(body), cache)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, value: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
            self._send(json.dumps(value, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8", status)

        def _redirect(self, location: str, value: str) -> None:
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", location)
            self.send_header("Set-Cookie", f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/")
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()

    return Handler


class _Redirected(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _Server6(_Server):
    address_family = socket.AF_INET6


class ReviewServer:
    """`rrd review`: the page and its API over one recipe's build. Loopback needs no token; any other address
    does (generated unless given)."""

    def __init__(
        self,
        recipe: Recipe,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        annotator: str | None = None,
        token: str | None = None,
        queue_page: int = QUEUE_PAGE,
    ) -> None:
        if annotator is not None:
            _annotator(annotator)
        self.host = host
        self.token = token or (None if is_loopback(host) else secrets.token_urlsafe(24))
        self.state = ReviewState(recipe, annotator, queue_page)
        server_class = _Server6 if ":" in host else _Server
        try:
            self.httpd = server_class((host.strip("[]"), port), self._handler_for(port))
        except OSError:
            self.state.close()
            raise
        self.port = self.httpd.server_address[1]
        if port == 0:  # the Host check must know the port the system chose
            self.httpd.RequestHandlerClass = self._handler_for(self.port)
        self._thread: threading.Thread | None = None

    def _handler_for(self, port: int) -> type:
        allowed = None
        if is_loopback(self.host) and self.token is None:
            names = {"127.0.0.1", "localhost", "[::1]", self.host if ":" not in self.host else f"[{self.host}]"}
            allowed = {f"{name}:{port}" for name in names}
        return make_handler(self.state, self.token, allowed)

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host.strip('[]')}]"
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> threading.Thread:
        """Serve on a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.serve_forever, name="rrd-review", daemon=True)
        self._thread.start()
        return self._thread

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()
        self.state.close()


def serve(recipe: Recipe, echo: Callable[[str], None], **options: Any) -> None:
    """Run the review server until interrupted."""
    server = ReviewServer(recipe, **options)
    echo(f"reviewing {recipe.name}: {len(server.state.snapshot.entries)} traces; verdicts go to {server.state.folder}")
    echo(f"open {server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
