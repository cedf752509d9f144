"""The review server over HTTP (tokens, Host and origin checks, queues, filters, batches, verdicts); Label Studio
is in test_labelstudio.py."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retinal_reason_data.annotations import read_verdicts
from retinal_reason_data.cli import app
from retinal_reason_data.recipe import Recipe, load_recipe
from retinal_reason_data.review.server import ReviewServer
from tests.conftest import write_recipe
from tests.test_annotations import REVIEW_SOURCES, build_review_recipe, exported_traces


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_review_recipe(tmp_path_factory.mktemp("served"))


def recipe_over(built: Path, folder: Path) -> Recipe:
    """A recipe over the built catalog whose verdicts (annotations/) live in `folder`."""
    sources = [{**source, "root": str(built.parent / source["root"])} for source in REVIEW_SOURCES]
    return load_recipe(write_recipe(folder, sources=sources, catalog=str(built.parent / "small.duckdb")))


@pytest.fixture
def server(built: Path, tmp_path: Path) -> Iterator[ReviewServer]:
    running = ReviewServer(recipe_over(built, tmp_path), port=0)
    running.start()
    yield running
    running.close()


def call(
    server: ReviewServer, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers=sent | (headers or {}))
    response = connection.getresponse()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    connection.close()
    return result


def get_json(server: ReviewServer, path: str) -> Any:
    status, _, body = call(server, "GET", path)
    assert status == 200, body
    return json.loads(body)


def test_loopback_needs_no_token_but_checks_the_host(server: ReviewServer) -> None:
    assert server.token is None and server.url == f"http://127.0.0.1:{server.port}/"
    status, headers, body = call(server, "GET", "/")
    assert status == 200 and b'src="/static/app.js"' in body
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    status, _, _ = call(server, "GET", "/api/session", headers={"Host": f"attacker.example:{server.port}"})
    assert status == 400  # a page on another site that rebinds its name to 127.0.0.1 gets nothing


def test_posts_must_be_json_from_the_page_itself(server: ReviewServer) -> None:
    item, generation, _ = exported_traces(server.state.recipe)[0]
    verdict = {"item_id": item, "generation_id": generation, "annotator": "alice", "decision": "accept"}
    status, _, _ = call(server, "POST", "/api/verdict", verdict, {"Origin": "http://attacker.example"})
    assert status == 403
    status, _, _ = call(server, "POST", "/api/verdict", verdict, {"Content-Type": "text/plain"})
    assert status == 415
    assert read_verdicts(server.state.folder).count == 0
    status, _, _ = call(server, "POST", "/api/verdict", verdict, {"Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 200 and read_verdicts(server.state.folder).count == 1


def test_any_other_address_requires_the_token(built: Path, tmp_path: Path) -> None:
    running = ReviewServer(recipe_over(built, tmp_path), host="0.0.0.0", port=0)
    running.start()
    try:
        assert running.token and f"?token={running.token}" in running.url
        status, _, _ = call(running, "GET", "/api/session")
        assert status == 401
        status, _, _ = call(running, "GET", "/?token=wrong")
        assert status == 401
        status, headers, _ = call(running, "GET", f"/?token={running.token}")
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, _, body = call(running, "GET", "/api/session", headers={"Cookie": cookie.split(";")[0]})
        assert status == 200 and json.loads(body)["recipe"] == "small"
    finally:
        running.close()


def test_queues_filters_and_a_stratified_batch(server: ReviewServer) -> None:
    session = get_json(server, "/api/session")
    assert set(session["facets"]["source"]) == {"aptos2019", "ffa_ir", "case_reports"}
    everything = get_json(server, "/api/queue?queue=all&annotator=alice")
    total = len(everything["keys"])
    assert total == len(exported_traces(server.state.recipe)) and everything["counts"]["unreviewed"] == total
    ffa = get_json(server, "/api/queue?queue=all&source=ffa_ir&annotator=alice")
    assert 0 < len(ffa["keys"]) < total
    details = [get_json(server, f"/api/item?item={i}&generation={g}") for i, g in ffa["keys"]]
    assert {d["meta"]["source"] for d in details} == {"ffa_ir"}
    batch = get_json(server, "/api/queue?queue=all&sample=4&seed=1&annotator=alice")
    assert len(batch["keys"]) == 4 and batch["keys"] == get_json(server, "/api/queue?queue=all&sample=4&seed=1")["keys"]
    strata = {
        (d["meta"]["source"], d["meta"]["task"])
        for d in (get_json(server, f"/api/item?item={i}&generation={g}") for i, g in batch["keys"])
    }
    assert len(strata) == 3  # aptos/basic, ffa_ir/basic, case_reports/complex: each has a place in the batch

    pages, after, more = [], "", True
    while more:  # the page asks for a queue a few hundred keys at a time
        page = get_json(server, f"/api/queue?queue=all&limit=5&after={after}")
        assert len(page["keys"]) <= 5 and page["counts"]["all"] == total
        pages += page["keys"]
        after, more = "|".join(page["keys"][-1]), page["more"]
    assert pages == everything["keys"]

    item, generation = everything["keys"][0]
    reply = call(
        server,
        "POST",
        "/api/verdict",
        {
            "item_id": item,
            "generation_id": generation,
            "annotator": "alice",
            "decision": "reject",
            "reason": "reference_wrong",
        },
    )
    assert reply[0] == 200
    after = get_json(server, "/api/queue?queue=unreviewed&annotator=alice")
    assert [item, generation] not in after["keys"] and after["counts"]["rejected"] == 1
    assert get_json(server, "/api/queue?queue=unreviewed&annotator=bob")["counts"]["unreviewed"] == total
    assert get_json(server, "/api/queue?queue=rejected&annotator=bob")["keys"] == [[item, generation]]


def test_an_item_carries_everything_the_page_shows(server: ReviewServer) -> None:
    keys = get_json(server, "/api/queue?queue=all&source=case_reports")["keys"]
    detail = get_json(server, f"/api/item?item={keys[0][0]}&generation={keys[0][1]}")
    assert detail["question"] and detail["trace"]["think"].startswith("Step 1") and detail["trace"]["answer"]
    assert detail["reference"]["text"] and detail["meta"]["pass_at_k"] is not None
    assert {check["name"] for check in detail["checks"]} >= {"answer verified", "trace filters"}
    assert len(detail["images"]) >= 2  # a case report: several images, side by side
    for image in detail["images"]:
        status, headers, body = call(server, "GET", image["url"])
        assert status == 200 and headers["content-type"] in ("image/jpeg", "image/png") and len(body) > 1000
    assert call(server, "GET", "/image/" + "0" * 64)[0] == 404
    assert call(server, "GET", "/api/item?item=nope&generation=nope")[0] == 404
    assert call(server, "GET", "/static/../../recipe.yaml")[0] == 404


def test_bad_verdicts_are_refused_with_a_reason(server: ReviewServer) -> None:
    item, generation, _ = exported_traces(server.state.recipe)[0]
    base = {"item_id": item, "generation_id": generation, "annotator": "alice"}
    cases = [
        (base | {"decision": "reject"}, 400, "needs a reason"),
        (base | {"decision": "reject", "reason": "other"}, 400, "say why"),
        (base | {"decision": "edit"}, 400, "nothing was changed"),
        (base | {"decision": "edit", "edited_answer": "<answer>x"}, 422, "must not contain"),
        (base | {"decision": "maybe"}, 400, "accept"),
        (base | {"decision": "accept", "annotator": "../../x"}, 400, "annotator"),
        (base | {"decision": "accept", "generation_id": "nope"}, 404, "no trace"),
    ]
    for body, status, message in cases:
        got, _, reply = call(server, "POST", "/api/verdict", body)
        assert got == status and message in json.loads(reply)["error"], (body, reply)
    assert read_verdicts(server.state.folder).count == 0


def test_a_rebuild_is_picked_up_and_a_running_build_does_not_stop_review(server: ReviewServer) -> None:
    from retinal_reason_data.catalog import Catalog

    before = server.state.snapshot
    catalog = Catalog(server.state.recipe.catalog_path)  # a build holds the catalog
    try:
        catalog.set_meta("review_test", "1")
        catalog.db.execute("CHECKPOINT")
        session = get_json(server, "/api/session")
        assert "as it was when review started" in session["build_note"] and server.state.snapshot is before
        assert get_json(server, "/api/queue?queue=all")["keys"]  # review goes on meanwhile
    finally:
        catalog.close()
    session = get_json(server, "/api/session")  # the build is done: a fresh snapshot
    assert session["build_note"] == "" and server.state.snapshot is not before


def test_review_command_errors_are_plain(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["review", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "recipe file not found" in result.output
    result = runner.invoke(app, ["review", str(write_recipe(tmp_path))])
    assert result.exit_code == 2 and "no catalog yet" in result.output
