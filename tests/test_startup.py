"""Start-up: `rrd --help` and `rrd sources` run without loading the heavy libraries the stages need.

Checked by what a child interpreter has in `sys.modules`, never by timing (the figures are in benchmarks/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.startup import HEAVY

RRD = Path(sys.executable).with_name("rrd")


def _loaded_after(statement: str) -> set[str]:
    """Top-level packages among HEAVY that a fresh interpreter holds after running `statement`."""
    probe = f"import sys\n{statement}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", f"import json\n{probe}"], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1])) & set(HEAVY)


def test_importing_the_cli_loads_none_of_the_stage_libraries() -> None:
    assert _loaded_after("import retinal_reason_data.cli") == set()


def test_the_probe_sees_a_heavy_import() -> None:
    # the same probe reports duckdb once the catalog is imported: the check above can fail
    assert "duckdb" in _loaded_after("import retinal_reason_data.catalog")


def test_help_lists_the_commands() -> None:
    done = subprocess.run([str(RRD), "--help"], capture_output=True, text=True, timeout=120, check=True)
    for verb in ("build", "ingest", "synthesize", "export", "stats", "sources", "review", "push", "diff"):
        assert verb in done.stdout


def test_listing_the_sources_loads_no_stage_library() -> None:
    listing = (
        "from typer.testing import CliRunner\n"
        "from retinal_reason_data.cli import app\n"
        "result = CliRunner().invoke(app, ['sources', '--json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert len(json.loads(result.output)) > 20"
    )
    assert _loaded_after(listing) == set()


@pytest.mark.parametrize("args", [["sources"], ["sources", "--json"]])
def test_sources_runs_as_a_command(args: list[str]) -> None:
    done = subprocess.run([str(RRD), *args], capture_output=True, text=True, timeout=120, check=True)
    assert "aptos2019" in done.stdout and "licence" in done.stdout
