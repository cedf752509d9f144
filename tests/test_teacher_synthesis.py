"""The synthesis stage through `rrd` against the OpenAI-compatible server on 127.0.0.1: failure classes in
`rrd stats --json`, cost, the guided fallback, the dry run, and an API key that is never logged or stored."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import re
import threading
from io import BytesIO
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from tests import fake_openai as fake
from tests.fake_openai import FakeOpenAI
from tests.helpers.teacher import teacher_recipe

runner = CliRunner()
PRICES = {"fake-vlm": {"prompt_per_mtok": 1000.0, "completion_per_mtok": 2000.0}}


def rrd(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def stats(recipe: Path) -> dict[str, Any]:
    return json.loads(rrd("stats", str(recipe), "--json"))


def question(request: dict[str, Any]) -> str:
    return request["messages"][-1]["content"][-1]["text"]


def wrong_answer(request: dict[str, Any]) -> str:
    """A reply that is well formed and never right (no item has an option H)."""
    text = question(request)
    answer = "H" if "Options:" in text else "Maybe" if "True or False" in text else "Unknown disease"
    return f"<think>Step 1: I looked at the image.\nStep 2: I weighed the options.</think><answer>{answer}</answer>"


def told_answer(request: dict[str, Any]) -> str:
    """The answer a guided prompt states, as the reply's answer."""
    hint = re.search(r"the correct answer is: (.+?)\. Write the reasoning", question(request), re.DOTALL)
    assert hint, "not a guided prompt"
    letters = re.findall(r"\b([A-H]) \(", hint.group(1))
    return ",".join(letters) if letters else hint.group(1)


@pytest.mark.parametrize("transport", ["openai", "aiohttp"])
def test_failures_are_classified_counted_and_only_transport_failures_asked_again(
    tmp_path: Path, ingested: Path, transport: str
) -> None:
    counter = itertools.count()
    doomed: list[str] = []
    kinds = [fake.refusal(), fake.empty_choices(), fake.text("The image shows drusen."), None]

    def rule(request: dict[str, Any], headers: dict[str, str]) -> fake.Fault | None:
        request_id = headers["x-client-request-id"]
        if not doomed:
            doomed.append(request_id)
        if request_id == doomed[0] and len(doomed) == 1:
            return fake.http_error(500)  # this one fails past its retries
        return kinds[next(counter) % len(kinds)]

    with FakeOpenAI(wrong_answer) as server:
        server.fault_rule = rule
        server.inject(fake.http_error(429, retry_after=0.05), fake.http_error(503), fake.drop())
        recipe = teacher_recipe(tmp_path, ingested, server.base_url, prices=PRICES, transport=transport, max_retries=2)
        output = rrd("synthesize", str(recipe))
        first = stats(recipe)
        generations = first["generations"]
        assert generations["attempts"] == 24 and generations["requests"] == 24
        assert generations["verified"] == 0
        failed = generations["failed_by_reason"]
        assert failed["server_error"] == 1
        assert {"refusal", "empty", "missing_tags", "wrong_answer"} <= set(failed)
        assert sum(failed.values()) == 24
        calls = generations["failed_calls_by_reason"]
        assert calls["server_error"] >= 3 + 1 and calls["rate_limited"] == 1 and calls["connection_error"] == 1
        expected_cost = generations["prompt_tokens"] * 1e-3 + generations["completion_tokens"] * 2e-3
        assert generations["cost"] == pytest.approx(expected_cost) and generations["cost"] > 0
        assert "teacher calls" in output and "cost" in output

        # a rerun asks again for the one transport failure, and for nothing that came back
        doomed.append("healed")
        before = len(server.requests)
        rrd("synthesize", str(recipe))
        asked_again = server.request_ids()[before:]
        assert asked_again == [doomed[0]]
    assert "server_error" not in stats(recipe)["generations"]["failed_by_reason"]


