"""Verdicts: the append-only store, resolution, Cohen's kappa, and a build that honours them."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.cli import app
from retinal_reason_data.pipeline import BuildReport, run_export
from retinal_reason_data.recipe import Recipe, load_recipe
from retinal_reason_data.review.snapshot import Entry, allocate, stratified_sample
from retinal_reason_data.review.verdicts import (
    AnnotationError,
    TraceReview,
    VerdictLog,
    append_verdict,
    cohen_kappa,
    read_verdicts,
    verdict_folder,
)
from retinal_reason_data.schema import Decision, Verdict
from retinal_reason_data.teacher.verify import split_response
from tests.helpers.builds import copy_build
from tests.helpers.recipes import write_recipe
from tests.helpers.review import REVIEW_SOURCES, exported_traces, verdict


# --- the model and the store ------------------------------------------------------------------------------
def test_a_verdict_must_fit_its_decision() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        verdict("i", "g", "alice", "reject")
    with pytest.raises(ValueError, match="needs edited_think or edited_answer"):
        verdict("i", "g", "alice", "edit")
    with pytest.raises(ValueError, match="carries no edited text"):
        verdict("i", "g", "alice", "accept", edited_answer="B")
    with pytest.raises(ValueError, match="time zone"):
        Verdict(item_id="i", generation_id="g", annotator="alice", decision="accept", time=datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        verdict("i", "g", "../etc/passwd", "accept")  # the name becomes a file name


def _append_many(folder: str, annotator: str, start: int, count: int) -> None:
    for n in range(start, start + count):
        note = f"verdict {n} " + "x" * 3000  # long lines: a torn write would show
        append_verdict(Path(folder), verdict(f"item{n}", f"gen{n}", annotator, "accept", n, note=note))


def test_concurrent_writers_lose_no_verdict(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")  # separate processes, as separate review servers are
    with context.Pool(4) as pool:
        pool.starmap(_append_many, [(str(tmp_path), "alice", k * 40, 40) for k in range(4)])
    log = read_verdicts(tmp_path)
    assert log.count == 160
    assert sorted(int(item[4:]) for item, _ in log.trace_keys()) == list(range(160))
    lines = (tmp_path / "alice.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(line.startswith(b"{") and line.endswith(b"}") for line in lines[:-1])


def test_the_log_reads_only_complete_lines_and_names_a_bad_line(tmp_path: Path) -> None:
    path = append_verdict(tmp_path, verdict("i1", "g1", "alice", "accept"))
    log = VerdictLog(tmp_path)
    assert log.refresh() and log.count == 1
    line = verdict("i2", "g2", "alice", "reject", reason="wrong_reasoning").model_dump_json()
    with path.open("a") as handle:
        handle.write(line[:40])  # another process is half way through its write
    assert not log.refresh() and log.count == 1
    with path.open("a") as handle:
        handle.write(line[40:] + "\n")
    assert log.refresh() and log.count == 2
    assert log.review(("i2", "g2")).decision is Decision.REJECT
    with path.open("a") as handle:
        handle.write('{"item_id": "i3", "decision": "ok"}\n')
    with pytest.raises(AnnotationError, match=r"alice\.jsonl line 3: .*decision"):
        read_verdicts(tmp_path)
    (tmp_path / "bob.jsonl").write_text(verdict("i1", "g1", "carol", "accept").model_dump_json() + "\n")
    path.unlink()
    with pytest.raises(AnnotationError, match="annotator 'carol' in the file of 'bob'"):
        read_verdicts(tmp_path)


def test_an_append_after_a_hand_edit_without_newline_keeps_lines_apart(tmp_path: Path) -> None:
    path = tmp_path / "alice.jsonl"
    path.write_text(verdict("i1", "g1", "alice", "accept").model_dump_json())  # no trailing newline
    append_verdict(tmp_path, verdict("i2", "g2", "alice", "accept", 1))
    assert read_verdicts(tmp_path).count == 2


# --- resolution and agreement ------------------------------------------------------------------------------
def test_resolution_rules() -> None:
    accept_a = verdict("i", "g", "alice", "accept", 0)
    reject_b = verdict("i", "g", "bob", "reject", 1, reason="wrong_reasoning")
    item_c = verdict("i", "g", "carol", "reject", 2, reason="reference_wrong")
    edit_a = verdict("i", "g", "alice", "edit", 3, edited_answer="B")
    review = TraceReview("i", "g", [accept_a, reject_b])
    assert review.decision is Decision.REJECT and review.disagreement and not review.item_rejected
    review = TraceReview("i", "g", [accept_a, reject_b, item_c])
    assert review.final is item_c and review.item_rejected  # a reason about the item goes first
    assert TraceReview("i", "g", [accept_a, edit_a]).final is edit_a  # an annotator's latest verdict counts
    adjudicated = verdict("i", "g", "dana", "accept", 4, adjudication=True)
    review = TraceReview("i", "g", [accept_a, reject_b, adjudicated])
    assert review.decision is Decision.ACCEPT and not review.disagreement and review.adjudication is adjudicated


def test_cohen_kappa_matches_the_textbook() -> None:
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("y", "y")] * 5) is None  # chance agreement is 1: undefined
    assert cohen_kappa([]) is None
    assert cohen_kappa([("y", "y"), ("n", "n")]) == pytest.approx(1.0)


def test_a_batch_is_stratified_by_source_and_task() -> None:
    entries = [Entry(f"a{n:02d}", "g", "aptos", "CFP", "basic", "open") for n in range(60)]
    entries += [Entry(f"c{n:02d}", "g", "reports", "CFP", "complex", "open") for n in range(8)]
    entries += [Entry(f"o{n:02d}", "g", "oct", "OCT", "basic", "open") for n in range(2)]
    sample = stratified_sample(entries, 10, seed=3)
    assert len(sample) == 10 and sample == stratified_sample(entries, 10, seed=3)
    by_source = {s: sum(e.source == s for e in sample) for s in ("aptos", "reports", "oct")}
    # one each first; the other 7 in proportion to what is left (59, 7, 1): 6.2, 0.7, 0.1 -> 6, 1, 0
    assert by_source == {"aptos": 7, "reports": 2, "oct": 1}
    assert stratified_sample(entries, 10, seed=4) != sample
    assert allocate({"a": 5, "b": 1}, 100) == {"a": 5, "b": 1}
    assert sum(allocate({"a": 7, "b": 3, "c": 1}, 2).values()) == 2


# --- a build honours the verdicts ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def review_build(tmp_path_factory: pytest.TempPathFactory, shared_review_build: Path) -> Path:
    """A copy of the session's review build: this module's tests may write to its catalog."""
    return copy_build(shared_review_build, tmp_path_factory.mktemp("annotated"))


def _recipe_with_own_verdicts(built: Path, folder: Path) -> Recipe:
    """A recipe over the built catalog whose verdicts (annotations/) and export are in the test's own folder."""
    sources = [{**source, "root": str(built.parent / source["root"])} for source in REVIEW_SOURCES]
    path = write_recipe(folder, sources=sources, catalog=str(built.parent / "small.duckdb"))
    return load_recipe(path)


