"""Every release format: the same rows and splits as `hf`, read the way the trainers and evaluators read them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import datasets
import jinja2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.ingest.imaging import png_chunk_types
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ingest.sources.mm_retinal_reason import read as read_mm_retinal_reason
from retinal_reason_data.recipe import RecipeError, load_recipe
from retinal_reason_data.release.ophthareason import write_ophthareason_eval
from retinal_reason_data.release.reader import iter_rows
from retinal_reason_data.rewards import compute_score, easyr1_compute_score, parse_ground_truth
from tests.conftest import write_recipe
from tests.helpers.builds import copy_build, rrd_export

FORMATS = ["hf", "mm-retinal-reason", "ophthareason-eval", "verl", "easyr1", "sharegpt"]
runner = CliRunner()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory, shared_small_build: Path) -> Path:
    """The session's small build exported in every format."""
    export = {"out": "export", "max_shard_size": "200KB", "formats": FORMATS}
    folder = tmp_path_factory.mktemp("formats")
    rrd_export(copy_build(shared_small_build, folder, keep_export=False, export=export))
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


def verl_messages(example: dict) -> list[dict]:
    """verl/utils/dataset/rl_dataset.py RLHFDataset._build_messages: <image> placeholders become the row's images,
    in order; a PIL image is converted to RGB, a dict's bytes are opened; every image must be used."""
    messages, images = example["prompt"], example.pop("images", None) or []
    offset = 0
    for message in messages:
        content = []
        for segment in [item for item in re.split("(<image>|<video>)", message["content"]) if item != ""]:
            if segment == "<image>":
                assert offset < len(images), f"image_offset {offset} >= len(images) {len(images)}"
                image = images[offset]
                if isinstance(image, Image.Image):
                    content.append({"type": "image", "image": image.convert("RGB")})
                else:
                    content.append({"type": "image", "image": Image.open(io.BytesIO(image["bytes"]))})
                offset += 1
            else:
                content.append({"type": "text", "text": segment})
        message["content"] = content
    assert offset == len(images), f"image_offset {offset} != len(images) {len(images)}"
    return messages


def test_verl_loads_the_split_files_as_its_dataset_does_and_scores_with_the_reward(out: Path) -> None:
    for split in splits(out, "rl"):
        rows = hf_rows(out, "rl", split)
        files = sorted(str(path) for path in (out / "verl" / split).iterdir())
        # RLHFDataset._read_files_and_tokenize: every path must end in .parquet; one dataset per file, concatenated
        assert files and all(path.endswith(".parquet") for path in files)
        verl = datasets.concatenate_datasets(
            [datasets.load_dataset("parquet", data_files=path)["train"] for path in files]
        )
        assert [r["extra_info"]["id"] for r in verl] == [r["id"] for r in rows]
        undecoded = verl.cast_column("images", datasets.List(datasets.Image(decode=False)))
        for record, row in zip(undecoded, rows, strict=True):
            assert [digest(i["bytes"]) for i in record["images"]] == [digest(i["bytes"]) for i in row["images"]]
        for index, (record, row) in enumerate(zip(verl, rows, strict=True)):
            assert record["data_source"] == row["source"] and record["ability"] == "ophthalmology"
            assert record["extra_info"]["index"] == index and record["extra_info"]["split"] == split
            messages = verl_messages(dict(record))
            shown = [part["image"] for part in messages[0]["content"] if part["type"] == "image"]
            assert len(shown) == len(row["images"])
            assert record["reward_model"] == {"style": "rule", "ground_truth": row["ground_truth"]}
            # verl's reward loop: keywords, the loop's own extras included
            score = compute_score(
                data_source=record["data_source"],
                solution_str=correct_response(row),
                ground_truth=record["reward_model"]["ground_truth"],
                extra_info={**record["extra_info"], "num_turns": None, "rollout_reward_scores": {}},
                reward_router_address=None,
                reward_model_tokenizer=None,
            )
            assert score == 1.0
            assert compute_score(record["data_source"], "<think>x</think><answer>?</answer>", row["ground_truth"]) < 1


EASYR1_MATH_JINJA = (  # EasyR1 examples/format_prompt/math.jinja, the format prompt of examples/config.yaml
    "{{ content | trim }} You FIRST think about the reasoning process as an internal monologue and then provide "
    "the final answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST "
    "BE put in \\boxed{}."
)


