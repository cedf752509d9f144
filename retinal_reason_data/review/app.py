"""The review page's routes (Starlette): the three static files, the build's images and a small JSON API.

GET  /, /static/{app.js,app.css}, /image/<sha256>, /api/session, /api/queue, /api/item
POST /api/verdict (a verdict by the session's annotator), /api/annotator (name or switch the session's annotator)

Every request has passed the Guard first (guard.py): the route finds the browser's session in the scope.
The blocking work (DuckDB, files, fsync) runs in worker threads; the page's text is never markup (the page
writes it with textContent, and the CSP allows only the page's own script).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from typing import Any

import anyio.to_thread
from PIL import Image
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from retinal_reason_data.review.bodies import (
    AnnotatorBody,
    BodyError,
    QueueQuery,
    VerdictBody,
    parse_body,
    parse_query,
    read_body,
)
from retinal_reason_data.review.guard import Guard, Policy, json_body
from retinal_reason_data.review.sessions import Session, SessionStore
from retinal_reason_data.review.state import RequestError, ReviewState

STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
SHA = re.compile(r"^[0-9a-f]{64}$")
BROWSER_IMAGES = {b"\xff\xd8": "image/jpeg", b"\x89P": "image/png", b"GI": "image/gif", b"BM": "image/bmp"}
JSON = "application/json; charset=utf-8"


def static_files() -> dict[str, bytes]:
    folder = resources.files("retinal_reason_data.review") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}


def image_bytes(data: bytes) -> tuple[bytes, str]:
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


def _json(value: Any, status: int = 200) -> Response:
    return Response(json_body(value), status_code=status, media_type=JSON)


def _session(request: Request) -> Session:
    session = request.scope.get("rrd.session")
    if session is None:  # the Guard lets no request without a session reach an API route
        raise RequestError(HTTPStatus.UNAUTHORIZED, "no review session: reload the page")
    return session


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(function, *args)


def build_app(
    state: ReviewState, sessions: SessionStore, policy: Policy, body_timeout: float = 10.0
) -> Callable[..., Any]:
    """The review app behind its Guard: an ASGI application for uvicorn."""
    static = static_files()

    async def page(request: Request) -> Response:
        return Response(static["index.html"], media_type=STATIC_TYPES["index.html"])

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {request.url.path}")
        return Response(static[name], media_type=STATIC_TYPES[name])

    async def favicon(request: Request) -> Response:
        return Response(status_code=HTTPStatus.NO_CONTENT)

    async def image(request: Request) -> Response:
        sha = request.path_params["sha"]
        path = await _in_thread(state.image_path, sha) if SHA.match(sha) else None
        if path is None or not path.is_file():
            raise RequestError(HTTPStatus.NOT_FOUND, "image not found (open its item first)")
        data, kind = await _in_thread(lambda: image_bytes(path.read_bytes()))
        return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=86400, immutable"})

    async def api_session(request: Request) -> Response:
        session = _session(request)
        info = await _in_thread(state.session)
        return _json(info | {"annotator": session.annotator, "session": session.id, "csrf": session.csrf})

    async def api_queue(request: Request) -> Response:
        query = parse_query(QueueQuery, dict(request.query_params))
        return _json(await _in_thread(state.queue, query, _session(request).annotator))

    async def api_item(request: Request) -> Response:
        params = request.query_params
        if not params.get("item") or not params.get("generation"):
            raise RequestError(HTTPStatus.BAD_REQUEST, "item and generation: both needed")
        key = (params["item"], params["generation"])
        return _json(await _in_thread(state.item, key, _session(request).annotator))

    async def api_verdict(request: Request) -> Response:
        session = _session(request)
        body = parse_body(VerdictBody, await read_body(request.receive, policy.max_body, body_timeout))
        annotator = session.annotator
        if annotator is None:
            raise RequestError(HTTPStatus.FORBIDDEN, "name yourself first: your name names your verdict file")
        return _json(await _in_thread(state.add_verdict, body, annotator, session.id))

    async def api_annotator(request: Request) -> Response:
        session = _session(request)
        body = parse_body(AnnotatorBody, await read_body(request.receive, policy.max_body, body_timeout))
        sessions.name(session, body.annotator)
        return _json({"annotator": session.annotator, "session": session.id})

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError | BodyError)
        return _json({"error": str(exc)}, int(exc.status))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = f"no such page: {request.url.path}" if exc.status_code == 404 else exc.detail
        response = _json({"error": message}, exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/index.html", page, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/image/{sha}", image, methods=["GET"]),
        Route("/api/session", api_session, methods=["GET"]),
        Route("/api/queue", api_queue, methods=["GET"]),
        Route("/api/item", api_item, methods=["GET"]),
        Route("/api/verdict", api_verdict, methods=["POST"]),
        Route("/api/annotator", api_annotator, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={RequestError: refused, BodyError: refused, HTTPException: http_error},
    )
    app.router.redirect_slashes = False
    return Guard(app, policy, sessions)
