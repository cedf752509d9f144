"""The teacher as a second reader of case reports, through the real `openai` client against a loopback server:
complex items are exported only where the teacher's reading (`rrd extract`) agrees with the rules' diagnosis;
the others are withheld, counted in `rrd stats --json`, listed in the review page's `second_reader` queue, and
released once an annotator accepts one of their traces."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.cli import app
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.recipe import load_recipe
from retinal_reason_data.review.snapshot import ReviewSet, queue_view
from retinal_reason_data.review.verdicts import append_verdict, utc_now, verdict_folder
from retinal_reason_data.schema import Decision, Verdict
from tests.conftest import write_recipe
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.slow  # the module's own ingest and builds with two readers

runner = CliRunner()
_STATED = re.compile(r"(?:diagnosis of|diagnosed with|final diagnosis was) ([A-Za-z' -]+?)(?: \(|\.| was)")


def reader(request: dict[str, Any]) -> str:
    """A stand-in model. Extraction: the diagnosis the case states, except a wrong one for the VKH case and no
    JSON at all for the retinitis pigmentosa case. Questions: 'A', or a fixed name for open questions."""
    system = request["messages"][0]["content"]
    if isinstance(system, str) and "extract facts" in system:
        text = request["messages"][-1]["content"]
        if "retinitis pigmentosa" in text:
            return "I cannot read this."
        stated = _STATED.search(text)
        diagnosis = stated.group(1) if stated else None
        if diagnosis and "Vogt" in diagnosis:
            diagnosis = "sarcoid uveitis"
        return json.dumps({"age": 50, "sex": "F", "chief_complaint": "blurred vision", "final_diagnosis": diagnosis})
    question = request["messages"][-1]["content"][-1]["text"]
    answer = "A" if "Options:" in question else "Central serous chorioretinopathy"
    return f"<think>Step 1: I read the case.\nStep 2: I looked at every image in turn.</think><answer>{answer}</answer>"


def _complex_assigned(recipe_path: Path) -> dict[str, str]:
    """Complex item id -> case id, of the items the release keeps."""
    catalog = Catalog(load_recipe(recipe_path).catalog_path)
    try:
        rows = catalog.query(
            "SELECT a.item_id, i.case_id FROM assignments a JOIN items i ON i.item_id = a.item_id "
            "WHERE i.task = 'complex'"
        )
    finally:
        catalog.close()
    return dict(rows)


@pytest.fixture(scope="module")
def two_readers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FakeOpenAI]:
    folder = tmp_path_factory.mktemp("readers")
    server = FakeOpenAI(reader).__enter__()
    recipe = write_recipe(
        folder,
        sources=[{"adapter": "pmc_oa", "root": "raw/pmc_oa", "phantom": {"cases": 8, "seed": 4}}],
        teacher={"kind": "openai", "base_url": server.base_url, "model": "reader", "concurrency": 4, "attempts": 1},
        export={"out": "export", "max_shard_size": "200KB", "allow_empty": True},  # 8 reports: some splits empty
    )
    assert runner.invoke(app, ["ingest", str(recipe)], catch_exceptions=False).exit_code == 0
    yield recipe, server
    server.__exit__(None, None, None)


def test_the_build_reads_each_case_report_and_releases_only_items_both_readers_agree_on(
    two_readers: tuple[Path, FakeOpenAI],
) -> None:
    recipe, server = two_readers
    result = runner.invoke(app, ["build", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "second reader" in result.output and "not read yet" not in result.output
    stats = json.loads(runner.invoke(app, ["stats", str(recipe), "--json"]).output)
    catalog = Catalog(load_recipe(recipe).catalog_path)
    try:
        diagnoses = dict(catalog.query("SELECT case_id, json_extract_string(data, '$.context.diagnosis') FROM cases"))
        details = [d for (d,) in catalog.query("SELECT detail FROM drops WHERE reason = 'readers_disagree'")]
    finally:
        catalog.close()
    readings = [r for r in server.requests if "extract facts" in str(r["messages"][0]["content"])]
    assert len(readings) == len(diagnoses)  # the build asked the teacher to read every case report once
    vkh = sum(d == "Vogt-Koyanagi-Harada disease" for d in diagnoses.values())
    rp = sum(d == "Retinitis pigmentosa" for d in diagnoses.values())
    assert vkh and rp
    readers = stats["second_reader"]
    assert readers["enabled"] and readers["readers"] == ["rules", "teacher:reader"]
    assert readers["cases"] == {"agree": len(diagnoses) - vkh - rp, "disagree": vkh, "missing": 0, "invalid": rp}
    withheld = stats["dropped_by_filter"]
    assert withheld.get("readers_disagree", 0) + withheld.get("readers_invalid", 0) == readers["items_withheld"] > 0
    released = set(_complex_assigned(recipe).values())
    assert released and all(diagnoses[c] not in ("Vogt-Koyanagi-Harada disease", "Retinitis pigmentosa")
                            for c in released)  # fmt: skip
    assert details and all("the teacher 'sarcoid uveitis'" in d and "second_reader" in d for d in details)

    sent = len(server.requests)  # the readings are cached like the attempts: a rerun asks nothing
    again = runner.invoke(app, ["extract", str(recipe), "--json"], catch_exceptions=False)
    assert again.exit_code == 0 and json.loads(again.output)["asked"] == 0
    assert runner.invoke(app, ["build", str(recipe)], catch_exceptions=False).exit_code == 0
    assert len(server.requests) == sent


def test_without_the_teachers_reading_no_complex_item_is_released(tmp_path: Path) -> None:
    """A case whose reading never came back (the teacher failed on it) is `missing`, and the detail of its withheld
    items says how to ask again."""
    from retinal_reason_data.teacher.second_reader import compare_reading

    case = next(iter(_pmc_cases(tmp_path)))
    reading = compare_reading(case, None, default_ontology())
    assert reading.outcome == "missing" and "rrd extract" in reading.detail


def _pmc_cases(folder: Path) -> list:
    recipe = write_recipe(
        folder, sources=[{"adapter": "pmc_oa", "root": "raw/pmc_oa", "phantom": {"cases": 3, "seed": 4}}]
    )
    assert runner.invoke(app, ["ingest", str(recipe)], catch_exceptions=False).exit_code == 0
    catalog = Catalog(load_recipe(recipe).catalog_path)
    try:
        return list(catalog.iter_cases())
    finally:
        catalog.close()


def test_withheld_items_wait_in_the_review_queue_and_an_accept_releases_them(
    two_readers: tuple[Path, FakeOpenAI],
) -> None:
    recipe_path, _ = two_readers
    recipe = load_recipe(recipe_path)
    snapshot = ReviewSet(recipe)
    try:
        flagged = sorted(snapshot.second_reader_keys)
        chosen = [entry.key for entry in snapshot.entries]
        keys, counts, _ = queue_view(chosen, set(chosen), [], "ann", "second_reader", second_reader=set(flagged))
        assert keys == flagged and counts["second_reader"] == len(flagged) > 0
        detail = snapshot.detail(flagged[0])
        assert detail is not None and any(check["name"].startswith("readers: readers_") for check in detail["checks"])
    finally:
        snapshot.close()
    item_id, generation_id = flagged[0]
    append_verdict(
        verdict_folder(recipe),
        Verdict(
            item_id=item_id, generation_id=generation_id, annotator="ann", decision=Decision.ACCEPT, time=utc_now()
        ),
    )
    assert runner.invoke(app, ["export", str(recipe_path)], catch_exceptions=False).exit_code == 0
    assert item_id in _complex_assigned(recipe_path)
    stats = json.loads(runner.invoke(app, ["stats", str(recipe_path), "--json"]).output)
    assert stats["second_reader"]["items_settled_in_review"] == 1


def test_with_the_offline_teacher_only_the_rules_read(tmp_path: Path) -> None:
    from retinal_reason_data.teacher.second_reader import card_section, withhold_disagreements

    recipe = load_recipe(write_recipe(tmp_path, teacher={"kind": "offline"}))
    catalog = Catalog(recipe.catalog_path)
    try:
        report = withhold_disagreements(recipe, catalog, default_ontology())
    finally:
        catalog.close()
    assert report.to_dict(None) == {
        "enabled": False,
        "readers": ["rules"],
        "cases": {"agree": 0, "disagree": 0, "missing": 0, "invalid": 0},
        "items_withheld": 0,
        "items_settled_in_review": 0,
    }
    assert "no second reader" in card_section(report.to_dict(None), complex_rows=3)
