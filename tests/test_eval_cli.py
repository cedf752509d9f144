"""The `rrd eval` command group: `rrd eval RELEASE ...` runs, `rrd eval compare A B` compares, help stays light,
and bad arguments get a message naming what is wrong before anything is sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from tests.fake_openai import FakeOpenAI
from tests.helpers.eval_release import AnswerKey, every_nth, release_rows, write_release
from tests.helpers.startup import HEAVY

RRD = Path(sys.executable).with_name("rrd")
runner = CliRunner()


def _loaded_after_invoking(args: list[str]) -> set[str]:
    """HEAVY packages a fresh interpreter holds after `rrd <args>` through the CLI runner (which must succeed)."""
    probe = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from retinal_reason_data.cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1])) & set(HEAVY)


@pytest.mark.parametrize("args", [["eval", "--help"], ["eval", "run", "--help"], ["eval", "compare", "--help"]])
def test_eval_help_loads_no_stage_library(args: list[str]) -> None:
    assert _loaded_after_invoking(args) == set()


def test_help_lists_eval_and_its_two_commands() -> None:
    top = subprocess.run([str(RRD), "--help"], capture_output=True, text=True, timeout=120, check=True)
    assert "eval" in top.stdout
    group = runner.invoke(app, ["eval", "--help"])
    assert group.exit_code == 0 and "run" in group.output and "compare" in group.output
    run = runner.invoke(app, ["eval", "run", "--help"])
    for option in ("--base-url", "--model", "--api-key-env", "--attempts", "--temperature", "--revision", "--json"):
        assert option in run.output


def test_a_first_word_that_is_no_command_is_the_release_of_a_run(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-export"
    for args in (
        ["eval", str(missing), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
        ["eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", str(missing)],  # options first
        ["eval", "run", str(missing), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert f"{missing}: no such folder, and not a Hub repository name" in result.output


def test_compare_is_its_own_command(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'a'}: not a folder (a run folder of `rrd eval` holds run.json and responses.parquet)" in (
        result.output
    )


def test_compare_two_models_on_one_release_lists_the_samples_that_changed(tmp_path: Path) -> None:
    rows = release_rows()
    release = write_release(tmp_path / "export", rows)
    wrong_a = every_nth(rows)  # the 4th of each cell
    wrong_b = {row["id"] for index, row in enumerate(rows) if index % 4 == 2}  # the 3rd of each cell
    for name, wrong in (("a", wrong_a), ("b", wrong_b)):
        with FakeOpenAI(AnswerKey(rows, wrong)) as server:
            args = ["eval", str(release), "--base-url", server.base_url, "--model", f"model-{name}"]
            result = runner.invoke(app, [*args, "--out", str(tmp_path / name)])
            assert result.exit_code == 0, result.output
    report = tmp_path / "compare.md"
    args = ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json", "--out", str(report)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert (compared["runs"]["a"]["model"], compared["runs"]["b"]["model"]) == ("model-a", "model-b")
    assert compared["matched"] == {"samples": 128, "only_a": 0, "only_b": 0, "answer_differs": 0}
    assert compared["overall"]["difference"] == 0.0
    assert {entry["sample_id"] for entry in compared["changed"]["worse"]} == wrong_b
    assert {entry["sample_id"] for entry in compared["changed"]["better"]} == wrong_a
    assert compared["mcnemar"]["p_value"] == 1.0  # 32 discordant pairs each way
    markdown = report.read_text()
    assert "model-a" in markdown and "model-b" in markdown
    plain = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert plain.exit_code == 0 and plain.stdout.strip() == markdown.strip()


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("empty", "no data/rl/test-*.parquet; is it an export folder? (no data/ inside)"),
        ("other_split", "no split 'test' in config 'rl'; it has: train"),
        ("no_columns", "not an rl shard, it lacks the columns"),
    ],
)
def test_a_folder_that_holds_no_such_split_is_refused_before_anything_is_sent(
    tmp_path: Path, layout: str, message: str
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    if layout == "other_split":
        write_release(folder, release_rows(per_cell=1), split="train")
    if layout == "no_columns":
        import pyarrow as pa
        import pyarrow.parquet as pq

        (folder / "data" / "rl").mkdir(parents=True)
        pq.write_table(pa.table({"id": ["a"]}), folder / "data" / "rl" / "test-00000-of-00001.parquet")
    with FakeOpenAI() as server:
        args = ["eval", str(folder), "--base-url", server.base_url, "--model", "m", "--out", str(tmp_path / "run")]
        result = runner.invoke(app, args)
        assert server.requests == []
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_row_that_cannot_be_read_stops_the_run_naming_its_file_row_and_fault(tmp_path: Path) -> None:
    rows = release_rows(per_cell=1)
    rows[3] = {**rows[3], "question_type": "essay"}
    folder = write_release(tmp_path / "export", rows, shard_bytes=1 << 20)
    with FakeOpenAI() as server:
        args = ["eval", str(folder), "--base-url", server.base_url, "--model", "m", "--out", str(tmp_path / "run")]
        result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    shard = folder / "data" / "rl" / "test-00000-of-00001.parquet"
    assert f"{shard}: row 3 (id {rows[3]['id']}): 'essay' is not a valid QuestionType" in result.output
