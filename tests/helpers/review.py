"""A small phantom build to review, and the clients the review tests drive it with: a plain HTTP call, a
browser session as the server sees it (`Visitor`), and Debian's headless Chromium under Playwright."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.pipeline import build
from retinal_reason_data.recipe import Recipe, load_recipe
from retinal_reason_data.review.server import ReviewServer
from retinal_reason_data.review.verdicts import read_verdicts
from retinal_reason_data.schema import Verdict
from tests.helpers.recipes import write_recipe

REVIEW_SOURCES = [
    {"adapter": "aptos2019", "root": "raw/aptos2019", "phantom": {"cases": 6, "seed": 1}},
    {"adapter": "ffa_ir", "root": "raw/ffa_ir", "phantom": {"cases": 3, "seed": 3}},
    {"adapter": "case_reports", "root": "raw/case_reports", "phantom": {"cases": 4, "seed": 4}},
]
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def build_review_recipe(folder: Path) -> Path:
    """A small phantom build (offline teacher) to review: a dozen traces over three sources, both tasks."""
    path = write_recipe(folder, sources=REVIEW_SOURCES)
    recipe = load_recipe(path)
    catalog = Catalog(recipe.catalog_path)
    try:
        build(recipe, catalog)
    finally:
        catalog.close()
    return path


def exported_traces(recipe: Recipe) -> list[tuple[str, str, str]]:
    """(item_id, fingerprint, question_type) of every trace the build exports, in item order."""
    db = duckdb.connect(str(recipe.catalog_path), read_only=True)
    try:
        return db.execute(
            "SELECT a.item_id, a.fingerprint, i.question_type FROM assignments a JOIN items i USING (item_id) "
            "WHERE a.fingerprint IS NOT NULL ORDER BY a.item_id"
        ).fetchall()
    finally:
        db.close()


def verdict(item: str, generation: str, annotator: str, decision: str, minutes: int = 0, **fields: object) -> Verdict:
    return Verdict(
        item_id=item,
        generation_id=generation,
        annotator=annotator,
        decision=decision,
        time=T0 + timedelta(minutes=minutes),
        **fields,
    )


def recipe_over(built: Path, folder: Path) -> Recipe:
    """A recipe over the built catalog whose verdicts (annotations/) live in `folder`."""
    sources = [{**source, "root": str(built.parent / source["root"])} for source in REVIEW_SOURCES]
    return load_recipe(write_recipe(folder, sources=sources, catalog=str(built.parent / "small.duckdb")))


Reply = tuple[int, dict[str, str], bytes]


def call(
    server: ReviewServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> Reply:
    """One request on a fresh connection, as a client without a session sends it (JSON body unless bytes)."""
    connection = http.client.HTTPConnection(host, server.port, timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers=sent | (headers or {}))
    response = connection.getresponse()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    connection.close()
    return result


class Visitor:
    """A browser as the review server sees it: the session cookie it got with the page, the CSRF token the page
    read from /api/session, and the page's own origin on every POST."""

    def __init__(self, server: ReviewServer, host: str = "127.0.0.1", entry: str = "/") -> None:
        self.server, self.host = server, host
        self.origin = f"http://{host}:{server.port}"
        status, headers, body = call(server, "GET", entry, host=host)
        if status == 303:  # the token's address: the cookie comes with the redirect
            status, headers, body = 200, headers, b""
        assert status == 200, body
        self.cookie = headers["set-cookie"].split(";")[0]
        self.session = self.get("/api/session")
        self.csrf = self.session["csrf"]

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        sent = {"Cookie": self.cookie}
        if method == "POST":
            sent |= {"Origin": self.origin, "X-RRD-Request": "1", "X-RRD-CSRF": self.csrf}
        return call(self.server, method, path, body, sent | (headers or {}), host=self.host)

    def get(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, body
        return json.loads(body)

    def post(self, path: str, value: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, _, body = self.request("POST", path, value, headers)
        return status, json.loads(body)

    def post_announced(self, path: str, length: int) -> tuple[int, Any]:
        """A POST whose header announces `length` bytes of body, answered before the body is sent: the server must
        refuse an oversized body from its Content-Length alone. (Sending the body first raced the server's close:
        the client's write failed with a broken pipe before it read the 413.)"""
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.server.port}",
            "Content-Type: application/json",
            f"Content-Length: {length}",
            f"Cookie: {self.cookie}",
            f"Origin: {self.origin}",
            "X-RRD-Request: 1",
            f"X-RRD-CSRF: {self.csrf}",
        ]
        with socket.create_connection((self.host, self.server.port), timeout=10) as sock:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            response = http.client.HTTPResponse(sock)
            response.begin()
            return response.status, json.loads(response.read())

    def name(self, annotator: str) -> None:
        status, body = self.post("/api/annotator", {"annotator": annotator})
        assert status == 200 and body["annotator"] == annotator, body

    def verdict(self, **fields: Any) -> tuple[int, Any]:
        return self.post("/api/verdict", fields)


def visitor(server: ReviewServer, annotator: str | None = None) -> Visitor:
    """A new browser session, named `annotator` (when given)."""
    browser = Visitor(server)
    if annotator:
        browser.name(annotator)
    return browser


def written(server: ReviewServer) -> int:
    return read_verdicts(server.state.folder).count


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium under Playwright (each context a fresh profile: its own cookies)."""
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is needed at /usr/bin/chromium: `make test` installs it (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def name_yourself(page: Page, name: str) -> None:
    page.locator("#annotator").fill(name)
    page.locator("#annotator").press("Enter")
    expect(page.locator("#status")).to_have_text(f"Verdicts are saved as {name}")