def _export(recipe: Recipe) -> BuildReport:
    report = BuildReport()
    catalog = Catalog(recipe.catalog_path)
    try:
        run_export(recipe, catalog, report)
    finally:
        catalog.close()
    return report


def _rows(recipe: Recipe, config: str) -> list[dict]:
    files = sorted((recipe.export.out / "data" / config).glob("*.parquet"))
    assert files, f"no {config} files"
    return [row for path in files for row in pq.read_table(path, columns=None).drop(["images"]).to_pylist()]


def _sft_rows(recipe: Recipe) -> dict[str, dict]:
    return {row["id"]: row for row in _rows(recipe, "sft")}


def _rl_ids(recipe: Recipe) -> set[str]:
    return {row["id"] for row in _rows(recipe, "rl")}


def test_a_build_leaves_out_rejections_and_exports_edits(review_build: Path, tmp_path: Path) -> None:
    recipe = _recipe_with_own_verdicts(review_build, tmp_path)
    traces = exported_traces(recipe)
    assert len(traces) >= 6
    (accepted, g_acc, _), (rejected, g_rej, _), (dropped, g_drop, _), (edited, g_edit, _) = traces[:4]
    folder = verdict_folder(recipe)
    catalog = Catalog(recipe.catalog_path)
    response = json.loads(catalog.query("SELECT data FROM generations WHERE fingerprint = ?", [g_edit])[0][0])[
        "response"
    ]
    catalog.close()
    think, answer = split_response(response)
    corrected = "Step 1: The annotator's own reasoning.\nStep 2: It reaches the same answer."
    for v in (
        verdict(accepted, g_acc, "alice", "accept"),
        verdict(rejected, g_rej, "alice", "reject", reason="hallucinated_finding", note="no drusen in this eye"),
        verdict(dropped, g_drop, "alice", "reject", reason="image_unusable"),
        verdict(edited, g_edit, "alice", "edit", edited_think=corrected),
        verdict(accepted, g_acc, "bob", "accept"),
        verdict(rejected, g_rej, "bob", "accept"),
    ):
        append_verdict(folder, v)

    report = _export(recipe).review
    assert report is not None
    assert (report.accepted, report.edited, report.rejected, report.items_rejected) == (1, 1, 2, 1)
    sft, rl = _sft_rows(recipe), _rl_ids(recipe)
    assert sft[accepted]["review"] == "accepted"
    assert rejected not in sft  # the rejected trace is left out; the item still serves rl if its split has it
    assert dropped not in sft and dropped not in rl  # a reason about the item drops it from the release
    assert sft[edited]["review"] == "edited" and sft[edited]["think"] == corrected
    assert sft[edited]["response"] == f"<think>\n{corrected}\n</think>\n<answer>{answer}</answer>"
    assert think != corrected
    unreviewed = [item for item, _, _ in traces[4:]]
    assert all(sft[item]["review"] is None for item in unreviewed if item in sft)

    card = (recipe.export.out / "README.md").read_text()
    assert "## Review" in card and "1 accepted, 1 edited, 2 rejected" in card
    assert "| source | task | traces | agreement | Cohen's kappa |" in card

    result = CliRunner().invoke(app, ["stats", str(recipe.path), "--json"])
    assert result.exit_code == 0, result.output
    review = json.loads(result.output)["review"]
    catalog = Catalog(recipe.catalog_path)
    try:
        drops = dict(catalog.query("SELECT reason, count(*) FROM drops WHERE stage = 'review' GROUP BY reason"))
    finally:
        catalog.close()
    assert review["decisions"] == {"accept": 1, "edit": 1, "reject": 2, "edit_unverified": 0}
    assert review["double_reviewed"] == 2 and review["disagreements"] == 1
    assert review["rejected_by_reason"] == {"hallucinated_finding": 1, "image_unusable": 1}
    assert drops == {"item_rejected_in_review": 1, "rejected_in_review": 1}
    cells = [cell for tasks in review["kappa_by_source_task"].values() for cell in tasks.values()]
    assert sum(cell["traces"] for cell in cells) == 2 and all("alice/bob" in cell["pairs"] for cell in cells)


