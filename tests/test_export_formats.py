"""Every release format: the same rows and splits as `hf`, read the way the trainers and evaluators read them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import datasets
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.export.reader import iter_rows
from retinal_reason_data.imaging import png_chunk_types
from retinal_reason_data.recipe import RecipeError, load_recipe
from retinal_reason_data.rewards import compute_score, easyr1_compute_score, parse_ground_truth
from retinal_reason_data.sources.base import RawCase, SourceOptions
from retinal_reason_data.sources.mm_retinal_reason import read as read_mm_retinal_reason
from tests.conftest import write_recipe

FORMATS = ["hf", "mm-retinal-reason", "ophthareason-eval", "verl", "easyr1", "sharegpt"]
runner = CliRunner()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("formats")
    recipe = write_recipe(folder, export={"out": "export", "max_shard_size": "200KB", "formats": FORMATS})
    result = runner.invoke(app, ["build", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder / "export"


def hf_rows(out: Path, config: str, split: str) -> list[dict]:
    return list(iter_rows(out, config, split))


def splits(out: Path, config: str) -> dict[str, int]:
    return json.loads((out / "manifest.json").read_text())["rows"][config]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def correct_response(row: dict) -> str:
    return f"<think>Reasoning about the image.</think><answer>{row['answer']}</answer>"


def metadata_free(data: bytes) -> bool:
    """No EXIF, XMP, comments or PNG text chunks."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return not {b"tEXt", b"zTXt", b"iTXt", b"eXIf"} & set(png_chunk_types(data))
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF and data[position + 1] != 0xDA:
        marker, length = data[position + 1], int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in (0xE1, 0xFE):  # APP1 (EXIF, XMP) or COM
            return False
        position += 2 + length
    return True


def test_verl_rows_are_the_rl_rows_and_score_with_the_reward(out: Path) -> None:
    for split in splits(out, "rl"):
        rows = hf_rows(out, "rl", split)
        verl = datasets.load_dataset("parquet", data_dir=str(out / "verl" / split), split="train")
        verl = verl.cast_column("images", datasets.List(datasets.Image(decode=False)))
        assert [r["extra_info"]["id"] for r in verl] == [r["id"] for r in rows]
        for index, (record, row) in enumerate(zip(verl, rows, strict=True)):
            assert record["data_source"] == row["source"] and record["ability"] == "ophthalmology"
            assert record["extra_info"]["index"] == index and record["extra_info"]["split"] == split
            content = record["prompt"][0]["content"]
            # verl's RLHFDataset splits the message text on <image>: one segment per image, in order
            segments = [part for part in re.split("(<image>|<video>)", content) if part == "<image>"]
            assert len(segments) == len(record["images"]) == len(row["images"])
            assert [digest(i["bytes"]) for i in record["images"]] == [digest(i["bytes"]) for i in row["images"]]
            assert record["reward_model"] == {"style": "rule", "ground_truth": row["ground_truth"]}
            truth = record["reward_model"]["ground_truth"]
            assert compute_score(record["data_source"], correct_response(row), truth, record["extra_info"]) == 1.0
            assert compute_score(record["data_source"], "<think>x</think><answer>?</answer>", truth) < 1.0


def test_easyr1_loads_each_split_folder_as_its_reader_does(out: Path) -> None:
    for split in splits(out, "rl"):
        rows = hf_rows(out, "rl", split)
        # EasyR1: a directory is load_dataset("parquet", data_dir=..., split="train")
        easyr1 = datasets.load_dataset("parquet", data_dir=str(out / "easyr1" / split), split="train")
        assert easyr1.column_names == ["problem", "answer", "images", "id"]
        assert [r["id"] for r in easyr1] == [r["id"] for r in rows]
        for record, row in zip(easyr1, rows, strict=True):
            assert record["problem"].count("<image>") == len(record["images"]) == len(row["images"])
            assert all(isinstance(image, Image.Image) for image in record["images"])
            assert parse_ground_truth(record["answer"]).answer == row["answer"]
            score = easyr1_compute_score(
                {"response": correct_response(row), "response_length": 9, "ground_truth": record["answer"]}
            )
            assert score == {"overall": pytest.approx(1.0), "format": 1.0, "accuracy": 1.0}


def test_sharegpt_is_llama_factory_multimodal_sft(out: Path) -> None:
    root = out / "sharegpt"
    info = json.loads((root / "dataset_info.json").read_text())
    assert set(info) == {f"small_{split}" for split in splits(out, "sft")}
    for split in splits(out, "sft"):
        entry = info[f"small_{split}"]
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "images": "images"}
        records = json.loads((root / entry["file_name"]).read_text())
        rows = hf_rows(out, "sft", split)
        assert len(records) == len(rows)
        for record, row in zip(records, rows, strict=True):
            user, assistant = record["messages"]
            assert (user["role"], assistant["role"]) == ("user", "assistant")
            assert user["content"].count("<image>") == len(record["images"]) == len(row["images"])
            assert assistant["content"] == row["response"]
            # images resolve against dataset_dir (LLaMA-Factory's media_dir default), byte-identical to hf
            assert [digest((root / p).read_bytes()) for p in record["images"]] == [
                digest(i["bytes"]) for i in row["images"]
            ]
            truth = {"question_type": row["question_type"], "answer": row["answer"], "aliases": row["answer_aliases"]}
            assert compute_score("x", assistant["content"], json.dumps(truth)) == pytest.approx(1.0)


