"""What the `rrd eval` tests run against: an `rl` release whose groups are known, and a model that knows every answer.

`write_release` writes an export folder (data/rl/{split}-*.parquet with the export's own Features, and a
manifest) of PER_CELL rows in every cell of task x modality x question type x source; `AnswerKey` is an
OpenAI-compatible responder (for tests/fake_openai.py) that reads the question it is sent, answers it rightly in
the release's <think>/<answer> layout, and wrongly for the ids it is told to get wrong. With the 4th row of each
cell wrong, exactly a quarter is wrong overall and in every group of every grouping.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from retinal_reason_data.release.hf import FEATURES
from retinal_reason_data.release.prompting import prompt_text
from retinal_reason_data.release.shards import write_split
from retinal_reason_data.rewards import make_ground_truth
from retinal_reason_data.text import stable_hash

TASKS = ("basic", "complex")
MODALITIES = ("CFP", "OCT")
QUESTION_TYPES = ("single_choice", "multiple_choice", "true_false", "open")
SOURCES = ("alpha", "beta")
PER_CELL = 4
CELLS = list(itertools.product(TASKS, MODALITIES, QUESTION_TYPES, SOURCES))
OPTIONS = ["Drusen", "Macular hole", "Retinal detachment", "Normal fundus"]
GROUPINGS = ("task", "modality", "question_type", "source")


def png(index: int, side: int = 24) -> bytes:
    """A small PNG unique to `index`."""
    image = Image.new("RGB", (side, side), ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256))
    image.putpixel((index % side, (index // side) % side), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _answer(question_type: str, index: int) -> tuple[list[str], str]:
    if question_type == "single_choice":
        return OPTIONS, "ABCD"[index % 4]
    if question_type == "multiple_choice":
        return OPTIONS, ["A, C", "B, D", "A, B"][index % 3]
    if question_type == "true_false":
        return [], ["True", "False"][index % 2]
    return [], ["Drusen", "Macular hole"][index % 2]


def release_rows(per_cell: int = PER_CELL, images: int = 1) -> list[dict[str, Any]]:
    """`per_cell` rows in every cell, ordered by cell; row i of a cell shows `images` PNGs."""
    rows = []
    for cell_index, (task, modality, question_type, source) in enumerate(CELLS):
        for within in range(per_cell):
            index = cell_index * per_cell + within
            options, answer = _answer(question_type, index)
            rows.append(
                {
                    "id": f"s{index:04d}",
                    "images": [{"bytes": png(index * 7 + n), "path": f"img{index:04d}-{n}.png"} for n in range(images)],
                    "case_id": f"case{index // 2:04d}",
                    "source": source,
                    "patient_id": f"p{index:04d}",
                    "task": task,
                    "question_type": question_type,
                    "modality": modality,
                    "question": f"Question {index}: what does this {modality} image of the {task} set show?",
                    "options": options,
                    "answer": answer,
                    "answer_aliases": [],
                    "ground_truth": make_ground_truth(question_type, answer, []),
                    "pass_at_k": None,
                    "captions": [],
                    "title": None,
                    "pmcid": None,
                }
            )
    return rows


def write_release(folder: Path, rows: list[dict[str, Any]], split: str = "test", shard_bytes: int = 20_000) -> Path:
    """An export folder holding `rows` as the `rl` config's `split` (several shards), with a manifest."""
    written = write_split(folder / "data" / "rl", split, FEATURES["rl"], rows, shard_bytes)
    manifest = {
        "content_key": stable_hash(*(json.dumps(row["id"]) + row["question"] for row in rows), length=32),
        "recipe_version": "0.0.1",
        "rows": {"rl": {split: len(rows)}},
        "files": [{**entry, "path": entry["path"].relative_to(folder).as_posix()} for entry in written],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return folder


def every_nth(rows: Iterable[dict[str, Any]], n: int = PER_CELL) -> set[str]:
    """The ids of every n-th row (the n-th, 2n-th, ...): with rows ordered by cell, one per cell of n."""
    return {row["id"] for index, row in enumerate(rows) if index % n == n - 1}


def wrong_answer(question_type: str, answer: str) -> str:
    if question_type == "true_false":
        return "False" if answer == "True" else "True"
    if question_type in ("single_choice", "multiple_choice"):
        return "B" if answer != "B" else "A"
    return "Optic disc pit"


def reply(answer: str) -> str:
    return f"<think>Step 1: I look at the image.\nStep 2: I weigh the options.</think><answer>{answer}</answer>"


class AnswerKey:
    """Answers a chat request by the prompt text it carries: rightly, or wrongly for the ids in `wrong`."""

    def __init__(self, rows: Iterable[dict[str, Any]], wrong: set[str] = frozenset()) -> None:
        self.by_prompt = {prompt_text(row): row for row in rows}
        self.wrong = set(wrong)

    def __call__(self, request: dict[str, Any]) -> str:
        parts = request["messages"][-1]["content"]
        text = next(part["text"] for part in parts if part["type"] == "text")
        row = self.by_prompt[text]
        answer = row["answer"]
        if row["id"] in self.wrong:
            answer = wrong_answer(row["question_type"], answer)
        return reply(answer)


def expected_accuracy(rows: Iterable[dict[str, Any]], wrong: set[str]) -> dict[str, Any]:
    """Accuracy overall and per group of each grouping, from the rows and the ids answered wrongly."""
    rows = list(rows)

    def share(chosen: list[dict[str, Any]]) -> float:
        return sum(row["id"] not in wrong for row in chosen) / len(chosen)

    expected: dict[str, Any] = {"accuracy": share(rows)}
    for grouping in GROUPINGS:
        values = sorted({row[grouping] for row in rows})
        expected[f"by_{grouping}"] = {
            value: (sum(row[grouping] == value for row in rows), share([r for r in rows if r[grouping] == value]))
            for value in values
        }
    return expected
