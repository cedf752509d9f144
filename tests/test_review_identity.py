"""Who decided what: the annotator is bound to the browser's session (named once, switched only explicitly), every
verdict records its session, and an adjudication counts only from an annotator who took no part in the
disagreement (the server refuses the others; the build ignores and counts any that a file holds)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.review.server import ReviewServer
from retinal_reason_data.review.verdicts import (
    AnnotationError,
    TraceReview,
    append_verdict,
    plan_review,
    read_verdicts,
    review_stats,
)
from tests.helpers.builds import copy_build
from tests.helpers.review import Visitor, call, exported_traces, recipe_over, verdict, visitor


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_review_build: Path) -> Path:
    """A copy of the session's review build: this module's tests may write to its catalog."""
    return copy_build(shared_review_build, tmp_path_factory.mktemp("identity"))


@pytest.fixture
def server(built: Path, tmp_path: Path) -> Iterator[ReviewServer]:
    running = ReviewServer(recipe_over(built, tmp_path), port=0, annotator="alice")
    running.start()
    yield running
    running.close()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_annotator_option_names_only_the_first_session_and_names_change_only_by_a_switch(
    server: ReviewServer,
) -> None:
    keys = [(item, generation) for item, generation, _ in exported_traces(server.state.recipe)]
    first, second = Visitor(server), Visitor(server)
    assert first.session["annotator"] == "alice" and second.session["annotator"] is None
    status, reply = second.verdict(item_id=keys[0][0], generation_id=keys[0][1], decision="accept")
    assert status == 403 and "name yourself first" in reply["error"]
    second.name("bob")
    assert second.verdict(item_id=keys[0][0], generation_id=keys[0][1], decision="accept")[0] == 200
    status, headers, _ = second.request("GET", "/")  # bob reloads the page: the same session, still bob
    assert status == 200 and "set-cookie" not in headers
    assert second.get("/api/session")["annotator"] == "bob"
    assert second.verdict(item_id=keys[1][0], generation_id=keys[1][1], decision="accept")[0] == 200
    assert first.verdict(item_id=keys[2][0], generation_id=keys[2][1], decision="accept")[0] == 200
    second.name("carol")  # the explicit switch: from now on this browser reviews as carol
    assert second.verdict(item_id=keys[3][0], generation_id=keys[3][1], decision="accept")[0] == 200

    folder = server.state.folder
    alice, bob, carol = (lines(folder / f"{name}.jsonl") for name in ("alice", "bob", "carol"))
    assert [(v["item_id"], v["generation_id"]) for v in alice] == [keys[2]]
    assert [(v["item_id"], v["generation_id"]) for v in bob] == keys[:2]
    assert [(v["item_id"], v["generation_id"]) for v in carol] == [keys[3]]
    assert {v["session"] for v in alice} == {first.session["session"]}
    assert {v["session"] for v in bob + carol} == {second.session["session"]}
    text = "".join(path.read_text() for path in folder.glob("*.jsonl"))
    for page in (first, second):  # the cookie (the session's secret) and the CSRF token are never written down
        assert page.cookie.split("=", 1)[1] not in text and page.csrf not in text
    third = Visitor(server)  # a server's --annotator names no later session
    assert third.session["annotator"] is None


def test_an_adjudication_must_come_from_someone_who_took_no_part(server: ReviewServer) -> None:
    (item, generation, _), (other_item, other_generation, _) = exported_traces(server.state.recipe)[:2]
    trace = {"item_id": item, "generation_id": generation}
    alice, bob, carol = Visitor(server), visitor(server, "bob"), visitor(server, "carol")
    assert alice.verdict(**trace, decision="accept")[0] == 200
    assert bob.verdict(**trace, decision="reject", reason="wrong_reasoning")[0] == 200
    shown = {
        name: page.get(f"/api/item?item={item}&generation={generation}")["review"]
        for page, name in ((alice, "alice"), (bob, "bob"), (carol, "carol"))
    }
    assert shown["carol"]["can_adjudicate"] and not shown["alice"]["can_adjudicate"]
    assert not shown["bob"]["can_adjudicate"] and shown["carol"]["disagreement"]
    for page, name in ((alice, "alice"), (bob, "bob")):
        status, reply = page.verdict(**trace, decision="accept", adjudication=True)
        assert status == 403 and f"{name} took part in this disagreement" in reply["error"]
        assert "alice accept, bob reject" in reply["error"]
    status, reply = carol.verdict(**trace, decision="accept", adjudication=True)
    assert status == 200 and reply["adjudicated"] and not reply["disagreement"] and reply["decision"] == "accept"
    status, reply = carol.verdict(**trace, decision="reject", reason="poor_text")  # now a party? refused
    assert status == 409 and "carol adjudicated this trace" in reply["error"]
    status, reply = carol.verdict(
        item_id=other_item, generation_id=other_generation, decision="accept", adjudication=True
    )
    assert status == 409 and "no disagreement" in reply["error"]
    review = read_verdicts(server.state.folder).review((item, generation))
    assert review is not None and review.adjudication is not None and review.adjudication.annotator == "carol"
    assert call(server, "GET", "/api/queue?queue=disagreements")[0] == 401  # (the queue needs a session too)
    assert alice.get("/api/queue?queue=disagreements")["counts"]["disagreements"] == 0


def test_the_build_ignores_and_counts_an_adjudication_by_one_who_took_part(built: Path, tmp_path: Path) -> None:
    recipe = recipe_over(built, tmp_path)
    (item, generation, _), (item2, generation2, _) = exported_traces(recipe)[:2]
    folder = tmp_path / "annotations" / recipe.name
    accept = verdict(item, generation, "alice", "accept", 0)
    reject = verdict(item, generation, "bob", "reject", 1, reason="wrong_reasoning")
    self_settled = verdict(item, generation, "alice", "accept", 2, adjudication=True)  # alice settles her own dispute
    for line in (accept, reject, self_settled):
        append_verdict(folder, line)
    review = TraceReview(item, generation, [accept, reject, self_settled])
    assert review.adjudication is None and review.ignored_adjudications == [self_settled]
    assert review.disagreement and review.final is reject  # as if alice's adjudication were not there

    settled = verdict(item2, generation2, "dana", "reject", 3, reason="poor_text", adjudication=True)
    second = [verdict(item2, generation2, "alice", "accept", 0), verdict(item2, generation2, "bob", "edit", 1,
              edited_answer="x"), settled]  # fmt: skip
    for line in second:
        append_verdict(folder, line)
    assert TraceReview(item2, generation2, second).final is settled  # dana took no part: she settles it

    catalog = Catalog(recipe.catalog_path)
    try:
        plan = plan_review(recipe, catalog)
        stats = review_stats(recipe, catalog)
    finally:
        catalog.close()
    assert plan.ignored_adjudications == 1 and stats["adjudications_ignored"] == 1
    assert stats["adjudicated"] == 1 and stats["disagreements"] == 1


def test_old_verdict_files_stay_readable_and_the_adjudication_flag_is_a_real_boolean(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    base = {"item_id": "i", "generation_id": "g", "annotator": "ann", "decision": "accept"}
    old = base | {"adjudication": False, "time": "2025-03-01T09:00:00Z"}  # written before sessions existed
    (folder / "ann.jsonl").write_text(json.dumps(old) + "\n")
    log = read_verdicts(folder)
    assert log.count == 1 and log.review(("i", "g")).final.session is None  # type: ignore[union-attr]
    (folder / "ann.jsonl").write_text(json.dumps(old | {"adjudication": "no"}) + "\n")
    with pytest.raises(
        AnnotationError, match=r"ann\.jsonl line 1: key 'adjudication': Input should be a valid boolean"
    ):
        read_verdicts(folder)
    (folder / "ann.jsonl").write_text(json.dumps(old | {"session": "not-a-session"}) + "\n")
    with pytest.raises(AnnotationError, match=r"line 1: key 'session'"):
        read_verdicts(folder)
