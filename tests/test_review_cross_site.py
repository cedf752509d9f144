"""Other pages the annotator has open cannot write verdicts, tried in headless Chromium as an attacker would: a
`no-cors` fetch whose body is a whole smuggled verdict request, and an auto-submitted `<form enctype="text/plain">`
whose body reads as JSON, from another loopback port (same site: the session cookie goes along), from
`localhost` against `127.0.0.1` and the other way round, and from a `file://` page. Each attack reaches the
server, is refused, and nothing is written; the annotator's own page still writes."""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from retinal_reason_data.review.server import ReviewServer
from retinal_reason_data.review.verdicts import read_verdicts
from tests.helpers.builds import copy_build
from tests.helpers.review import chromium, exported_traces, name_yourself, recipe_over


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_review_build: Path) -> Path:
    """A copy of the session's review build: this module's tests may write to its catalog."""
    return copy_build(shared_review_build, tmp_path_factory.mktemp("cross_site"))


def attack_page(target: str, item: str, generation: str) -> str:
    """A page that fires both vectors at `target` (a review server's origin) and then shows where it went."""
    verdict = {"item_id": item, "generation_id": generation, "decision": "reject", "reason": "reference_wrong"}
    body = json.dumps(verdict | {"adjudication": True})
    host = target.removeprefix("http://")
    smuggled = (
        f"POST /api/verdict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nOrigin: {target}\r\n"
        f"X-RRD-Request: 1\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )
    # text/plain forms send name=value: a name ending in `"pad":"` and a value of `"}` make the body JSON
    form_name = json.dumps(verdict | {"adjudication": True})[:-1] + ', "pad": "'
    return f"""<!doctype html><html><head><title>attack</title></head><body>
<form id="form" method="POST" action="{target}/api/verdict" enctype="text/plain">
  <input type="hidden" name="{html.escape(form_name)}" value="{html.escape('"}')}">
</form>
<script>
fetch({json.dumps(target + "/api/verdict")}, {{
  method: "POST", mode: "no-cors", credentials: "include", body: {json.dumps(smuggled + smuggled)},
}}).catch(() => {{}}).finally(() => {{
  document.title = "fetched";
  document.getElementById("form").submit();
}});
</script></body></html>"""


class AttackSite:
    """A second origin on the loopback (another port) serving attack pages by path."""

    def __init__(self) -> None:
        pages: dict[str, bytes] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the base class's name
                body = pages.get(self.path.split("?")[0], b"")
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def attacker() -> Iterator[AttackSite]:
    site = AttackSite()
    yield site
    site.close()


def victim(browser: Browser, origin: str) -> BrowserContext:
    """A browser whose annotator has the review page open at `origin` and named herself (the session cookie)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(origin + "/#queue=all")
    page.wait_for_selector("#steps p")
    name_yourself(page, "alice")
    return context


def refused_posts(server: ReviewServer) -> list[int]:
    return [r.status for r in server.refusals if r.method == "POST" and r.path == "/api/verdict"]


def fire(context: BrowserContext, url: str, target: str) -> None:
    """Open the attack page in the victim's browser and wait until both vectors have gone off."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_url(f"{target}/api/verdict")  # the form was submitted (after the fetch settled)
    expect(page.locator("body")).to_contain_text("error")  # and the server's answer is a refusal
    page.close()


def test_no_other_page_can_write_a_verdict(browser: Browser, built: Path, tmp_path: Path, attacker: AttackSite) -> None:
    server = ReviewServer(recipe_over(built, tmp_path), port=0)
    server.start()
    try:
        item, generation, _ = exported_traces(server.state.recipe)[0]
        ip, name = f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"
        attacks = [  # (where the annotator reviews, where the attack page is, the origin it attacks)
            (ip, f"http://127.0.0.1:{attacker.port}/same-site", ip),  # another port: same site, cookie sent
            (ip, f"http://localhost:{attacker.port}/cross-site", ip),
            (name, f"http://127.0.0.1:{attacker.port}/to-localhost", name),
        ]
        for review_origin, url, target in attacks:
            attacker.pages[url.split(str(attacker.port))[1]] = attack_page(target, item, generation).encode()
            context = victim(browser, review_origin)
            before = len(refused_posts(server))
            fire(context, url, target)
            statuses = refused_posts(server)[before:]
            assert len(statuses) == 2 and all(400 <= s < 500 for s in statuses), (url, statuses)
            context.close()
        local_file = tmp_path / "attack.html"
        local_file.write_text(attack_page(ip, item, generation))
        context = victim(browser, ip)
        before = len(refused_posts(server))
        fire(context, local_file.as_uri(), ip)
        statuses = refused_posts(server)[before:]
        assert len(statuses) == 2 and all(400 <= s < 500 for s in statuses), statuses
        assert read_verdicts(server.state.folder).count == 0

        page = context.new_page()  # the annotator's own page, in the same browser, still writes
        page.goto(ip + "/#queue=all")
        page.wait_for_selector("#steps p")
        page.keyboard.press("a")
        expect(page.locator("#status")).to_have_text("Saved: accepted")
        assert read_verdicts(server.state.folder).count == 1
        context.close()
    finally:
        server.close()
