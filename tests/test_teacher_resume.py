"""A real `rrd` process killed with SIGKILL mid-run, or stopped with Ctrl-C, resumes with nothing lost and
nothing committed asked for again."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from tests.fake_openai import DEFAULT_TEXT, FakeOpenAI
from tests.helpers.teacher import teacher_recipe

RRD = Path(sys.executable).parent / "rrd"
COMMITTED = re.compile(r"teacher: committed \d+ replies \((\d+) in this run\)")
runner = CliRunner()


def numbered_replies() -> Any:
    """A responder whose every reply is unique, so a stored reply shows which request it came from."""
    serial = itertools.count()
    return lambda request: DEFAULT_TEXT.replace("Step 1:", f"Reply {next(serial)}. Step 1:")


def committed(catalog: Path) -> dict[str, str]:
    """Fingerprint -> stored reply of every committed generation."""
    db = duckdb.connect(str(catalog), read_only=True)
    try:
        rows = db.execute("SELECT fingerprint, json_extract_string(data, '$.response') FROM generations").fetchall()
    finally:
        db.close()
    return dict(rows)


def start(command: str, recipe: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "RRD_LOG_LEVEL": "INFO"}
    return subprocess.Popen(
        [str(RRD), command, str(recipe)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_commits(process: subprocess.Popen[str], at_least: int) -> int:
    """Read the process's log until it says `at_least` replies are committed; returns that count."""
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:
        match = COMMITTED.search(line)
        if match and int(match.group(1)) >= at_least:
            return int(match.group(1))
        assert time.monotonic() < deadline, "no commit logged in time"
    raise AssertionError(f"the process ended (code {process.wait()}) before {at_least} replies were committed")


def test_a_synthesis_killed_with_sigkill_resumes_without_losing_or_repeating_a_reply(
    tmp_path: Path,
    ingested: Path,  # noqa: F811 - the fixture
) -> None:
    with FakeOpenAI(numbered_replies(), latency_s=0.1) as server:  # slow enough that each kill lands mid-run
        recipe = teacher_recipe(tmp_path, ingested, server.base_url, attempts=5, concurrency=3)
        catalog = tmp_path / "small.duckdb"
        total = 12 * 5
        seen: dict[str, str] = {}  # what was committed when the last process died
        asked_before = 0
        # killed right after a commit early on, then further on between two commits (replies arriving)
        for at_least, delay_s in ((5, 0.0), (25, 0.13)):
            process = start("synthesize", recipe)
            acknowledged = wait_for_commits(process, at_least)
            time.sleep(delay_s)
            process.send_signal(signal.SIGKILL)
            process.wait()
            kept = committed(catalog)
            this_run = server.request_ids()[asked_before:]
            # what the process said it had committed is there; what was kept before is kept unchanged
            assert len(kept) - len(seen) >= acknowledged
            assert all(kept[fingerprint] == reply for fingerprint, reply in seen.items())
            # and nothing committed before was asked for again
            assert not set(this_run) & set(seen)
            assert len(kept) < total, "the run finished before it was killed"
            seen, asked_before = kept, len(server.request_ids())
        result = runner.invoke(app, ["build", str(recipe)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        final = committed(catalog)
        last_run = server.request_ids()[asked_before:]
    assert len(final) == total
    assert all(final[fingerprint] == reply for fingerprint, reply in seen.items()), "a committed reply changed"
    assert not set(last_run) & set(seen), "a committed reply was asked for again"
    assert set(last_run) | set(seen) == set(final)


def test_ctrl_c_stops_gracefully_and_commits_every_reply_in_flight(
    tmp_path: Path,
    ingested: Path,  # noqa: F811 - the fixture
) -> None:
    with FakeOpenAI(numbered_replies(), latency_s=0.3) as server:
        recipe = teacher_recipe(tmp_path, ingested, server.base_url, attempts=5, concurrency=6)
        process = start("synthesize", recipe)
        wait_for_commits(process, 6)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
        served = set(server.served)
        asked = len(server.requests)
        assert process.returncode == 130, errors[-3000:]
        assert "interrupted" in errors and "rerun the same command to resume" in errors
        kept = committed(tmp_path / "small.duckdb")
        # the requests in flight were answered and committed, not dropped
        assert served and served <= set(kept)
        assert len(kept) < 60
        result = runner.invoke(app, ["synthesize", str(recipe)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        again = server.request_ids()[asked:]
    assert not set(again) & set(kept)
    assert len(committed(tmp_path / "small.duckdb")) == 60
