"""The review page in headless Chromium (Debian's, driven by Playwright): keyboard review of several traces,
an edit, two annotators at once, adjudication, the annotator bound to the browser's session, and a trace that
tries to run script."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.review.bodies import QueueQuery
from retinal_reason_data.review.server import ReviewServer
from retinal_reason_data.review.verdicts import read_verdicts
from retinal_reason_data.teacher.verify import split_response
from tests.helpers.builds import copy_build
from tests.helpers.review import chromium, exported_traces, name_yourself, recipe_over, visitor


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_review_build: Path) -> Path:
    """A copy of the session's review build: this module's tests may write to its catalog."""
    return copy_build(shared_review_build, tmp_path_factory.mktemp("page"))


def open_page(browser: Browser, url: str, errors: list[str]) -> Page:
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("#steps p")
    return page


def session_id(page: Page) -> str:
    return page.evaluate("fetch('/api/session').then((r) => r.json()).then((s) => s.session)")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_keyboard_review_of_several_traces_with_an_edit(browser: Browser, built: Path, tmp_path: Path) -> None:
    # pages of 3 keys: the page fetches the next page of the queue as the annotator walks on
    server = ReviewServer(recipe_over(built, tmp_path), port=0, annotator="alice", queue_page=3)
    server.start()
    errors: list[str] = []
    try:
        keys = server.state.queue(QueueQuery(queue="unreviewed", limit=100), "alice")["keys"]
        total = len(keys)
        page = open_page(browser, server.url + "#queue=unreviewed", errors)  # the first session: alice's
        expect(page.locator("#annotator")).to_have_value("alice")
        expect(page.locator("#annotator")).not_to_be_editable()
        expect(page.locator("#switch-annotator")).to_be_visible()
        position = page.locator("#position")
        expect(position).to_have_text(f"1 / {total}")
        expect(page.locator("#queues [data-queue=unreviewed] .count")).to_have_text(str(total))

        page.keyboard.press("a")  # accept
        expect(position).to_have_text(f"2 / {total}")
        page.keyboard.press("r")  # reject: the reasons sheet, then a number
        expect(page.locator("#reasons")).to_be_visible()
        page.keyboard.press("2")
        expect(position).to_have_text(f"3 / {total}")
        expect(page.locator("#reasons")).to_be_hidden()

        original = page.locator("#steps p").first.text_content()
        page.keyboard.press("e")  # edit in place
        editor = page.locator("#edit-think")
        expect(editor).to_be_visible()
        expect(editor).to_be_focused()
        think = editor.input_value()
        assert think.splitlines()[0] == original
        corrected = think.replace("Step 1:", "Step 1 (corrected):", 1)
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(corrected)
        page.keyboard.press("Control+Enter")
        expect(position).to_have_text(f"4 / {total}")
        expect(page.locator("#status")).to_have_text("Saved: edited")

        page.keyboard.press("r")  # reject with "Other": the note takes the reason in words
        page.keyboard.press("6")
        expect(page.locator("#reason-note")).to_be_focused()
        page.keyboard.type("the disc is cut off")
        page.keyboard.press("Enter")
        expect(position).to_have_text(f"5 / {total}")

        page.keyboard.press("e")  # an edit the build could not export is refused, and nothing is written
        page.locator("#edit-answer").fill("Z")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#status")).to_contain_text("does not match the reference")
        expect(page.locator("#edit-think")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("#edit-think")).to_be_hidden()

        page.keyboard.press("k")  # back to the edited trace: the page shows the annotator's text
        page.keyboard.press("k")
        expect(position).to_have_text(f"3 / {total}")
        expect(page.locator("#steps p").first).to_have_text(corrected.splitlines()[0])
        expect(page.locator("#edited-badge")).to_contain_text("edited by alice")
        page.keyboard.press("o")
        expect(page.locator("#steps p").first).to_have_text(original)
        expect(page.locator("#queues [data-queue=unreviewed] .count")).to_have_text(str(total - 4))

        written = lines(server.state.folder / "alice.jsonl")
        assert [(v["item_id"], v["generation_id"]) for v in written] == [tuple(k) for k in keys[:4]]
        assert [v["decision"] for v in written] == ["accept", "reject", "edit", "reject"]
        assert written[1]["reason"] == "hallucinated_finding"
        assert written[2]["edited_think"] == corrected.strip() and "edited_answer" not in written[2]
        assert written[3]["reason"] == "other" and written[3]["note"] == "the disc is cut off"
        assert all(v["annotator"] == "alice" and v["time"].endswith("Z") for v in written)
        assert {v["session"] for v in written} == {session_id(page)}
        assert errors == []
    finally:
        server.close()


def test_two_annotators_at_once_and_adjudication(browser: Browser, built: Path, tmp_path: Path) -> None:
    recipe = recipe_over(built, tmp_path)
    first, second = ReviewServer(recipe, port=0), ReviewServer(recipe, port=0)  # two servers, one folder
    first.start()
    second.start()
    errors: list[str] = []
    try:
        alice = open_page(browser, first.url + "#queue=all", errors)
        bob = open_page(browser, second.url + "#queue=all", errors)
        for page, name in ((alice, "alice"), (bob, "bob")):
            name_yourself(page, name)
        total = len(first.state.snapshot.entries)
        for n in range(5):  # both press at the same moment; bob rejects the third trace
            alice.keyboard.press("a")
            bob.keyboard.press("r" if n == 2 else "a")
            if n == 2:
                bob.keyboard.press("1")
            for page in (alice, bob):
                expect(page.locator("#position")).to_have_text(f"{n + 2} / {total}")

        def burst(server: ReviewServer, start: int) -> None:
            dana = visitor(server, "dana")
            keys = dana.get("/api/queue?queue=all")["keys"]
            for n in range(start, start + 20):
                item, generation = keys[n % len(keys)]
                assert dana.verdict(item_id=item, generation_id=generation, decision="accept")[0] == 200

        threads = [threading.Thread(target=burst, args=(s, k * 20)) for k, s in enumerate((first, second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        folder = first.state.folder
        assert len(lines(folder / "alice.jsonl")) == 5 and len(lines(folder / "bob.jsonl")) == 5
        assert len(lines(folder / "dana.jsonl")) == 40
        disputed = lines(folder / "bob.jsonl")[2]

        alice.keyboard.press("Alt+4")  # the disagreements queue: a party to the disagreement cannot settle it
        expect(alice.locator("#position")).to_have_text("1 / 1")
        expect(alice.locator("#banner")).to_contain_text("You took part: ")
        alice.keyboard.press("a")  # her own verdict again, not an adjudication
        expect(alice.locator("#status")).to_have_text("Saved: accepted")
        assert [v.get("adjudication") for v in lines(folder / "alice.jsonl")][-1] is False

        carol = open_page(browser, first.url + "#queue=disagreements", errors)
        name_yourself(carol, "carol")
        expect(carol.locator("#position")).to_have_text("1 / 1")
        expect(carol.locator("#banner")).to_contain_text("Adjudicating")
        expect(carol.locator("#verdicts")).to_contain_text("Annotators disagree")
        carol.keyboard.press("a")
        expect(carol.locator("#empty")).to_be_visible()
        expect(carol.locator("#queues [data-queue=disagreements] .count")).to_have_text("0")
        adjudication = lines(folder / "carol.jsonl")[0]
        assert adjudication["adjudication"] is True
        assert (adjudication["item_id"], adjudication["generation_id"]) == (
            disputed["item_id"],
            disputed["generation_id"],
        )
        review = read_verdicts(folder).review((disputed["item_id"], disputed["generation_id"]))
        assert review is not None and str(review.decision) == "accept" and not review.disagreement
        assert errors == []
    finally:
        first.close()
        second.close()


def test_a_trace_cannot_run_script_in_the_page(browser: Browser, built: Path, tmp_path: Path) -> None:
    work = tmp_path / "build"
    shutil.copytree(built.parent, work, ignore=shutil.ignore_patterns("export", "annotations"))
    recipe = recipe_over(work / "recipe.yaml", tmp_path / "verdicts")
    item_id, fingerprint, _ = exported_traces(recipe)[0]
    catalog = Catalog(recipe.catalog_path)
    try:
        generation = json.loads(
            catalog.query("SELECT data FROM generations WHERE fingerprint = ?", [fingerprint])[0][0]
        )
        _, answer = split_response(generation["response"])
        generation["response"] = (
            "<think>\nStep 1: <script>window.__pwned = 1</script>\n"
            'Step 2: <img src=x onerror="window.__pwned = 2"> looks <b>bold</b>\n'
            f"</think>\n<answer>{answer}</answer>"
        )
        catalog.db.execute(
            "UPDATE generations SET data = ? WHERE fingerprint = ?", [json.dumps(generation), fingerprint]
        )
        item = json.loads(catalog.query("SELECT data FROM items WHERE item_id = ?", [item_id])[0][0])
        item["question"] = '<svg onload="window.__pwned = 3"></svg> ' + item["question"]
        catalog.db.execute("UPDATE items SET data = ? WHERE item_id = ?", [json.dumps(item), item_id])
    finally:
        catalog.close()

    server = ReviewServer(recipe, port=0, annotator="alice")
    server.start()
    errors: list[str] = []
    try:
        page = open_page(browser, server.url + "#queue=all", errors)
        steps = page.locator("#steps p")
        expect(steps.first).to_have_text("Step 1: <script>window.__pwned = 1</script>")
        expect(steps.nth(1)).to_contain_text('<img src=x onerror="window.__pwned = 2">')
        expect(page.locator("#question")).to_contain_text("<svg onload=")
        page.keyboard.press("e")  # the editor shows the same text, as text
        typed = generation["response"].split("\n</think>")[0].removeprefix("<think>\n")
        expect(page.locator("#edit-think")).to_have_value(typed)
        page.keyboard.press("Escape")
        page.wait_for_timeout(200)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#steps p > *, #question > *, #trace-answer > *").count() == 0  # text nodes only
        assert page.locator("script").count() == 1  # the page's own app.js
        # and were the page ever to insert markup, the policy forbids inline script
        response = page.request.get(server.url)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert errors == []
    finally:
        server.close()


def test_the_annotator_belongs_to_the_browser_session(browser: Browser, built: Path, tmp_path: Path) -> None:
    server = ReviewServer(recipe_over(built, tmp_path), port=0, annotator="alice")  # --annotator alice
    server.start()
    errors: list[str] = []
    folder = server.state.folder
    try:
        alice = open_page(browser, server.url + "#queue=all", errors)
        expect(alice.locator("#annotator")).to_have_value("alice")
        bob = open_page(browser, server.url + "#queue=all", errors)  # another browser: nobody yet
        who = bob.locator("#annotator")
        expect(who).to_have_value("")
        expect(who).to_be_editable()
        expect(who).to_have_class("missing")
        bob.locator("body").click()
        bob.keyboard.press("a")  # no name, no verdict
        expect(bob.locator("#status")).to_contain_text("Type your name first")
        name_yourself(bob, "bob")
        expect(who).not_to_be_editable()

        bob.reload()  # the server keeps the name for this browser's session: bob stays bob
        bob.wait_for_selector("#steps p")
        expect(who).to_have_value("bob")
        expect(who).not_to_be_editable()
        who.click()
        bob.keyboard.type("alice")  # typing into the name does nothing: it changes only by "Switch"
        expect(who).to_have_value("bob")
        bob.keyboard.press("Escape")
        bob.keyboard.press("a")
        expect(bob.locator("#status")).to_have_text("Saved: accepted")
        assert [v["annotator"] for v in lines(folder / "bob.jsonl")] == ["bob"]
        assert lines(folder / "alice.jsonl") == []

        bob.locator("#switch-annotator").click()  # Esc keeps the name
        expect(who).to_be_focused()
        bob.keyboard.type("zed")
        bob.keyboard.press("Escape")
        expect(who).to_have_value("bob")
        bob.locator("#switch-annotator").click()
        bob.keyboard.type("carol")
        bob.keyboard.press("Enter")
        expect(bob.locator("#status")).to_have_text("Verdicts are saved as carol")
        bob.keyboard.press("a")
        expect(bob.locator("#status")).to_have_text("Saved: accepted")
        carol = lines(folder / "carol.jsonl")
        assert len(carol) == 1 and carol[0]["session"] == lines(folder / "bob.jsonl")[0]["session"] == session_id(bob)

        alice.keyboard.press("a")  # alice's browser is still alice's
        expect(alice.locator("#status")).to_have_text("Saved: accepted")
        assert [v["session"] for v in lines(folder / "alice.jsonl")] == [session_id(alice)]
        assert session_id(alice) != session_id(bob)
        assert errors == []
    finally:
        server.close()
