"""`rrd eval` end to end: the real command against an OpenAI-compatible server on loopback (tests/fake_openai.py)
that knows every answer and gets a set share wrong; the Hub path against tests/hub_emulator.py."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from huggingface_hub import HfApi
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.evaluation.journal import Journal
from retinal_reason_data.evaluation.samples import RESPONSE_COLUMNS
from retinal_reason_data.release.prompting import prompt_text
from retinal_reason_data.release.reader import iter_rows
from tests.fake_openai import FakeOpenAI, http_error
from tests.helpers.eval_release import (
    GROUPINGS,
    AnswerKey,
    every_nth,
    expected_accuracy,
    release_rows,
    write_release,
)
from tests.hub_emulator import HubEmulator

RRD = Path(sys.executable).parent / "rrd"
MODEL = "fake-vlm"
CONTRACT_KEYS = {"model", "samples", "accuracy", "format_rate", "ci95", "by_task", "by_modality"}
CONTRACT_KEYS |= {"by_question_type", "by_source"}
runner = CliRunner()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return release_rows()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]) -> Path:
    """An export folder with 128 rl test rows, 4 in each cell of task x modality x question type x source."""
    return write_release(tmp_path_factory.mktemp("eval_release") / "export", rows)


def rrd_eval(release: str | Path, server: FakeOpenAI, out: Path | None, *extra: str, code: int = 0) -> Result:
    where = ["--out", str(out)] if out is not None else []
    args = ["eval", str(release), "--base-url", server.base_url, "--model", MODEL, *where, *extra]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def summary_of(result: Result) -> dict[str, Any]:
    summary = json.loads(result.stdout)
    summary.pop("out")
    return summary


def text_of(request: dict[str, Any]) -> str:
    return next(part["text"] for part in request["messages"][-1]["content"] if part["type"] == "text")


def journal_fingerprints(folder: Path) -> set[str]:
    return {json.loads(line)["fingerprint"] for line in (folder / "journal.jsonl").read_text().splitlines()}


# --- numbers ------------------------------------------------------------------------------------------
def test_accuracy_is_exactly_the_share_answered_rightly_overall_and_in_every_group(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    wrong = every_nth(rows)  # the 4th row of every cell: a quarter overall and in every group
    with FakeOpenAI(AnswerKey(rows, wrong)) as server:
        result = rrd_eval(release, server, tmp_path / "run", "--json")
        sent = list(server.requests)
    summary = json.loads(result.stdout)
    assert set(summary) >= CONTRACT_KEYS
    assert summary["out"] == str(tmp_path / "run")
    assert len(sent) == summary["samples"] == 128 and summary["model"] == MODEL
    expected = expected_accuracy(rows, wrong)
    assert summary["accuracy"] == expected["accuracy"] == 0.75
    assert summary["format_rate"] == 1.0 and summary["failed"] == 0
    low, high = summary["ci95"]["accuracy"]
    assert low < 0.75 < high
    for grouping in GROUPINGS:
        found = {group: (figures["count"], figures["accuracy"]) for group, figures in summary[f"by_{grouping}"].items()}
        assert found == expected[f"by_{grouping}"], grouping
        assert {accuracy for _, accuracy in found.values()} == {0.75}

    table = pq.read_table(tmp_path / "run" / "responses.parquet")
    assert tuple(table.column_names) == RESPONSE_COLUMNS
    scored = table.to_pylist()
    assert [(row["sample_id"], row["attempt"]) for row in scored] == sorted((row["id"], 1) for row in rows)
    assert {row["sample_id"] for row in scored if row["accuracy"] == 0} == wrong
    assert all(row["response"] and row["error"] is None and row["format"] == 1.0 for row in scored)

    run = json.loads((tmp_path / "run" / "run.json").read_text())
    manifest = json.loads((release / "manifest.json").read_text())
    assert run["summary"] == {key: value for key, value in summary.items() if key != "out"}
    assert run["release"] == {
        "path": str(release.resolve()),
        "content_key": manifest["content_key"],
        "version": "0.0.1",
        "format": "rl",
    }
    assert (run["model"], run["config"], run["split"], run["attempts"]) == (MODEL, "rl", "test", 1)
    assert run["params"]["temperature"] == 0.0 and run["base_url"] == server.base_url
    assert run["requests"]["cached"] == 0 and run["requests"]["answered_now"] == 128
    assert (tmp_path / "run" / "report.md").is_file()


def test_each_sample_is_sent_as_the_release_prompts_it_images_first_as_their_own_bytes(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    with FakeOpenAI(AnswerKey(rows)) as server:
        rrd_eval(release, server, tmp_path / "run")
        sent = {text_of(request): request for request in server.requests}
    assert len(sent) == len(rows)
    for row in rows:
        request = sent[prompt_text(row)]
        assert request["model"] == MODEL and request["temperature"] == 0.0 and request["max_tokens"] == 4096
        assert "seed" not in request and "top_p" not in request
        [message] = request["messages"]  # the rl prompt has no system message
        *images, text = message["content"]
        assert text == {"type": "text", "text": prompt_text(row)}
        urls = [image["image_url"]["url"] for image in images]
        assert all(url.startswith("data:image/png;base64,") for url in urls)
        assert [base64.b64decode(url.split(",", 1)[1]) for url in urls] == [cell["bytes"] for cell in row["images"]]


def test_a_rerun_sends_no_request_and_gives_the_same_numbers(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    with FakeOpenAI(AnswerKey(rows, every_nth(rows))) as server:
        first = rrd_eval(release, server, tmp_path / "run", "--json")
        asked = len(server.requests)
        again = rrd_eval(release, server, tmp_path / "run", "--json")
        assert len(server.requests) == asked == 128
    assert summary_of(again) == summary_of(first)
    assert "128 attempts answered before, 0 asked now (0 HTTP calls)" in again.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["requests"]["cached"] == 128 and run["requests"]["answered_now"] == 0


def test_a_run_folder_refuses_another_model_or_sampling_and_keeps_its_run(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Pointing --out at another run's folder would mix two runs in one journal and make its run.json lie."""
    with FakeOpenAI(AnswerKey(rows, every_nth(rows))) as server:
        rrd_eval(release, server, tmp_path / "run")
        before = (tmp_path / "run" / "run.json").read_bytes()
        asked = len(server.requests)
        args = ["eval", str(release), "--base-url", server.base_url, "--out", str(tmp_path / "run")]
        other = runner.invoke(app, [*args, "--model", "another-vlm"])
        hotter = runner.invoke(app, [*args, "--model", MODEL, "--temperature", "0.5"])
        slower = runner.invoke(app, [*args, "--model", MODEL, "--timeout", "30"])
        assert len(server.requests) == asked
    assert other.exit_code == 2 and "holds another run (model: 'fake-vlm' there, 'another-vlm' asked)" in other.output
    assert hotter.exit_code == 2 and "params:" in hotter.output
    assert slower.exit_code == 0, slower.output  # the timeout does not change what is asked
    assert json.loads(before)["model"] == json.loads((tmp_path / "run" / "run.json").read_bytes())["model"]


