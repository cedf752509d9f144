"""The card's statistics and figures, and what each format does with each kind of row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.release.figures import FIGURES, bar_chart, render_figures
from retinal_reason_data.release.index import row_digest
from retinal_reason_data.release.mm_retinal_reason import release_answer
from retinal_reason_data.release.ophthareason import target_file
from retinal_reason_data.release.summary import ReleaseSummary
from tests.helpers.builds import copy_build, rrd_export

runner = CliRunner()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory, shared_small_build: Path) -> Path:
    """The session's small build exported with a card that has a citation, an override and teacher terms."""
    folder = tmp_path_factory.mktemp("card")
    recipe = copy_build(
        shared_small_build,
        folder,
        keep_export=False,
        export={
            "out": "export",
            "max_shard_size": "200KB",
            "card": {
                "citation": "@misc{small2025, title={small}}",
                "citations": {"oct2017": "Our own OCT citation."},
                "teacher_terms": "See the provider's terms at https://example.org/terms",
            },
        },
    )
    rrd_export(recipe)
    return folder / "export"


def _table(card: str, heading: str) -> dict[str, list[str]]:
    """The rows of the first Markdown table after `heading`, keyed by their first cell."""
    section = card[card.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    end = next((i for i in range(start, len(section)) if not section[i].startswith("|")), len(section))
    lines = section[start:end]
    rows: dict[str, list[str]] = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return {"__header__": header[1:], **rows}


def test_the_card_counts_what_the_shards_hold(out: Path) -> None:
    card = (out / "README.md").read_text()
    loaded = {config: datasets.load_dataset(str(out), config) for config in ("sft", "rl")}
    table = _table(card, "### By source")
    columns = table.pop("__header__")
    for column_index, column in enumerate(columns):
        config, split = column.split("/")
        sources = loaded[config][split]["source"]
        for source, cells in table.items():
            assert int(cells[column_index]) == sources.count(source), (source, column)
    types = _table(card, "### By question type")
    assert set(types) - {"__header__"} == set(loaded["sft"]["train"]["question_type"]) | set(
        loaded["rl"]["train"]["question_type"]
    ) | set(loaded["sft"]["validation"]["question_type"]) | set(loaded["sft"]["test"]["question_type"])
    words = sorted(len(t.split()) for split in loaded["sft"].values() for t in split["think"])
    trace = _table(card, "## Trace length")
    assert trace["__header__"] == ["p10", "median", "p90", "max"] and int(list(trace)[1]) == words[0]
    assert int(trace[list(trace)[1]][-1]) == words[-1]
    passes = _table(card, "## Teacher pass rate")
    values = [f"{v:.2f}" for split in loaded["sft"].values() for v in split["pass_at_k"]]
    for value, cells in passes.items():
        if value != "__header__":
            assert int(cells[0]) == values.count(value)


def test_the_card_names_teacher_terms_licences_citations_and_figures(out: Path) -> None:
    card = (out / "README.md").read_text()
    assert "`offline-drafter`" in card and "Prompt version: `v1`" in card
    assert "https://example.org/terms" in card
    assert (
        "Our own OCT citation." in card and "Identifying Medical Diagnoses" not in card
    )  # the recipe overrides the built-in one
    assert "Porwal" not in card  # only the sources of this build
    assert "Li M et al. FFA-IR" in card and "PhysioNet Credentialed Health Data License" in card
    assert "@misc{small2025, title={small}}" in card
    for name in FIGURES:
        assert f"(figures/{name}.png)" in card
        with Image.open(out / "figures" / f"{name}.png") as image:
            assert image.format == "PNG" and image.size[0] == 900
            assert not set(image.info) & {"exif", "XML:com.adobe.xmp"} and "dpi" not in image.info
    front = card.split("---\n")[1]
    assert re.search(r"license: other", front) and "size_categories" in front


def test_figures_are_byte_identical_for_identical_counts(tmp_path: Path) -> None:
    summary = ReleaseSummary()
    for index in range(30):
        row = {
            "source": ["aptos2019", "oct2017"][index % 2],
            "modality": "CFP",
            "task": "basic",
            "question_type": "open",
            "pass_at_k": index % 3 / 2,
            "think": "word " * (20 + 7 * index),
            "teacher_model": "m",
            "prompt_version": "v1",
        }
        summary.add("sft", "train", row)
    first = render_figures(tmp_path / "a", summary)
    second = render_figures(tmp_path / "b", ReleaseSummary.model_validate_json(summary.model_dump_json()))
    assert {name: path.read_bytes() for name, path in first.items()} == {
        name: path.read_bytes() for name, path in second.items()
    }
    assert summary.trace_percentiles()["min"] == 20 and summary.trace_percentiles()["max"] == 20 + 7 * 29
    assert [label for label, _ in summary.trace_histogram()][:2] == ["0-24", "25-49"]
    assert sum(count for _, count in summary.trace_histogram()) == 30
    chart = bar_chart(tmp_path / "one.png", "t", ["a-very-long-label-" * 10], {"rows": [3]})
    assert Image.open(chart).size[0] == 900


@pytest.mark.parametrize(
    "task, kind, modality, expected",
    [
        ("basic", "single_choice", "CFP", "single_choice_test_data_CFP"),
        ("basic", "single_choice", "FFA", "single_choice_test_data_FFA"),
        ("basic", "single_choice", "OCT", "single_choice_test_data_OCT"),
        ("basic", "single_choice", "other", None),
        ("basic", "multiple_choice", "CFP", "multi_choice_test_data_CFP"),
        ("basic", "multiple_choice", "OCT", None),
        ("basic", "true_false", "CFP", None),
        ("basic", "open", "CFP", None),
        ("complex", "open", "CFP", "complex_reason"),
        ("complex", "single_choice", "FFA", None),
    ],
)
def test_each_kind_of_test_row_goes_to_its_evaluation_file(
    task: str, kind: str, modality: str, expected: str | None
) -> None:
    name, reason = target_file({"task": task, "question_type": kind, "modality": modality})
    assert name == expected and (reason == "") == (expected is not None)


def test_release_answers_follow_ophthareason_prompts() -> None:
    assert release_answer({"question_type": "multiple_choice", "answer": "C, A"}) == "A,C"
    assert release_answer({"question_type": "single_choice", "answer": "B"}) == "B"
    assert release_answer({"question_type": "open", "answer": " Glaucoma "}) == "Glaucoma"


def test_a_row_digest_changes_with_any_field_or_image_byte() -> None:
    row = {"id": "x", "answer": "A", "images": [{"bytes": b"\x89PNG...", "path": "a.png"}]}
    same = json.loads(json.dumps({k: v for k, v in row.items() if k != "images"})) | {"images": row["images"]}
    assert row_digest(row) == row_digest(same)
    assert row_digest(row) != row_digest(row | {"answer": "B"})
    assert row_digest(row) != row_digest(row | {"images": [{"bytes": b"\x89PNG..!", "path": "a.png"}]})
