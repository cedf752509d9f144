"""The review server over HTTP: sessions, the token, the Host and origin checks on every state-changing request,
queues, filters, batches and verdicts; Label Studio is in test_labelstudio.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.review.server import ReviewServer, SetupError, server_token
from tests.helpers.builds import copy_build
from tests.helpers.recipes import write_recipe
from tests.helpers.review import Visitor, call, exported_traces, recipe_over, visitor, written

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_review_build: Path) -> Path:
    """A copy of the session's review build: this module's tests may write to its catalog."""
    return copy_build(shared_review_build, tmp_path_factory.mktemp("served"))


@pytest.fixture
def server(built: Path, tmp_path: Path) -> Iterator[ReviewServer]:
    running = ReviewServer(recipe_over(built, tmp_path), port=0)
    running.start()
    yield running
    running.close()


def get_json(server: ReviewServer, path: str) -> Any:
    """GET as a fresh, unnamed browser session."""
    return Visitor(server).get(path)


def test_the_page_opens_a_session_on_the_loopback_and_the_host_is_checked(server: ReviewServer) -> None:
    assert server.token is None and server.url == f"http://127.0.0.1:{server.port}/"
    status, headers, body = call(server, "GET", "/")
    assert status == 200 and b'src="/static/app.js"' in body
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"rrd_review_{server.port}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, _, body = call(server, "GET", "/api/session")  # no session, no API
    assert status == 401 and "reload the page" in json.loads(body)["error"]
    status, _, _ = call(server, "GET", "/api/session", headers={"Cookie": "rrd_review_1=forged"})
    assert status == 401
    status, _, _ = call(server, "GET", "/", headers={"Host": f"attacker.example:{server.port}"})
    assert status == 400  # a page on another site that rebinds its name to 127.0.0.1 gets nothing
    status, _, _ = call(server, "GET", "/", headers={"Sec-Fetch-Dest": "image"})  # an <img> elsewhere opens none
    assert status == 403
    page = Visitor(server)
    assert page.session["annotator"] is None and len(page.csrf) >= 32 and len(page.session["session"]) == 16
    assert page.get("/api/session")["session"] == page.session["session"]  # the cookie keeps the session


def test_every_answer_carries_the_security_headers_and_refusals_close(server: ReviewServer) -> None:
    page = visitor(server, "alice")
    answers = {
        "page": page.request("GET", "/"),
        "static": page.request("GET", "/static/app.css"),
        "favicon": call(server, "GET", "/favicon.ico"),
        "401": call(server, "GET", "/api/queue"),
        "404": page.request("GET", "/nowhere"),
        "DELETE": page.request("DELETE", "/api/verdict"),
        "405": page.request("POST", "/api/queue", {}),
        "415": page.request("POST", "/api/verdict", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}),
        "501": page.request("BREW", "/"),
        "422": page.request("POST", "/api/verdict", {"decision": "accept"}),
    }
    expected = {"page": 200, "static": 200, "favicon": 204, "401": 401, "404": 404, "DELETE": 501, "405": 405}
    expected |= {"415": 415, "501": 501, "422": 422}
    for name, (status, headers, _) in answers.items():
        assert status == expected[name], name
        assert all(header in headers for header in SECURITY_HEADERS), (name, headers)
        assert headers["cache-control"] == "no-store", name
        assert (headers.get("connection") == "close") is (status >= 400), (name, headers)
    assert set(answers["405"][1]["allow"].split(", ")) == {"GET", "HEAD"}


def test_posts_must_be_json_from_the_page_itself_with_the_session_token(server: ReviewServer) -> None:
    item, generation, _ = exported_traces(server.state.recipe)[0]
    verdict = {"item_id": item, "generation_id": generation, "decision": "accept"}
    page = visitor(server, "alice")
    refused = [
        ({"Origin": "http://attacker.example"}, 403, "cross-origin"),
        ({"Origin": f"http://localhost:{server.port}"}, 403, "cross-origin"),  # another site than the page's
        ({"Origin": "null"}, 403, "cross-origin"),  # a file:// page
        ({"Sec-Fetch-Site": "same-site"}, 403, "cross-site"),  # another port of 127.0.0.1
        ({"Content-Type": "text/plain"}, 415, "send JSON"),
        ({"Content-Type": "application/json; charset=latin-1"}, 415, "send JSON"),
        ({"X-RRD-Request": "0"}, 403, "X-RRD-Request"),
        ({"X-RRD-CSRF": "guessed"}, 403, "CSRF"),
        ({"Cookie": ""}, 401, "session"),
    ]
    for headers, status, message in refused:
        got, reply = page.post("/api/verdict", verdict, headers)
        assert got == status and message in reply["error"], (headers, reply)
    other = Visitor(server)  # another browser's session: its CSRF token is not this session's
    got, _ = page.post("/api/verdict", verdict, {"X-RRD-CSRF": other.csrf})
    assert got == 403
    without_origin = {"Cookie": page.cookie, "X-RRD-Request": "1", "X-RRD-CSRF": page.csrf}
    assert call(server, "POST", "/api/verdict", verdict, without_origin)[0] == 403
    assert written(server) == 0
    assert [r.status for r in server.refusals] == [s for _, s, _ in refused] + [403, 403]

    got, reply = page.verdict(**verdict)
    assert got == 200 and reply["mine"]["annotator"] == "alice"
    line = json.loads((server.state.folder / "alice.jsonl").read_text())
    assert line["session"] == page.session["session"] and line["annotator"] == "alice"


def test_a_token_admits_a_browser_once(built: Path, tmp_path: Path) -> None:
    assert server_token("0.0.0.0", None) and len(server_token("0.0.0.0", None) or "") >= 16  # generated off loopback
    assert server_token("127.0.0.1", None) is None and server_token("::1", None) is None
    for short in ("a", "x" * 15, "é" * 20, "has space in it!"):
        with pytest.raises(SetupError, match="16 to 256"):
            server_token("0.0.0.0", short)
    token = "t0ken-for-the-review-test"
    running = ReviewServer(recipe_over(built, tmp_path), port=0, token=token)
    running.start()
    try:
        assert running.url.endswith(f"?token={token}")
        assert call(running, "GET", "/")[0] == 401
        assert call(running, "GET", "/api/session")[0] == 401
        assert call(running, "GET", "/?token=wrong")[0] == 401
        status, headers, _ = call(running, "GET", "/?token=%C3%A9t%C3%A9")  # non-ASCII: refused, not a crash
        assert status == 401 and "content-security-policy" in headers
        status, headers, _ = call(running, "GET", f"/?token={token}&x=1")
        assert status == 303 and headers["location"] == "/?x=1"
        status, headers, _ = call(running, "GET", f"//elsewhere.example/?token={token}")
        assert status == 303 and headers["location"] == "/elsewhere.example/"  # stays on this server
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, _, body = call(running, "GET", "/api/session", headers={"Cookie": cookie.split(";")[0]})
        assert status == 200 and json.loads(body)["recipe"] == "small"
        page = Visitor(running, entry=f"/?token={token}")
        page.name("alice")
        item, generation, _ = exported_traces(running.state.recipe)[0]
        assert page.verdict(item_id=item, generation_id=generation, decision="accept")[0] == 200
    finally:
        running.close()


def test_queues_filters_and_a_stratified_batch(server: ReviewServer) -> None:
    alice, bob = visitor(server, "alice"), visitor(server, "bob")
    session = alice.session
    assert set(session["facets"]["source"]) == {"aptos2019", "ffa_ir", "case_reports"}
    everything = alice.get("/api/queue?queue=all")
    total = len(everything["keys"])
    assert total == len(exported_traces(server.state.recipe)) and everything["counts"]["unreviewed"] == total
    ffa = alice.get("/api/queue?queue=all&source=ffa_ir")
    assert 0 < len(ffa["keys"]) < total
    details = [alice.get(f"/api/item?item={i}&generation={g}") for i, g in ffa["keys"]]
    assert {d["meta"]["source"] for d in details} == {"ffa_ir"}
    batch = alice.get("/api/queue?queue=all&sample=4&seed=1")
    assert len(batch["keys"]) == 4 and batch["keys"] == bob.get("/api/queue?queue=all&sample=4&seed=1")["keys"]
    strata = {
        (d["meta"]["source"], d["meta"]["task"])
        for d in (alice.get(f"/api/item?item={i}&generation={g}") for i, g in batch["keys"])
    }
    assert len(strata) == 3  # aptos/basic, ffa_ir/basic, case_reports/complex: each has a place in the batch

    pages, after, more = [], "", True
    while more:  # the page asks for a queue a few hundred keys at a time
        page = alice.get(f"/api/queue?queue=all&limit=5&after={after}")
        assert len(page["keys"]) <= 5 and page["counts"]["all"] == total
        pages += page["keys"]
        after, more = "|".join(page["keys"][-1]), page["more"]
    assert pages == everything["keys"]
    for query in ("queue=nope", "sample=many", "limit=-1", "seed=x"):
        status, _, body = alice.request("GET", f"/api/queue?{query}")
        assert status == 400 and json.loads(body)["error"], query

    item, generation = everything["keys"][0]
    assert alice.verdict(item_id=item, generation_id=generation, decision="reject", reason="reference_wrong")[0] == 200
    after = alice.get("/api/queue?queue=unreviewed")
    assert [item, generation] not in after["keys"] and after["counts"]["rejected"] == 1
    assert bob.get("/api/queue?queue=unreviewed")["counts"]["unreviewed"] == total  # unreviewed: by the session's own
    assert bob.get("/api/queue?queue=rejected")["keys"] == [[item, generation]]


def test_an_item_carries_everything_the_page_shows(server: ReviewServer) -> None:
    page = Visitor(server)
    keys = page.get("/api/queue?queue=all&source=case_reports")["keys"]
    detail = page.get(f"/api/item?item={keys[0][0]}&generation={keys[0][1]}")
    assert detail["question"] and detail["trace"]["think"].startswith("Step 1") and detail["trace"]["answer"]
    assert detail["reference"]["text"] and detail["meta"]["pass_at_k"] is not None
    assert {check["name"] for check in detail["checks"]} >= {"answer verified", "trace filters"}
    assert len(detail["images"]) >= 2  # a case report: several images, side by side
    for image in detail["images"]:
        status, headers, body = page.request("GET", image["url"])
        assert status == 200 and headers["content-type"] in ("image/jpeg", "image/png") and len(body) > 1000
        assert "immutable" in headers["cache-control"] and "content-security-policy" in headers
    assert page.request("GET", "/image/" + "0" * 64)[0] == 404
    assert page.request("GET", "/image/not-a-hash")[0] == 404
    assert call(server, "GET", detail["images"][0]["url"])[0] == 401  # images need the session too
    assert page.request("GET", "/api/item?item=nope&generation=nope")[0] == 404
    assert page.request("GET", "/api/item?item=nope")[0] == 400
    assert page.request("GET", "/static/../../recipe.yaml")[0] == 404


def test_bad_verdicts_are_refused_with_a_reason(server: ReviewServer) -> None:
    item, generation, _ = exported_traces(server.state.recipe)[0]
    base = {"item_id": item, "generation_id": generation}
    page = visitor(server, "alice")
    cases: list[tuple[Any, int, str]] = [
        (base | {"decision": "reject"}, 400, "needs a reason"),
        (base | {"decision": "reject", "reason": "other"}, 400, "say why"),
        (base | {"decision": "edit"}, 400, "nothing was changed"),
        (base | {"decision": "edit", "edited_answer": "<answer>x"}, 422, "must not contain"),
        (base | {"decision": "maybe"}, 422, "decision: Input should be 'accept'"),
        (base | {"decision": "accept", "annotator": "bob"}, 422, "annotator: Extra inputs are not permitted"),
        (base | {"decision": "accept", "note": 5}, 422, "note: Input should be a valid string"),
        (base | {"decision": "accept", "note": ["a"]}, 422, "note: Input should be a valid string"),
        (base | {"decision": "accept", "adjudication": "no"}, 422, "adjudication: Input should be a valid boolean"),
        (base | {"decision": "accept", "adjudication": 0}, 422, "adjudication: Input should be a valid boolean"),
        (base | {"decision": "accept", "generation_id": "nope"}, 404, "no trace"),
        (base | {"decision": "accept", "item_id": ""}, 422, "item_id"),
        ([base | {"decision": "accept"}], 422, "Input should be an object"),
        (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),  # nested past the parser's limit: refused, no crash
        (b'{"decision": "accept", "item_id": "\xff"}', 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
    ]
    for body, status, message in cases:
        got, reply = page.post("/api/verdict", body)
        assert got == status and message in reply["error"], (body, reply)
    got, reply = page.post_announced("/api/verdict", 512 * 1024 + 1)
    assert got == 413 and "at most" in reply["error"]
    unnamed = Visitor(server)
    got, reply = unnamed.verdict(**base, decision="accept")
    assert got == 403 and "name yourself first" in reply["error"]
    for bad in ("../../x", "", "a b", "é"):
        got, reply = unnamed.post("/api/annotator", {"annotator": bad})
        assert got == 422 and "letters, digits" in reply["error"], bad
    assert written(server) == 0


def test_a_rebuild_is_picked_up_and_a_running_build_does_not_stop_review(server: ReviewServer) -> None:
    from retinal_reason_data.catalog import Catalog

    page = Visitor(server)
    before = server.state.snapshot
    catalog = Catalog(server.state.recipe.catalog_path)  # a build holds the catalog
    try:
        catalog.set_meta("review_test", "1")
        catalog.db.execute("CHECKPOINT")
        session = page.get("/api/session")
        assert "as it was when review started" in session["build_note"] and server.state.snapshot is before
        assert page.get("/api/queue?queue=all")["keys"]  # review goes on meanwhile
    finally:
        catalog.close()
    session = page.get("/api/session")  # the build is done: a fresh snapshot
    assert session["build_note"] == "" and server.state.snapshot is not before


def test_review_command_errors_are_plain(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["review", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "recipe file not found" in result.output
    result = runner.invoke(app, ["review", str(write_recipe(tmp_path))])
    assert result.exit_code == 2 and "no catalog yet" in result.output
    result = runner.invoke(app, ["review", str(write_recipe(tmp_path)), "--port", "0", "--token", "a"])
    assert result.exit_code == 2 and "--token: 16 to 256" in result.output
    result = runner.invoke(app, ["review", str(write_recipe(tmp_path)), "--port", "0", "--annotator", "a b"])
    assert result.exit_code == 2 and "--annotator: a name of letters" in result.output