def test_without_out_the_run_folder_is_named_from_model_release_and_split_and_found_again(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    key = json.loads((release / "manifest.json").read_text())["content_key"][:12]
    with FakeOpenAI(AnswerKey(rows)) as server:
        first = rrd_eval(release, server, None)
        asked = len(server.requests)
        rrd_eval(release, server, None)
        assert len(server.requests) == asked
    folder = Path("rrd-eval") / f"{MODEL}_{key}_rl-test_k1-t0"
    assert f"run folder: {folder}" in first.output
    assert (tmp_path / folder / "responses.parquet").is_file()


# --- several attempts -----------------------------------------------------------------------------------
def attempts_key(rows: list[dict[str, Any]]) -> Any:
    """Right always, except: every 4th row wrong at the first of its attempts to arrive, every (4k+3)rd always."""
    by_prompt = {prompt_text(row): row for row in rows}
    once = every_nth(rows)
    always = {row["id"] for index, row in enumerate(rows) if index % 4 == 2}
    right, wrong = AnswerKey(rows), AnswerKey(rows, {row["id"] for row in rows})
    seen: Counter[str] = Counter()

    def respond(request: dict[str, Any]) -> str:
        text = text_of(request)
        seen[text] += 1
        sample = by_prompt[text]["id"]
        return (wrong if sample in always or (sample in once and seen[text] == 1) else right)(request)

    return respond


def test_several_attempts_give_pass_at_k_and_majority_vote(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    with FakeOpenAI(attempts_key(rows)) as server:
        result = rrd_eval(release, server, tmp_path / "run", "--attempts", "3", "--seed", "5", "--json")
        sent = list(server.requests)
    # half right 3/3, a quarter right 2/3, a quarter right 0/3
    summary = json.loads(result.stdout)
    assert len(sent) == 3 * 128 and summary["attempts"] == 3 and summary["responses"] == 384
    assert summary["accuracy"] == pytest.approx(0.5 + 0.25 * 2 / 3)
    assert summary["pass_at_k"] == pytest.approx({"1": 0.5 + 0.25 * 2 / 3, "2": 0.75, "3": 0.75})
    assert summary["majority_vote"]["accuracy"] == 0.75
    # sampled at the default temperature of several attempts, attempt n with seed + n - 1
    assert {request["temperature"] for request in sent} == {0.7}
    seeds: dict[str, list[int]] = {}
    for request in sent:
        seeds.setdefault(text_of(request), []).append(request["seed"])
    assert {tuple(sorted(values)) for values in seeds.values()} == {(5, 6, 7)}
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["attempts"] == 3 and run["params"]["temperature"] == 0.7 and run["params"]["seed"] == 5


def test_several_attempts_at_temperature_0_are_refused(release: Path, tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        result = rrd_eval(release, server, tmp_path / "run", "--attempts", "3", "--temperature", "0", code=2)
        assert server.requests == []
    assert "copies of one greedy reply" in result.output


# --- failures -----------------------------------------------------------------------------------------
def test_a_call_that_still_fails_is_scored_0_named_and_only_it_is_sent_again(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    failing = {rows[5]["id"], rows[40]["id"]}
    refused = {prompt_text(row) for row in rows if row["id"] in failing}
    with FakeOpenAI(AnswerKey(rows)) as server:
        server.fault_rule = lambda request, _headers: http_error(400) if text_of(request) in refused else None
        result = rrd_eval(release, server, tmp_path / "run", "--json", code=1)
        summary = json.loads(result.stdout)
        assert summary["failed"] == 2 and summary["samples"] == 128
        assert summary["accuracy"] == 126 / 128
        for sample in failing:
            assert f"failed: {sample} attempt 1: bad_request" in result.stderr
        assert "2 calls failed after their retries" in result.stderr and "sends only those" in result.stderr
        scored = {row["sample_id"]: row for row in pq.read_table(tmp_path / "run" / "responses.parquet").to_pylist()}
        assert all(
            scored[sample]["response"] is None and scored[sample]["error"] == "bad_request" for sample in failing
        )
        assert all(scored[sample]["accuracy"] == 0.0 and scored[sample]["score"] == 0.0 for sample in failing)

        server.fault_rule = None
        asked = len(server.requests)
        again = rrd_eval(release, server, tmp_path / "run", "--json")
        assert {text_of(request) for request in server.requests[asked:]} == refused
        assert len(server.requests) - asked == 2
    assert summary_of(again)["accuracy"] == 1.0 and summary_of(again)["failed"] == 0


def test_a_sample_whose_image_cannot_be_decoded_is_named_and_the_others_are_scored(
    rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    broken = [dict(row) for row in rows]
    broken[3] = {**broken[3], "images": [{"bytes": b"not an image at all", "path": "broken.png"}]}
    cut = broken[9]["images"][0]["bytes"]
    broken[9] = {**broken[9], "images": [{"bytes": cut[: len(cut) // 2], "path": "cut.png"}]}
    folder = write_release(tmp_path / "export", broken)
    with FakeOpenAI(AnswerKey(rows)) as server:
        result = rrd_eval(folder, server, tmp_path / "run", "--json", code=1)
        assert len(server.requests) == 126
    assert f"not sent: {rows[3]['id']}: image broken.png: not an image file" in result.stderr
    assert f"not sent: {rows[9]['id']}: image cut.png: cannot be decoded" in result.stderr
    assert "2 samples left out" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["samples"] == 126 and summary["accuracy"] == 1.0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [entry["sample_id"] for entry in run["skipped"]] == [rows[3]["id"], rows[9]["id"]]
    assert run["requests"]["samples_read"] == 128


def test_a_named_key_variable_that_is_not_set_stops_before_anything_is_sent(release: Path, tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        result = rrd_eval(release, server, tmp_path / "run", "--api-key-env", "RRD_TEST_NO_SUCH_KEY", code=2)
        assert server.requests == []
    assert "RRD_TEST_NO_SUCH_KEY is not set" in result.output


def test_the_api_key_is_sent_and_never_written_or_printed(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "plainSecret0123456789"  # not shaped like a key: only knowing it can hide it
    monkeypatch.setenv("EVAL_TEST_KEY", secret)
    with FakeOpenAI(AnswerKey(rows), expected_key=secret) as server:
        result = rrd_eval(release, server, tmp_path / "run", "--api-key-env", "EVAL_TEST_KEY")
        assert {headers["authorization"] for headers in server.headers} == {f"Bearer {secret}"}
    assert secret not in result.output
    # a key the server refuses (its 401 message repeats the key): the run stops, naming the variable
    env = {**os.environ, "EVAL_TEST_KEY": secret, "RRD_LOG_LEVEL": "DEBUG"}
    with FakeOpenAI(AnswerKey(rows), expected_key="another-key") as server:
        refused = subprocess.run(
            [str(RRD), "eval", str(release), "--base-url", server.base_url, "--model", MODEL]
            + ["--out", str(tmp_path / "refused"), "--api-key-env", "EVAL_TEST_KEY"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert server.requests
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "check EVAL_TEST_KEY" in refused.stderr and "rerun the same command" in refused.stderr
    assert secret not in refused.stdout + refused.stderr
    for path in [*(tmp_path / "run").rglob("*"), *(tmp_path / "refused").rglob("*")]:
        assert not path.is_file() or secret.encode() not in path.read_bytes(), path


# --- interruptions ------------------------------------------------------------------------------------
def start(release: Path, server: FakeOpenAI, out: Path) -> subprocess.Popen[str]:
    args = ["eval", str(release), "--base-url", server.base_url, "--model", MODEL, "--out", str(out)]
    return subprocess.Popen(
        [str(RRD), *args, "--concurrency", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_journal(process: subprocess.Popen[str], journal: Path, lines: int) -> None:
    deadline = time.monotonic() + 120
    while not (journal.is_file() and journal.read_bytes().count(b"\n") >= lines):
        assert process.poll() is None, f"the run ended (code {process.returncode}) before it was interrupted"
        assert time.monotonic() < deadline, "no replies journaled in time"
        time.sleep(0.01)


def test_a_run_killed_with_sigkill_resumes_sending_only_what_was_missing(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    wrong = every_nth(rows)
    out = tmp_path / "run"
    with FakeOpenAI(AnswerKey(rows, wrong), latency_s=0.05) as server:
        process = start(release, server, out)
        wait_for_journal(process, out / "journal.jsonl", 30)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        kept = journal_fingerprints(out)
        asked_before = len(server.requests)
        assert 30 <= len(kept) < 128, "the run finished before it was killed"
        resumed = rrd_eval(release, server, out, "--json")
        again = server.request_ids()[asked_before:]
    assert not set(again) & kept, "a reply already journaled was asked for again"
    assert len(again) == 128 - len(kept)
    with FakeOpenAI(AnswerKey(rows, wrong)) as fresh:
        whole = rrd_eval(release, fresh, tmp_path / "whole", "--json")
    assert summary_of(resumed) == summary_of(whole)

    def scored(folder: Path) -> list[tuple[Any, ...]]:
        table = pq.read_table(
            folder / "responses.parquet", columns=["sample_id", "response", "accuracy", "fingerprint"]
        )
        return sorted(tuple(row.values()) for row in table.to_pylist())

    assert scored(out) == scored(tmp_path / "whole")


def test_ctrl_c_keeps_every_reply_in_flight_and_the_rerun_completes(
    release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with FakeOpenAI(AnswerKey(rows), latency_s=0.2) as server:
        process = start(release, server, out)
        wait_for_journal(process, out / "journal.jsonl", 8)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 130, errors[-2000:]
        assert "interrupted" in errors and "rerun the same command to resume" in errors
        kept = journal_fingerprints(out)
        assert set(server.served) <= kept and len(kept) < 128  # the replies in flight landed and were kept
        assert not (out / "run.json").exists()
        asked = len(server.requests)
        rrd_eval(release, server, out)
        assert not set(server.request_ids()[asked:]) & kept
    assert len(journal_fingerprints(out)) == 128


def test_the_journal_drops_a_line_cut_off_by_a_kill_and_keeps_a_reply_over_a_later_failure(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.add({"fingerprint": "a", "response": "<answer>A</answer>", "error": None})
    journal.add({"fingerprint": "b", "response": None, "error": "server_error"})
    journal.add({"fingerprint": "b", "response": "<answer>B</answer>", "error": None})
    journal.add({"fingerprint": "a", "response": None, "error": "timeout"})
    journal.close()
    with (tmp_path / "journal.jsonl").open("a") as handle:
        handle.write('{"fingerprint": "c", "response": "<answ')  # the kill came mid-line
    reopened = Journal(tmp_path)
    assert reopened.answered("a") and reopened.answered("b") and not reopened.answered("c")
    assert reopened.get("a")["response"] == "<answer>A</answer>"
    reopened.add({"fingerprint": "c", "response": "<answer>C</answer>", "error": None})
    reopened.close()
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["fingerprint"] for line in lines] == ["a", "b", "b", "a", "c"]
    assert Journal(tmp_path).answered("c")


# --- other places a release lives -------------------------------------------------------------------------
def test_a_real_export_is_evaluated_through_its_rl_config(shared_small_build: Path, tmp_path: Path) -> None:
    export = shared_small_build.parent / "export"
    rows = list(iter_rows(export, "rl", "train"))
    with FakeOpenAI(AnswerKey(rows)) as server:
        result = rrd_eval(export, server, tmp_path / "run", "--split", "train", "--json")
        sent = {text_of(request): request for request in server.requests}
    summary = json.loads(result.stdout)
    assert summary["samples"] == len(rows) == len(sent) and summary["accuracy"] == 1.0
    for row in rows:
        *images, _ = sent[prompt_text(row)]["messages"][0]["content"]
        assert [base64.b64decode(image["image_url"]["url"].split(",", 1)[1]) for image in images] == [
            cell["bytes"] for cell in row["images"]
        ]
    manifest = json.loads((export / "manifest.json").read_text())
    assert json.loads((tmp_path / "run" / "run.json").read_text())["release"]["content_key"] == manifest["content_key"]

    # --image-max-side: larger images go as JPEGs of at most that side (another run: its own folder, nothing reused)
    with FakeOpenAI(AnswerKey(rows)) as server:
        rrd_eval(export, server, tmp_path / "run-128px", "--split", "train", "--image-max-side", "128")
        reduced = [part for request in server.requests for part in request["messages"][0]["content"][:-1]]
    assert len(server.requests) == len(rows) and len(reduced) == sum(len(row["images"]) for row in rows)
    for part in reduced:
        url = part["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        assert max(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size) == 128


TOKEN = "hf_emulatorTOKEN_eval_3c9d"
REPO = "alice/eval-release"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The Hub emulator, huggingface_hub pointed at it (as in test_hub.py), and a private download cache."""
    emulator = HubEmulator(tokens={TOKEN: "alice"}, chunk_size=64 * 1024).start()
    monkeypatch.setenv("HF_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    yield emulator
    emulator.stop()


def test_a_release_on_the_hub_is_read_at_its_revision(
    hub: HubEmulator, release: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo(REPO, repo_type="dataset", private=True)
    commit = api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=str(release)).oid
    api.create_tag(REPO, tag="v1.0.0", repo_type="dataset")
    wrong = every_nth(rows)
    with FakeOpenAI(AnswerKey(rows, wrong)) as server:
        remote = rrd_eval(f"{REPO}@v1.0.0", server, tmp_path / "remote", "--json")
        local = rrd_eval(release, server, tmp_path / "local", "--json")
        missing = rrd_eval(REPO, server, tmp_path / "missing", "--split", "validation", code=2)
    assert summary_of(remote) == summary_of(local)
    assert "no split 'validation' in config 'rl'; it has: test" in missing.output
    run = json.loads((tmp_path / "remote" / "run.json").read_text())
    manifest = json.loads((release / "manifest.json").read_text())
    assert run["release"] == {
        "repo": REPO,
        "revision": "v1.0.0",
        "commit": commit,
        "content_key": manifest["content_key"],
        "version": "0.0.1",
        "format": "rl",
    }
    # only the split evaluated and the manifest came down
    downloaded = {
        path.name for path in (tmp_path / "hub-cache").rglob("*") if path.is_file() and "snapshots" in path.parts
    }
    assert downloaded == {"manifest.json"} | {path.name for path in (release / "data" / "rl").glob("test-*.parquet")}


def test_the_transport_keeps_few_encoded_images_when_every_request_shows_new_ones() -> None:
    # a release's images are sent once per attempt, each a new data URL of up to MBs: the splice cache is bounded
    from retinal_reason_data.teacher import transports

    for index in range(12):
        url = "data:image/jpeg;base64," + chr(65 + index) * (8 << 20)
        payload = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
        assert json.loads(transports.encode_payload(payload)) == payload
    assert sum(map(len, transports._ENCODED_URLS.values())) <= transports._ENCODED_MAX_BYTES
    assert 0 < len(transports._ENCODED_URLS) < 12