def test_mm_retinal_reason_records_follow_the_release_and_read_back(out: Path, tmp_path: Path) -> None:
    for split in splits(out, "sft"):
        folder = out / "mm-retinal-reason" / split
        rows = hf_rows(out, "sft", split)
        for task, name in (("basic", "basic_reasoning.json"), ("complex", "complex_reasoning.json")):
            records = json.loads((folder / name).read_text())
            expected = [row for row in rows if row["task"] == task]
            assert len(records) == len(expected)
            for record, row in zip(records, expected, strict=True):
                keys = {"image", "conversations", "reason"} | (
                    {"pmcid", "title", "caption"} if task == "complex" else set()
                )
                assert set(record) == keys
                assert [turn["from"] for turn in record["conversations"]] == ["human", "gpt"]
                assert "<image>" not in record["conversations"][0]["value"]
                assert record["reason"] == row["think"]
                images = [base64.b64decode(text, validate=True) for text in record["image"]]
                assert [digest(i) for i in images] == [digest(i["bytes"]) for i in row["images"]]
        # the package's own importer of the release reads every record back
        read = list(read_mm_retinal_reason(folder, "reimport", SourceOptions(work_dir=tmp_path / split)))
        assert all(isinstance(case, RawCase) for case in read), [c for c in read if not isinstance(c, RawCase)]
        assert len(read) == len(rows)


def test_ophthareason_eval_files_load_as_its_script_loads_them(out: Path) -> None:
    root = out / "ophthareason-eval"
    test_rows = {row["id"]: row for row in hf_rows(out, "rl", "test")}
    report = json.loads((out / "manifest.json").read_text())["formats"]["ophthareason-eval"]
    seen = []
    patterns = {
        "single_choice_test_data_CFP": r"[A-H]",
        "single_choice_test_data_FFA": r"[A-H]",
        "single_choice_test_data_OCT": r"[A-H]",
        "multi_choice_test_data_CFP": r"[A-H](,[A-H])*",
        "complex_reason": r".+",
    }
    for name, answer_pattern in patterns.items():
        # eval/eval.py: json.load, then pd.read_csv(index_col=0).to_dict()["base64"], then a lookup per key
        data = json.loads((root / f"{name}.json").read_text())
        base64_dict = pd.read_csv(root / f"{name}.csv", index_col=0).to_dict()["base64"]
        for x in data:
            question, answer = x["conversations"][0]["value"], x["conversations"][1]["value"]
            row = test_rows[x["id"]]
            seen.append(x["id"])
            assert question.startswith(row["question"])
            assert re.fullmatch(answer_pattern, answer) and " " not in answer or name == "complex_reason"
            if name == "complex_reason":
                assert answer == row["answer"] and not re.fullmatch(r"[A-H](,[A-H])*", answer)
            image_lst = x["image"] if isinstance(x["image"], list) else [x["image"]]
            images = [base64.b64decode(base64_dict[key]) for key in image_lst]
            assert [digest(i) for i in images] == [digest(i["bytes"]) for i in row["images"]]
            for image in images:
                Image.open(io.BytesIO(image)).load()
    assert len(seen) == len(set(seen))
    assert len(seen) + sum(report["skipped"].values()) == len(test_rows), "every test row is written or counted"


def test_every_format_ships_images_without_metadata(out: Path) -> None:
    blobs = [
        cell["bytes"] for split in splits(out, "sft") for row in hf_rows(out, "sft", split) for cell in row["images"]
    ]
    blobs += [p.read_bytes() for p in (out / "sharegpt" / "images").iterdir()]
    for path in (out / "mm-retinal-reason").rglob("*.json"):
        blobs += [base64.b64decode(text) for record in json.loads(path.read_text()) for text in record["image"]]
    for path in (out / "ophthareason-eval").glob("*.csv"):
        blobs += [base64.b64decode(text) for text in pd.read_csv(path)["base64"]]
    assert blobs
    assert all(metadata_free(blob) for blob in blobs)


def test_the_hf_configs_stream(out: Path) -> None:
    for config in ("sft", "rl", "verl", "easyr1"):
        streamed = datasets.load_dataset(str(out), config, streaming=True)
        counts = {split: sum(1 for _ in rows) for split, rows in streamed.items()}
        manifest = json.loads((out / "manifest.json").read_text())
        assert counts == manifest["formats"]["hf"]["rows"].get(config, manifest["formats"].get(config, {}).get("rows"))


def test_every_file_is_in_the_manifest_and_a_forced_export_is_byte_identical(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(listed) == on_disk
    assert {name for name in manifest["formats"]} == set(FORMATS)
    result = runner.invoke(app, ["export", str(out.parent / "recipe.yaml"), "--force"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    again = json.loads((out / "manifest.json").read_text())
    assert {entry["path"]: entry["sha256"] for entry in again["files"]} == listed


def test_formats_in_the_recipe(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, export={"formats": ["verl", "sharegpt", "verl"]}))
    assert recipe.export.formats == ["hf", "verl", "sharegpt"]
    with pytest.raises(RecipeError, match="key 'export.formats.0'"):
        load_recipe(write_recipe(tmp_path, export={"formats": ["llava"]}))


def test_a_format_left_out_of_the_recipe_leaves_the_export(out: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(out.parent, copy)
    recipe_path = copy / "recipe.yaml"
    recipe = yaml.safe_load(recipe_path.read_text())
    recipe["export"]["formats"] = ["verl"]
    recipe_path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["export", str(recipe_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folders = {p.name for p in (copy / "export").iterdir() if p.is_dir()}
    assert folders == {"data", "figures", "index", "verl"}
    stats = json.loads(runner.invoke(app, ["stats", str(recipe_path), "--json"]).output)
    assert set(stats["exported_formats"]) == {"hf", "verl"}
    assert stats["exported_formats"]["verl"]["rows"] == stats["exported"]["rl"]