def easyr1_messages(problem: str, format_prompt: str | None) -> list[dict]:
    """EasyR1 verl/utils/dataset.py RLHFDataset._build_messages for a row with images."""
    if format_prompt:
        problem = jinja2.Template(format_prompt.strip()).render(content=problem)
    content: list[dict] = []
    for index, text in enumerate(problem.split("<image>")):
        if index != 0:
            content.append({"type": "image"})
        if text:
            content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def easyr1_process_image(image: Image.Image | dict) -> Image.Image:
    """EasyR1 process_image, without the resizing: a dict's bytes are opened, the image loaded, made RGB."""
    if isinstance(image, dict):
        image = Image.open(io.BytesIO(image["bytes"]))
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def test_easyr1_loads_each_split_folder_as_its_dataset_does(out: Path) -> None:
    format_prompt = (out / "easyr1" / "format_prompt.jinja").read_text(encoding="utf-8")
    for split in splits(out, "rl"):
        rows = hf_rows(out, "rl", split)
        folder = out / "easyr1" / split
        # EasyR1 picks the loader from the extension of the folder's first file (os.listdir order): parquet only
        assert {os.path.splitext(name)[-1] for name in os.listdir(folder)} == {".parquet"}
        easyr1 = datasets.load_dataset("parquet", data_dir=str(folder), split="train")
        assert easyr1.column_names == ["problem", "answer", "images", "id"]
        assert [r["id"] for r in easyr1] == [r["id"] for r in rows]
        inputs = []
        for record, row in zip(easyr1, rows, strict=True):
            messages = easyr1_messages(record["problem"], format_prompt)
            text = "".join(part.get("text", "") for part in messages[0]["content"])
            assert text.count("<answer>") == 1 and "\\boxed" not in text  # asked once for the tags, no box
            slots = [part for part in messages[0]["content"] if part["type"] == "image"]
            assert len(slots) == len(record["images"]) == len(row["images"])
            assert all(easyr1_process_image(image).mode == "RGB" for image in record["images"])
            example = dict(record)
            example["ground_truth"] = example.pop("answer")  # RLHFDataset.__getitem__
            assert parse_ground_truth(example["ground_truth"]).answer == row["answer"]
            inputs.append(
                {"response": correct_response(row), "response_length": 9, "ground_truth": example["ground_truth"]}
            )
        # REWARD_TYPE batch: one call per step with every reply
        assert easyr1_compute_score(inputs) == [{"overall": pytest.approx(1.0), "format": 1.0, "accuracy": 1.0}] * len(
            inputs
        )


def test_easyr1_with_its_default_boxed_format_prompt_still_scores_the_answer(out: Path) -> None:
    records = datasets.load_dataset("parquet", data_dir=str(out / "easyr1" / "train"), split="train")
    for record in records.select(range(min(20, len(records)))):
        text = "".join(
            part.get("text", "") for part in easyr1_messages(record["problem"], EASYR1_MATH_JINJA)[0]["content"]
        )
        assert "\\boxed{}" in text and "<answer>" in text  # math.jinja asks for both: the reward takes both
        answer = parse_ground_truth(record["answer"]).answer
        inside = {"response": f"<think>x</think><answer>\\boxed{{{answer}}}</answer>", "ground_truth": record["answer"]}
        alone = {"response": f"<think>x</think> The answer is $\\boxed{{{answer}}}$.", "ground_truth": record["answer"]}
        assert easyr1_compute_score(inside) == {"overall": pytest.approx(1.0), "format": 1.0, "accuracy": 1.0}
        assert easyr1_compute_score(alone) == {"overall": pytest.approx(0.9), "format": 0.0, "accuracy": 1.0}


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
            assert len(image_lst) <= 6  # limit_mm_per_prompt={"image": 6}
            images = [base64.b64decode(base64_dict[key]) for key in image_lst]
            assert len(images) == len(row["images"])
            for image, original in zip(images, row["images"], strict=True):
                assert image[:3] == b"\xff\xd8\xff"  # sent as data:image/jpeg: a JPEG
                if original["bytes"][:3] == b"\xff\xd8\xff":
                    assert image == original["bytes"]
                else:
                    assert same_picture(image, original["bytes"])
    assert len(seen) == len(set(seen))
    assert len(seen) + sum(report["skipped"].values()) == len(test_rows), "every test row is written or counted"
    named = json.loads((root / "skipped.json").read_text())
    assert len(named) == sum(report["skipped"].values()) and not {entry["id"] for entry in named} & set(seen)
    assert {entry["reason"] for entry in named} == set(report["skipped"])