def test_an_edit_whose_answer_does_not_check_is_left_out(review_build: Path, tmp_path: Path) -> None:
    recipe = _recipe_with_own_verdicts(review_build, tmp_path)
    item, generation, _ = next(t for t in exported_traces(recipe) if t[2] == "true_false")
    catalog = Catalog(recipe.catalog_path)
    answer = json.loads(catalog.query("SELECT data FROM items WHERE item_id = ?", [item])[0][0])["answer"]["text"]
    catalog.close()
    wrong = "False" if answer == "True" else "True"
    append_verdict(verdict_folder(recipe), verdict(item, generation, "alice", "edit", edited_answer=wrong))
    report = _export(recipe).review
    assert report is not None and report.unverified_edits == 1
    assert item not in _sft_rows(recipe)


def test_a_bad_verdict_file_stops_the_build_with_file_and_line(review_build: Path, tmp_path: Path) -> None:
    work = tmp_path / "copy"
    shutil.copytree(review_build.parent, work, ignore=shutil.ignore_patterns("export"))
    (work / "annotations" / "small").mkdir(parents=True)
    (work / "annotations" / "small" / "alice.jsonl").write_text("{not json\n")
    result = CliRunner().invoke(app, ["export", str(work / "recipe.yaml")])
    assert result.exit_code == 2
    assert "alice.jsonl line 1: not valid JSON" in result.output


def test_the_recipe_names_the_annotations_folder(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, annotations="../shared-annotations")
    recipe = load_recipe(path)
    assert verdict_folder(recipe) == (tmp_path.parent / "shared-annotations" / "small").resolve()
    assert verdict_folder(load_recipe(write_recipe(tmp_path / "b"))) == (tmp_path / "b" / "annotations" / "small")
    from retinal_reason_data.release.hf import recipe_hash

    assert recipe_hash(recipe) == recipe_hash(load_recipe(write_recipe(tmp_path / "c")))  # not part of the hash