def test_guided_fallback_is_marked_and_traces_that_say_they_were_told_are_rejected(
    tmp_path: Path, ingested: Path
) -> None:
    reveal = itertools.count()

    def responder(request: dict[str, Any]) -> str:
        if "the correct answer is:" not in question(request):
            return wrong_answer(request)
        answer = told_answer(request)
        if next(reveal) % 3 == 0:
            think = f"We are told the answer is {answer}, so I explain it."
        else:
            think = "Step 1: A colour fundus photograph.\nStep 2: The findings match the answer I reach."
        return f"<think>{think}</think><answer>{answer}</answer>"

    with FakeOpenAI(responder) as server:
        recipe = teacher_recipe(tmp_path, ingested, server.base_url, guided_attempts=1)
        rrd("synthesize", str(recipe))
        items = 12
        assert len(server.requests) == items * 2 + items
        guided_prompts = [question(r) for r in server.requests if "the correct answer is:" in question(r)]
        assert len(guided_prompts) == items
        generations = stats(recipe)["generations"]
        assert generations["guided"] == {"attempts": items, "verified": items - 4}
        assert generations["failed_by_reason"]["reveals_guidance"] == 4
        rrd("synthesize", str(recipe))
        assert len(server.requests) == items * 3, "a rerun asked again"
        rrd("export", str(recipe))
    db = duckdb.connect(str(tmp_path / "small.duckdb"), read_only=True)
    chosen = db.execute(
        "SELECT a.pass_at_k, g.data FROM assignments a JOIN generations g USING (fingerprint)"
    ).fetchall()
    db.close()
    assert chosen, "no guided trace was chosen for export"
    for pass_at_k, data in chosen:
        generation = json.loads(data)
        assert generation["guided"] and generation["verified"] and pass_at_k == 0.0
        assert "told" not in generation["response"]
    exported = [
        row
        for path in sorted((tmp_path / "export" / "data" / "sft").glob("*.parquet"))
        for row in pq.read_table(path, columns=["guided", "pass_at_k"]).to_pylist()
    ]
    assert exported and all(row["guided"] and row["pass_at_k"] == 0.0 for row in exported)


def test_dry_run_estimates_requests_tokens_and_cost_and_sends_nothing(tmp_path: Path, ingested: Path) -> None:
    with FakeOpenAI() as server:
        recipe = teacher_recipe(
            tmp_path, ingested, server.base_url, prices=PRICES, api_key_env="UNSET_DRY_RUN_KEY", rpm=60
        )
        estimate = json.loads(rrd("synthesize", str(recipe), "--dry-run", "--json"))
        assert not server.requests
        assert estimate["items"] == 12 and estimate["requests"] == 24 and estimate["answered"] == 0
        assert 12 * 2 * 300 < estimate["prompt_tokens"] < 12 * 2 * 2000  # one 768 px image and the question
        assert estimate["completion_tokens"] == 24 * 32 and "half of max_tokens" in estimate["completion_basis"]
        expected = (estimate["prompt_tokens"] * 1000 + estimate["completion_tokens"] * 2000) / 1e6
        assert estimate["cost"] == pytest.approx(expected, rel=1e-3)
        assert estimate["seconds_at_least"] == pytest.approx(24.0)  # 60 requests per minute
        text = rrd("synthesize", str(recipe), "--dry-run")
        assert "nothing is sent" in text and "24 to send" in text
        assert f"{server.base_url}, model fake-vlm, key from $UNSET_DRY_RUN_KEY (NOT SET" in text
        [endpoint] = estimate["endpoints"]
        assert (endpoint["api_key_env"], endpoint["key_set"], endpoint["rpm"]) == ("UNSET_DRY_RUN_KEY", False, 60)
        # the key is needed to send, and its absence is said before anything is sent
        missing = runner.invoke(app, ["synthesize", str(recipe)])
        assert missing.exit_code == 2 and "UNSET_DRY_RUN_KEY is not set" in missing.output
        assert not server.requests