def _encoded(mode: str, size: tuple[int, int], kind: str, shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, shade if mode == "L" else (shade, 40, 90)).save(buffer, format=kind)
    return buffer.getvalue()


def test_ophthareason_eval_sends_only_jpegs_and_leaves_out_rows_over_its_image_limit(tmp_path: Path) -> None:
    png_grey, png_rgb = _encoded("L", (64, 48), "PNG", 120), _encoded("RGB", (40, 40), "PNG", 200)
    jpeg = _encoded("RGB", (32, 32), "JPEG", 10)
    base = {"task": "basic", "question_type": "single_choice", "question": "Which?", "options": ["x", "y"]}
    rows = [
        {**base, "id": "png", "modality": "OCT", "answer": "A", "images": [{"bytes": png_grey, "path": "g.png"}]},
        {
            **base,
            "id": "mixed",
            "modality": "CFP",
            "answer": "B",
            "images": [{"bytes": jpeg, "path": "j.jpg"}, {"bytes": png_rgb, "path": "c.png"}],
        },
        {
            **base,
            "id": "seven",
            "modality": "CFP",
            "answer": "A",
            "images": [{"bytes": jpeg, "path": f"{n}.jpg"} for n in range(7)],
        },
        {
            **base,
            "id": "six",
            "modality": "FFA",
            "answer": "B",
            "images": [{"bytes": jpeg, "path": f"{n}.jpg"} for n in range(6)],
        },
        {
            **base,
            "id": "tf",
            "modality": "CFP",
            "answer": "True",
            "question_type": "true_false",
            "options": [],
            "images": [{"bytes": jpeg, "path": "j.jpg"}],
        },
    ]
    (tmp_path / "data" / "rl").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "rl" / "test-00000-of-00001.parquet")
    report = write_ophthareason_eval(tmp_path, {"rl": {"test": len(rows)}})
    assert report.skipped == {"more_than_6_images": 1, "basic_true_false": 1}
    root = tmp_path / "ophthareason-eval"
    assert json.loads((root / "skipped.json").read_text()) == [
        {"id": "seven", "reason": "more_than_6_images", "images": 7},
        {"id": "tf", "reason": "basic_true_false", "images": 1},
    ]
    written = {}
    for name in ("single_choice_test_data_CFP", "single_choice_test_data_OCT", "single_choice_test_data_FFA"):
        lookup = pd.read_csv(root / f"{name}.csv", index_col=0).to_dict()["base64"]
        for record in json.loads((root / f"{name}.json").read_text()):
            written[record["id"]] = [base64.b64decode(lookup[key]) for key in record["image"]]
            assert all(key.endswith(".jpg") for key in record["image"])
    assert set(written) == {"png", "mixed", "six"}
    assert all(image[:3] == b"\xff\xd8\xff" for images in written.values() for image in images)
    assert written["mixed"][0] == jpeg and same_picture(written["mixed"][1], png_rgb)
    assert same_picture(written["png"][0], png_grey) and Image.open(io.BytesIO(written["png"][0])).mode == "L"
    assert len(written["six"]) == 6
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "data", again / "data")
    write_ophthareason_eval(again, {"rl": {"test": len(rows)}})
    for path in root.iterdir():  # deterministic, re-encodings included
        assert (again / "ophthareason-eval" / path.name).read_bytes() == path.read_bytes()


def same_picture(jpeg: bytes, original: bytes) -> bool:
    """Same size and mode family, and pixels within JPEG's error (mean absolute difference under 2 levels)."""
    a, b = Image.open(io.BytesIO(jpeg)), Image.open(io.BytesIO(original))
    if a.size != b.size:
        return False
    mode = "L" if a.mode == "L" else "RGB"
    difference = np.abs(np.asarray(a.convert(mode), dtype=np.int16) - np.asarray(b.convert(mode), dtype=np.int16))
    return float(difference.mean()) < 2.0


def test_every_format_ships_images_without_metadata(out: Path) -> None:
    blobs = [
        cell["bytes"] for split in splits(out, "sft") for row in hf_rows(out, "sft", split) for cell in row["images"]
    ]
    blobs += [p.read_bytes() for p in (out / "sharegpt" / "images").iterdir()]
    for path in (out / "mm-retinal-reason").rglob("*.json"):
        blobs += [base64.b64decode(text) for record in json.loads(path.read_text()) for text in record["image"]]
    for path in (out / "ophthareason-eval").glob("*.csv"):  # JPEG re-encodings carry no metadata either
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
