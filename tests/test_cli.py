"""The command line as a user meets it: listing sources, clear recipe errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from retinal_reason_data.cli import app
from tests.conftest import write_recipe

runner = CliRunner()


def test_sources_lists_every_adapter_with_layout_and_licence() -> None:
    result = runner.invoke(app, ["sources", "--json"])
    assert result.exit_code == 0
    adapters = {row["adapter"]: row for row in json.loads(result.output)}
    assert {"aptos2019", "oct2017", "ffa_ir", "case_reports"} <= set(adapters)
    assert "train.csv" in adapters["aptos2019"]["layout"] and adapters["oct2017"]["licence"]


def test_a_bad_recipe_exits_with_the_file_and_key(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, teacher={"kind": "offline", "attempts": 0})
    result = runner.invoke(app, ["build", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output and "teacher.attempts" in result.output
