"""Teacher test material: one phantom source ingested, recipes over copies of its catalog, and a request."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.schema import Answer, Item
from retinal_reason_data.teacher.requests import Request
from tests.helpers.recipes import SMALL_SOURCES, write_recipe

runner = CliRunner()


def ingest_small(folder: Path) -> Path:
    """The first small phantom source ingested into `folder` (tests synthesize on copies of its catalog)."""
    recipe = write_recipe(folder, sources=SMALL_SOURCES[:1])
    result = runner.invoke(app, ["ingest", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder


def teacher_recipe(folder: Path, ingested: Path, base_url: str | None, **teacher: Any) -> Path:
    """A recipe on a copy of the ingested catalog, with an OpenAI-compatible teacher."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ingested / "small.duckdb", folder / "small.duckdb")
    source = {**SMALL_SOURCES[0], "root": str(ingested / SMALL_SOURCES[0]["root"])}
    spec = {
        "kind": "openai",
        "model": "fake-vlm",
        "concurrency": 4,
        "attempts": 2,
        "max_tokens": 64,
        "temperature": 0.7,
    }
    if base_url:
        spec["base_url"] = base_url
    spec |= {"timeout_s": 2.0, "backoff_s": 0.02, "backoff_max_s": 0.2}
    # a dozen cases and a stand-in model leave some splits empty: these tests are about the teacher, not the export
    export = {"out": "export", "max_shard_size": "200KB", "allow_empty": True}
    return write_recipe(folder, sources=[source], teacher=spec | teacher, export=export)


def make_request(n: int, prompt_tokens: int = 84) -> Request:
    item = Item(
        item_id=f"item-{n:03d}",
        case_id=f"case-{n:03d}",
        task="basic",
        question_type="single_choice",
        modality="CFP",
        question="Which finding is present?",
        options=["Hard exudates", "Drusen", "Cotton wool spots", "Normal"],
        answer=Answer(text="A"),
        image_shas=[],
    )
    messages = [{"role": "user", "content": [{"type": "text", "text": item.question}]}]
    return Request(f"fp-{n:03d}", item, 1, messages, prompt_tokens_estimate=prompt_tokens)
