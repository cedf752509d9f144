"""The `openai` teacher kind through the real `openai` client against a server on 127.0.0.1."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import datasets
import pytest
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from tests.conftest import SMALL_SOURCES, write_recipe
from tests.fake_openai import FakeOpenAI

runner = CliRunner()


def answer_first_option(request: dict[str, Any]) -> str:
    """A stand-in model: 'A' for choice questions, 'True' for true/false, a fixed name otherwise."""
    text = request["messages"][-1]["content"][-1]["text"]
    if "Options:" in text:
        answer = "A"
    elif "True or False" in text:
        answer = "True"
    else:
        answer = "Choroidal neovascularisation"
    think = "Step 1: I looked at the image.\nStep 2: I compared the options carefully."
    return f"<think>{think}</think><answer>{answer}</answer>"


@pytest.mark.slow
def test_openai_teacher_stores_every_response_and_resumes_without_requests(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEST_TEACHER_KEY", "sk-test-secret-123")
    with FakeOpenAI(answer_first_option) as server:
        recipe = write_recipe(
            tmp_path,
            sources=SMALL_SOURCES[:2],
            teacher={
                "kind": "openai",
                "base_url": server.base_url,
                "model": "fake-vlm",
                "api_key_env": "TEST_TEACHER_KEY",
                "transport": "openai",  # the project's rule: the teacher is tested through the real `openai` client
                "concurrency": 4,
                "attempts": 1,
                "max_tokens": 256,
            },
            export={"out": "export", "max_shard_size": "200KB", "allow_empty": True},  # a stand-in model: few traces
        )
        result = runner.invoke(app, ["build", str(recipe)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        first = len(server.requests)
        stats = json.loads(runner.invoke(app, ["stats", str(recipe), "--json"]).output)
        assert first == sum(stats["items_by_task"].values()) > 0
        assert stats["generations"]["requests"] == first

        request = server.requests[0]
        assert request["model"] == "fake-vlm" and request["max_tokens"] == 256
        parts = request["messages"][-1]["content"]
        assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert server.headers[0]["authorization"] == "Bearer sk-test-secret-123"

        rerun = runner.invoke(app, ["build", str(recipe)], catch_exceptions=False)
        assert rerun.exit_code == 0 and len(server.requests) == first
        assert re.search(r"teacher\s+0 requests, \d+ cache hits", rerun.output)

    # the key is never stored or printed
    assert b"sk-test-secret-123" not in (tmp_path / "small.duckdb").read_bytes()
    assert "sk-test-secret-123" not in result.output + rerun.output
    # verification kept only the right answers
    stats = json.loads(runner.invoke(app, ["stats", str(recipe), "--json"]).output)
    assert 0 < stats["generations"]["verified"] < stats["generations"]["attempts"]
    assert stats["generations"]["failed_by_reason"].get("wrong_answer", 0) > 0
    sft = datasets.load_dataset(str(tmp_path / "export"), "sft")
    for split in sft.values():
        for row in split:
            assert row["teacher_model"] == "fake-vlm"
            assert row["answer"] in ("A", "True") or row["question_type"] == "open"