def test_dry_run_says_which_key_variable_each_endpoint_uses_and_never_the_key(
    tmp_path: Path, ingested: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-dry-run-secret-0123456789"
    monkeypatch.setenv("TEACHER_API_KEY", secret)
    monkeypatch.delenv("OTHER_KEY", raising=False)
    endpoints = [
        {"name": "inherits", "base_url": "http://127.0.0.1:9/v1"},
        {"name": "own", "base_url": "http://127.0.0.1:9/v2", "api_key_env": "OTHER_KEY", "concurrency": 2},
        {"name": "local", "base_url": "http://127.0.0.1:9/v3", "api_key_env": None, "timeout_s": 600},
    ]
    recipe = teacher_recipe(tmp_path, ingested, None, endpoints=endpoints, api_key_env="TEACHER_API_KEY")
    text = rrd("synthesize", str(recipe), "--dry-run")
    assert "endpoint inherits  http://127.0.0.1:9/v1, model fake-vlm, key from $TEACHER_API_KEY, concurrency 4" in text
    assert "endpoint own  http://127.0.0.1:9/v2, model fake-vlm, key from $OTHER_KEY (NOT SET" in text
    assert "endpoint local  http://127.0.0.1:9/v3, model fake-vlm, no key, concurrency 4" in text
    assert "timeout 600 s" in text and "timeout 2 s" in text
    as_json = rrd("synthesize", str(recipe), "--dry-run", "--json")
    keys = [(e["name"], e["api_key_env"], e["key_set"]) for e in json.loads(as_json)["endpoints"]]
    assert keys == [("inherits", "TEACHER_API_KEY", True), ("own", "OTHER_KEY", False), ("local", None, False)]
    assert secret not in text + as_json and secret[8:] not in text + as_json


@pytest.mark.parametrize("transport", ["openai", "aiohttp"])
def test_endpoints_send_the_teachers_key_when_they_name_none(
    tmp_path: Path, ingested: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("TEACHER_API_KEY", "sk-shared-secret-777")
    with FakeOpenAI(expected_key="sk-shared-secret-777") as one, FakeOpenAI(expected_key="sk-shared-secret-777") as two:
        endpoints = [{"name": "one", "base_url": one.base_url}, {"name": "two", "base_url": two.base_url}]
        recipe = teacher_recipe(
            tmp_path, ingested, None, endpoints=endpoints, api_key_env="TEACHER_API_KEY", transport=transport
        )
        rrd("synthesize", str(recipe))
        assert len(one.served) + len(two.served) == 24 and one.served and two.served
    generations = stats(recipe)["generations"]
    assert generations["requests"] == 24 and generations["failed_calls_by_reason"] == {}


@pytest.mark.parametrize("transport", ["openai", "aiohttp"])
def test_a_wrong_key_on_every_endpoint_stops_the_run_with_every_call_logged(
    tmp_path: Path, ingested: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    """Two endpoints with 8 calls in flight each, all refused with 401: the run stops, says why in words,
    and the catalog holds one event for every call sent (those cut short as `cancelled`)."""
    monkeypatch.setenv("TEACHER_API_KEY", "sk-expired-secret-555")
    with FakeOpenAI(expected_key="sk-valid") as one, FakeOpenAI(expected_key="sk-valid") as two:
        endpoints = [{"name": "one", "base_url": one.base_url}, {"name": "two", "base_url": two.base_url}]
        recipe = teacher_recipe(
            tmp_path,
            ingested,
            None,
            endpoints=endpoints,
            api_key_env="TEACHER_API_KEY",
            concurrency=8,
            transport=transport,
        )
        result = runner.invoke(app, ["synthesize", str(recipe)])
        sent = len(one.requests) + len(two.requests)
    assert result.exit_code == 1, result.output
    assert f"one: 401 Unauthorized from {one.base_url}: check TEACHER_API_KEY" in result.output
    assert f"two: 401 Unauthorized from {two.base_url}: check TEACHER_API_KEY" in result.output
    assert "sk-expired-secret-555" not in result.output
    generations = stats(recipe)["generations"]
    logged = generations["failed_calls_by_reason"]
    assert set(logged) <= {"auth_error", "cancelled"} and logged["auth_error"] >= 2
    assert sum(logged.values()) == generations["last_run"]["calls"] >= sent >= 2


@pytest.mark.parametrize("transport", ["openai", "aiohttp"])
def test_the_api_key_is_never_logged_or_stored(
    tmp_path: Path, ingested: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    secret = "sk-test-secret-key-0123456789"
    monkeypatch.setenv("TEACHER_KEY_GOOD", secret)
    monkeypatch.setenv("TEACHER_KEY_BAD", "sk-wrong-" + secret[8:])
    caplog.set_level(logging.DEBUG)  # every library's debug log, the clients' included
    with FakeOpenAI(expected_key=secret) as server:
        good = {"name": "good", "base_url": server.base_url, "api_key_env": "TEACHER_KEY_GOOD"}
        bad = {"name": "bad", "base_url": server.base_url, "api_key_env": "TEACHER_KEY_BAD", "weight": 10}
        recipe = teacher_recipe(tmp_path, ingested, None, endpoints=[good, bad], attempts=1, transport=transport)
        output = rrd("synthesize", str(recipe)) + rrd("export", str(recipe))
        assert server.headers[0]["authorization"].startswith("Bearer sk-")
        assert len(server.served) == 12
    logs = caplog.text
    assert "DEBUG" in logs and "out of this run: 401 Unauthorized from" in logs and "check TEACHER_KEY_BAD" in logs
    stored = [tmp_path / "small.duckdb", *(p for p in (tmp_path / "export").rglob("*") if p.is_file())]
    for text in [output, logs, *(path.read_bytes().decode("latin-1") for path in stored)]:
        assert secret not in text and secret[8:] not in text
    db = duckdb.connect(str(tmp_path / "small.duckdb"), read_only=True)
    details = db.execute("SELECT detail FROM teacher_events WHERE kind = 'auth_error'").fetchall()
    db.close()
    assert details and all("Incorrect API key provided: ***" in detail for (detail,) in details)


def test_image_data_urls_are_encoded_once_per_image(tmp_path: Path, ingested: Path, monkeypatch) -> None:
    from retinal_reason_data.teacher import images

    opened: list[str] = []
    original = images.open_image
    lock = threading.Lock()

    def counting(data: bytes, path: str, reduce_to: int | None = None):  # noqa: ANN202
        with lock:
            opened.append(path)
        return original(data, path, reduce_to=reduce_to)

    monkeypatch.setattr(images, "open_image", counting)
    images.image_data_url.cache_clear()
    with FakeOpenAI() as server:
        recipe = teacher_recipe(tmp_path, ingested, server.base_url, attempts=3, image_max_side=96)
        rrd("synthesize", str(recipe))
        urls = [r["messages"][-1]["content"][0]["image_url"]["url"] for r in server.requests]
    assert len(server.requests) == 36 and len(opened) == len(set(opened)) == len(set(urls))
    sizes = {Image.open(BytesIO(base64.b64decode(url.split(",", 1)[1]))).size for url in urls}
    assert max(max(size) for size in sizes) == 96


def test_a_run_whose_endpoints_all_fail_stops_with_a_clear_message_and_keeps_what_came(
    tmp_path: Path, ingested: Path
) -> None:
    healthy = itertools.count()

    def rule(request: dict[str, Any], headers: dict[str, str]) -> fake.Fault | None:
        return None if next(healthy) < 5 else fake.drop()  # five replies, then the server goes away

    with FakeOpenAI() as server:
        server.fault_rule = rule
        spec = {"concurrency": 1, "max_consecutive_failures": 2, "endpoint_rest_s": 0.05, "max_retries": 20}
        recipe = teacher_recipe(tmp_path, ingested, server.base_url, **spec)
        result = runner.invoke(app, ["synthesize", str(recipe)])
    assert result.exit_code == 1, result.output
    assert "every teacher endpoint failed" in result.output
    assert f"{server.base_url} closed the connection without a reply" in result.output
    assert "rerun the same command to resume" in result.output
    generations = stats(recipe)["generations"]
    assert generations["attempts"] == 5 and generations["failed_calls_by_reason"]["connection_error"] >= 2
