"""OphthaReason's five files as `rrd eval` reads them: the messages its eval.py builds, bad records named and
skipped, and the `ophthareason` scorer against the reward."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.evaluation.base64_csv import Base64Csv, CsvProblem, ImageLookupError
from retinal_reason_data.evaluation.ophthareason import (
    FILE_GROUPS,
    MAX_TOKENS,
    QUESTION_DICT,
    SEED,
    SYSTEM_PROMPT,
    TEMPERATURE,
    SkippedRecord,
    in_asked_form,
    is_ophthareason_folder,
    ophthareason_samples,
    outputs_file_name,
    score_eval_outputs,
    score_ophthareason,
)
from retinal_reason_data.evaluation.samples import Sample
from retinal_reason_data.evaluation.scorers import SCORERS, score_reward
from retinal_reason_data.release.ophthareason import FILES
from retinal_reason_data.release.reader import iter_rows
from retinal_reason_data.rewards import make_ground_truth
from tests.fake_openai import FakeOpenAI
from tests.helpers.builds import copy_build, rrd_build
from tests.helpers.eval_release import AnswerKey

# eval/eval.py (58f0eaa): SIGLE_DS, MULTI_DS and DS_DICT
SIGLE_DS = ["single_choice_test_data_CFP", "single_choice_test_data_FFA", "single_choice_test_data_OCT"]
MULTI_DS = ["multi_choice_test_data_CFP"]
DS_DICT = {"complex_reason": "COMPLEX"} | {ds: "SINGLE" for ds in SIGLE_DS} | {ds: "MULTI" for ds in MULTI_DS}
# sha256 of eval.py's SYSTEM_PROMPT and QUESTION_DICT values, read from its source with ast.literal_eval:
# git show 58f0eaa:eval/eval.py | python -c "import ast, hashlib, sys; ..." (the strings are not copied here)
EVAL_PY_DIGESTS = {
    "SYSTEM_PROMPT": "a238244d5f84d1334e123e55d5d2df1a18404365b2addb07c8fe195cd333676b",
    "MULTI": "ab67f28b6152da9e419e1478cda087d19f1ef5417d5af500e33932fa4399b02b",
    "SINGLE": "a816f8e9e9ad2ef6925a3377628a0e6e618992c12335845d730f94e7701e2510",
    "COMPLEX": "1dc9e395e7e5af492c72ee7946050a036023bc6d21ead290bc1efd7c84067680",
}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, shared_small_build: Path) -> Path:
    """The session's small build with half of it in the test split (so that every one of the five files has
    records), exported as `hf` and `ophthareason-eval`."""
    folder = tmp_path_factory.mktemp("ophthareason")
    splits = {"train": 0.3, "rl": 0.1, "validation": 0.1, "test": 0.5}
    export = {"out": "export", "max_shard_size": "200KB", "formats": ["hf", "ophthareason-eval"]}
    rrd_build(copy_build(shared_small_build, folder, keep_export=False, splits=splits, export=export))
    return folder / "export"


def eval_py_messages(ds_root: Path, base64_root: Path, ds: str) -> list[list]:
    """eval/eval.py's loop for one file, as written there (without vllm): [message, question, answer, image]."""
    question_key = DS_DICT[ds]
    data = json.load(open(ds_root / f"{ds}.json"))  # noqa: SIM115 (as eval.py does)
    base64_dict = pd.read_csv(base64_root / f"{ds}.csv", index_col=0).to_dict()["base64"]
    built = []
    for x in data:
        question = x["conversations"][0]["value"]
        answer = x["conversations"][1]["value"]
        image_lst = x["image"]
        if type(image_lst) is not list:
            image_lst = [image_lst]
        base64_image_lst = [base64_dict[img] for img in image_lst]
        message = [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": QUESTION_DICT[question_key].format(Question=question)}]
                + [
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{base64_image}"}}
                    for base64_image in base64_image_lst
                ],
            },
        ]
        built.append([message, question, answer, x["image"]])
    return built


def media_type(data: bytes) -> str:
    return "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png" if data[:4] == b"\x89PNG" else "unknown"


def chat_messages(sample: Sample) -> list[dict]:
    """A sample as OpenAI chat messages: the system text, then the prompt and its images in the sample's order,
    each image a data URL of its bytes with their true media type."""
    text = [{"type": "text", "text": sample.prompt}]
    images = [
        {
            "type": "image_url",
            "image_url": {"url": f"data:{media_type(i.data)};base64,{base64.b64encode(i.data).decode()}"},
        }
        for i in sample.images
    ]
    user = images + text if sample.images_first else text + images
    return [{"role": "system", "content": [{"type": "text", "text": sample.system}]}, {"role": "user", "content": user}]


def test_prompts_and_sampling_are_eval_pys() -> None:
    assert hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest() == EVAL_PY_DIGESTS["SYSTEM_PROMPT"]
    assert {key: hashlib.sha256(text.encode()).hexdigest() for key, text in QUESTION_DICT.items()} == {
        key: EVAL_PY_DIGESTS[key] for key in ("MULTI", "SINGLE", "COMPLEX")
    }
    assert (TEMPERATURE, MAX_TOKENS, SEED) == (0.0, 8192, 3702)
    assert {name: group.kind for name, group in FILE_GROUPS.items()} == DS_DICT
    assert tuple(FILE_GROUPS) == FILES  # the files the export writes


def test_samples_are_the_messages_eval_py_sends(export: Path) -> None:
    folder = export / "ophthareason-eval"
    skipped: list[SkippedRecord] = []
    samples = list(ophthareason_samples(folder, skipped))
    assert skipped == []
    rows = {row["id"]: row for row in iter_rows(export, "rl", "test")}
    by_file: dict[str, list[Sample]] = {}
    for sample in samples:
        by_file.setdefault(next(n for n, g in FILE_GROUPS.items() if g[1:] == _groups(sample)), []).append(sample)
    assert set(by_file) == set(FILES), "the fixture's export has records in every file"
    for ds in FILES:
        expected = eval_py_messages(folder, folder, ds)
        built = by_file[ds]
        assert [chat_messages(sample) for sample in built] == [entry[0] for entry in expected]
        records = json.loads((folder / f"{ds}.json").read_text())
        assert [sample.sample_id for sample in built] == [record["id"] for record in records]
        for sample, (_, question, answer, keys) in zip(built, expected, strict=True):
            row = rows[sample.sample_id]
            assert sample.answer == answer and sample.scorer == "ophthareason"
            assert [image.path for image in sample.images] == keys
            assert (sample.source, sample.case_id) == (row["source"], row["case_id"])
            assert sample.prompt.startswith(question + ". First output")
            assert score_ophthareason(f"<think>x</think><answer>{answer}</answer>", sample.ground_truth).accuracy == 1


def _groups(sample: Sample) -> tuple[str, str, str]:
    return sample.task, sample.question_type, sample.modality


def test_which_folders_are_ophthareason_folders(export: Path, tmp_path: Path) -> None:
    folder = export / "ophthareason-eval"
    assert is_ophthareason_folder(folder) and is_ophthareason_folder(Path(str(folder)))
    assert not is_ophthareason_folder(export), "an export is evaluated on its rl config"
    copy = shutil.copytree(folder, tmp_path / "copy")
    assert is_ophthareason_folder(copy)
    one_pair = tmp_path / "ds_root"
    one_pair.mkdir()
    for suffix in (".json", ".csv"):
        shutil.copy(folder / f"complex_reason{suffix}", one_pair)
    assert is_ophthareason_folder(one_pair)
    (one_pair / "complex_reason.csv").unlink()
    assert not is_ophthareason_folder(one_pair), "a JSON without its CSV is not eval.py's layout"
    assert not is_ophthareason_folder(tmp_path / "absent")
    assert not is_ophthareason_folder(folder / "complex_reason.json")
    # a copy outside its export keeps the messages, and has no release to name sources from
    copied = list(ophthareason_samples(copy))
    assert [chat_messages(s) for s in copied] == [chat_messages(s) for s in ophthareason_samples(folder)]
    assert {s.source for s in copied} == {""}


def test_csv_and_json_in_separate_roots(export: Path, tmp_path: Path) -> None:
    ds_root, base64_root = tmp_path / "json", tmp_path / "csv"
    for root, suffix in ((ds_root, ".json"), (base64_root, ".csv")):
        root.mkdir()
        for path in (export / "ophthareason-eval").glob(f"*{suffix}"):
            shutil.copy(path, root)
    separate = list(ophthareason_samples(ds_root, base64_root=base64_root))
    assert [s.sample_id for s in separate] == [s.sample_id for s in ophthareason_samples(export / "ophthareason-eval")]
    assert [chat_messages(s) for s in separate if s.sample_id == separate[0].sample_id] == [
        entry[0] for entry in eval_py_messages(ds_root, base64_root, "single_choice_test_data_CFP")
    ]


def _records(folder: Path, name: str) -> list[dict]:
    return json.loads((folder / f"{name}.json").read_text())


def _write(folder: Path, name: str, records: list) -> None:
    (folder / f"{name}.json").write_text(json.dumps(records))


def _csv_rows(folder: Path, name: str) -> list[list[str]]:
    return list(csv.reader((folder / f"{name}.csv").read_text().splitlines()))


def _write_csv(folder: Path, name: str, rows: list[list[str]]) -> None:
    with (folder / f"{name}.csv").open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def test_bad_records_are_named_and_skipped_and_the_rest_goes_on(export: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(export / "ophthareason-eval", tmp_path / "eval")
    ffa = _records(folder, "single_choice_test_data_FFA")
    good, base = ffa[0], ffa[1]
    ffa_rows = _csv_rows(folder, "single_choice_test_data_FFA")
    spare, garbled_line = ffa_rows[1], len(ffa_rows) + 1  # a CSV's lines count from 1, the header's
    ffa_rows += [["garbled.jpg", "not base64 at all!"], ["text.jpg", base64.b64encode(b"hello world").decode()]]
    ffa_rows += [["twice.jpg", spare[1]], ["twice.jpg", ffa_rows[2][1]], ["same.jpg", spare[1]], ["same.jpg", spare[1]]]
    _write_csv(folder, "single_choice_test_data_FFA", ffa_rows)
    bad = [
        good,
        {**base, "id": "missing-key", "image": [spare[0], "nowhere.jpg"]},
        {**base, "id": "garbled", "image": "garbled.jpg"},
        {**base, "id": "text", "image": ["text.jpg"]},
        {**base, "id": "ambiguous", "image": ["twice.jpg"]},
        {**base, "id": "same-twice", "image": ["same.jpg"]},
        {**base, "id": "one-turn", "conversations": base["conversations"][:1]},
        {**base, "id": good["id"]},
        {**base, "id": "seven", "image": [spare[0]] * 7},
        {**base, "id": "a-name", "conversations": [base["conversations"][0], {"from": "gpt", "value": "Drusen"}]},
        "not an object",
        {key: value for key, value in base.items() if key != "id"},
    ]
    _write(folder, "single_choice_test_data_FFA", bad)
    multi = _records(folder, "multi_choice_test_data_CFP")
    (folder / "multi_choice_test_data_CFP.json").write_text("[" + json.dumps(multi[0]) + ', {"id": "cut", "ima')
    (folder / "single_choice_test_data_OCT.csv").unlink()
    (folder / "complex_reason.csv").write_text("image,picture\nx.jpg,AAAA\n")
    skipped: list[SkippedRecord] = []
    samples = list(ophthareason_samples(folder, skipped))
    ids = [sample.sample_id for sample in samples]
    ffa_path = str(folder / "single_choice_test_data_FFA.json")
    assert [(s.file, s.record, s.sample_id, s.reason) for s in skipped] == [
        (ffa_path, 2, "missing-key", "image_missing"),
        (ffa_path, 3, "garbled", "image_bad_base64"),
        (ffa_path, 4, "text", "not_an_image"),
        (ffa_path, 5, "ambiguous", "image_key_ambiguous"),
        (ffa_path, 7, "one-turn", "record_invalid"),
        (ffa_path, 8, good["id"], "duplicate_id"),
        (ffa_path, 9, "seven", "more_than_6_images"),
        (ffa_path, 10, "a-name", "answer_invalid"),
        (ffa_path, 11, "single_choice_test_data_FFA:11", "record_invalid"),
        *[
            (str(folder / "single_choice_test_data_OCT.json"), n + 1, r["id"], "csv_unreadable")
            for n, r in enumerate(_records(export / "ophthareason-eval", "single_choice_test_data_OCT"))
        ],
        (str(folder / "multi_choice_test_data_CFP.json"), 2, None, "json_unreadable"),
        *[
            (str(folder / "complex_reason.json"), n + 1, r["id"], "csv_unreadable")
            for n, r in enumerate(_records(export / "ophthareason-eval", "complex_reason"))
        ],
    ]
    assert ids == [
        *[r["id"] for r in _records(folder, "single_choice_test_data_CFP")],
        good["id"],
        "same-twice",
        "single_choice_test_data_FFA:12",
        multi[0]["id"],  # the records before the break are read: the JSON is streamed
    ]
    messages = {s.reason: s.message for s in reversed(skipped)}  # the first of each reason
    assert "record 2 (id missing-key)" in messages["image_missing"] and "'nowhere.jpg'" in messages["image_missing"]
    assert f"FFA.csv line {garbled_line} (image key 'garbled.jpg'): not base64" in messages["image_bad_base64"]
    assert f"lines {garbled_line + 2} and {garbled_line + 3}" in messages["image_key_ambiguous"]
    assert "record 7 (id one-turn): conversations: List should have at least 2" in messages["record_invalid"]
    assert "record 11 (id single_choice_test_data_FFA:11): expected an object, found str" in skipped[8].message
    assert "'Drusen' is not what SINGLE asks for" in messages["answer_invalid"]
    assert "7 images" in messages["more_than_6_images"]
    assert "JSON broken after record 1" in messages["json_unreadable"]
    oct_message = next(s.message for s in skipped if "OCT" in s.file)
    assert "single_choice_test_data_OCT.csv: cannot open" in oct_message
    assert "no 'base64' column after the key column" in skipped[-1].message


def test_skipped_records_are_logged_when_no_list_is_given(
    export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = shutil.copytree(export / "ophthareason-eval", tmp_path / "eval")
    records = _records(folder, "single_choice_test_data_FFA")
    _write(folder, "single_choice_test_data_FFA", [{**records[0], "image": "nowhere.jpg"}, *records[1:]])
    with caplog.at_level(logging.WARNING, logger="retinal_reason_data.evaluation.ophthareason"):
        samples = list(ophthareason_samples(folder))
    assert len(samples) == len(list(ophthareason_samples(export / "ophthareason-eval"))) - 1
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped: {folder / 'single_choice_test_data_FFA.json'} record 1 (id {records[0]['id']}): "
        f"{folder / 'single_choice_test_data_FFA.csv'}: no row for image key 'nowhere.jpg'"
    ]


def test_the_csv_lookup_answers_as_pandas_does(tmp_path: Path) -> None:
    jpeg, png = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 800, b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
    assert len(base64.b64encode(jpeg)) > 131_072, "larger than the csv module's default field limit"
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerows([["image", "note", "base64"], ["plain.jpg", "x", base64.b64encode(jpeg).decode()]])
    writer.writerows([["with, comma\nand newline.png", 'a "quoted" note', base64.b64encode(png).decode()]])
    path = tmp_path / "images.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.getvalue().encode() + b"\r\n" + b"last.jpg,y," + base64.b64encode(jpeg))
    expected = pd.read_csv(path, index_col=0).to_dict()["base64"]
    with Base64Csv(path) as lookup:
        assert len(lookup) == len(expected) == 3
        assert {key: base64.b64encode(lookup.image(key)).decode() for key in expected} == expected
        with pytest.raises(ImageLookupError, match="no row for image key 'absent.jpg'") as missing:
            lookup.image("absent.jpg")
    assert missing.value.reason == "image_missing"
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "open.csv").write_text('image,base64\n"never closed,AAAA\nmore,BBBB\n')
    for name, problem in [("empty.csv", "empty"), ("open.csv", "line 2: a quote opened here is never closed")]:
        with pytest.raises(CsvProblem, match=problem):
            Base64Csv(tmp_path / name)


def wrap(answer: str) -> str:
    return f"<think>The optic disc is pale.</think><answer>{answer}</answer>"


SINGLE, MULTI = make_ground_truth("single_choice", "B", []), make_ground_truth("multiple_choice", "B,E", [])
OPEN = make_ground_truth("open", "Bietti crystalline dystrophy", [])
SCORER_CASES = [  # ground truth, reply, format, accuracy
    (SINGLE, wrap("B"), 1, 1),
    (SINGLE, wrap(" B "), 1, 1),  # the system prompt's own example spaces the tags' contents
    (SINGLE, "The optic disc is pale.</think><answer>B</answer>", 1, 1),  # <think> pre-filled by the template
    (SINGLE, wrap("C"), 1, 0),
    (SINGLE, wrap("b"), 1, 0),  # "must be uppercase"
    (SINGLE, wrap("B."), 1, 0),
    (SINGLE, wrap("**B**"), 1, 0),
    (SINGLE, wrap("B. Drusen"), 1, 0),
    (SINGLE, wrap("B or C"), 1, 0),  # a hedge
    (SINGLE, wrap("B,C"), 1, 0),  # two letters for one answer
    (SINGLE, "B", 0, 0),  # no tags
    (SINGLE, "<think>x</think>\\boxed{B}", 0, 0),
    (SINGLE, wrap("B") + " Also C.", 0, 0),  # text after </answer> voids the answer
    (MULTI, wrap("B,E"), 1, 1),
    (MULTI, wrap("E,B"), 1, 1),  # set equality: the order is free
    (MULTI, wrap("B, E"), 1, 0),  # "separated by commas without spaces"
    (MULTI, wrap("b,e"), 1, 0),
    (MULTI, wrap("B and E"), 1, 0),
    (MULTI, wrap("B"), 1, 0),
    (MULTI, wrap("B,E,F"), 1, 0),
    (MULTI, "<answer>B,E</answer>", 0, 0),
    (OPEN, wrap("Bietti crystalline dystrophy"), 1, 1),
    (OPEN, wrap("bietti crystalline dystrophy."), 1, 1),  # a name is compared by the project's name matching
    (OPEN, wrap("The diagnosis is Bietti crystalline dystrophy"), 1, 1),
    (OPEN, wrap("Retinitis pigmentosa"), 1, 0),
    (OPEN, wrap("Bietti crystalline dystrophy or retinitis pigmentosa"), 1, 0),  # a hedge
    (OPEN, "Bietti crystalline dystrophy", 0, 0),
]


@pytest.mark.parametrize(("ground_truth", "reply", "fmt", "accuracy"), SCORER_CASES)
def test_the_scorer_scores_as_the_prompts_ask(ground_truth: str, reply: str, fmt: int, accuracy: int) -> None:
    scored = score_ophthareason(reply, ground_truth)
    assert (scored.format, scored.accuracy) == (fmt, accuracy)
    reward = score_reward(reply, ground_truth)
    assert scored.format == reward.format and scored.extracted == reward.extracted
    assert scored.accuracy <= reward.accuracy, "whatever this scorer accepts, the reward accepts"
    if in_asked_form(json.loads(ground_truth)["question_type"], reward.extracted):
        assert scored == reward, "an answer in the asked form scores as the reward scores it"
    assert scored.score == pytest.approx(0.9 * scored.accuracy + 0.1 * scored.format)


def test_the_scorer_is_registered() -> None:
    assert SCORERS["ophthareason"] is score_ophthareason


def test_eval_py_outputs_score_as_rrd_eval_scores_them(export: Path, tmp_path: Path) -> None:
    folder = export / "ophthareason-eval"
    name = "single_choice_test_data_FFA"
    expected = eval_py_messages(folder, folder, name)
    replies = [wrap(answer) if n % 2 == 0 else wrap("a") for n, (_, _, answer, _) in enumerate(expected)]
    # what eval.py pickles, [response, question, answer, image], as its owner's JSON copy
    outputs = [
        [reply, question, answer, keys] for reply, (_, question, answer, keys) in zip(replies, expected, strict=True)
    ]
    path = tmp_path / f"Qwen2.5-VL-3B_{name}.json"
    path.write_text(json.dumps(outputs + [["reply only"], [wrap("A"), "q", "Drusen", []]]))
    result = score_eval_outputs(path)
    samples = [s for s in ophthareason_samples(folder) if s.modality == "FFA"]
    by_rrd = [score_ophthareason(reply, sample.ground_truth) for reply, sample in zip(replies, samples, strict=True)]
    assert result.file == name and result.entries == len(outputs) + 2
    assert [tuple(one) for one in result.scored] == [tuple(one) for one in by_rrd]
    assert (
        result.accuracy == sum(one.accuracy for one in by_rrd) / len(by_rrd) == (len(replies) + 1) // 2 / len(replies)
    )
    assert result.problems == [
        f"{path} entry {len(outputs) + 1}: expected a list [response, question, answer, image]",
        f"{path} entry {len(outputs) + 2}: answer 'Drusen' is not what SINGLE asks for",
    ]
    assert outputs_file_name(Path("m_multi_choice_test_data_CFP.json")) == "multi_choice_test_data_CFP"
    with pytest.raises(ValueError, match="ends in none of"):
        outputs_file_name(Path("outputs.json"))
    (tmp_path / "broken.json").write_text(json.dumps(outputs)[:-30])
    broken = score_eval_outputs(tmp_path / "broken.json", name)
    assert broken.problems[-1].startswith(f"{tmp_path / 'broken.json'}: JSON broken after entry")


# --- rrd eval on the folder, end to end -------------------------------------------------------------------
class FileAnswers:
    """An OpenAI-compatible responder for OphthaReason's files: answers each user text rightly, except the ids in
    `wrong` (another letter, another name) and `lower` (the right letter in lower case)."""

    def __init__(self, samples: list[Sample], wrong: set[str], lower: set[str] = frozenset()) -> None:
        self.by_prompt = {sample.prompt: sample for sample in samples}
        self.wrong, self.lower = wrong, set(lower)

    def __call__(self, request: dict) -> str:
        text = next(part["text"] for part in request["messages"][-1]["content"] if part["type"] == "text")
        sample = self.by_prompt[text]
        answer = sample.answer
        if sample.sample_id in self.wrong:
            answer = "Optic disc pit" if sample.task == "complex" else ("A" if answer != "A" else "B")
        elif sample.sample_id in self.lower:
            answer = answer.lower()
        return f"<think>I look at the images.</think><answer>{answer}</answer>"


def rrd_eval(folder: Path, server: FakeOpenAI, *extra: str, code: int = 0) -> dict:
    args = ["eval", str(folder), "--base-url", server.base_url, "--model", "fake-vlm", "--json", *extra]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_rrd_eval_sends_eval_pys_messages_and_scores_as_its_prompts_ask(export: Path, tmp_path: Path) -> None:
    folder = export / "ophthareason-eval"
    samples = list(ophthareason_samples(folder))
    wrong = {samples[n].sample_id for n in range(1, len(samples), 2)}
    lower = {next(s.sample_id for s in samples if s.question_type == "single_choice" and s.sample_id not in wrong)}
    run = tmp_path / "run"
    with FakeOpenAI(FileAnswers(samples, wrong, lower)) as server:
        summary = rrd_eval(folder, server, "--out", str(run), "--max-tokens", str(MAX_TOKENS), "--seed", str(SEED))
        sent = list(server.requests)
    assert summary["samples"] == len(samples) == len(sent)
    right = [s for s in samples if s.sample_id not in wrong | lower]
    assert summary["accuracy"] == len(right) / len(samples) and summary["format_rate"] == 1.0
    for grouping in ("task", "modality", "question_type", "source"):
        groups = {getattr(s, grouping) for s in samples}
        assert {
            group: (figures["count"], figures["accuracy"]) for group, figures in summary[f"by_{grouping}"].items()
        } == {
            group: (
                sum(getattr(s, grouping) == group for s in samples),
                sum(getattr(s, grouping) == group for s in right) / sum(getattr(s, grouping) == group for s in samples),
            )
            for group in groups
        }
    assert set(summary["by_modality"]) == {"CFP", "FFA", "OCT", "mixed"}
    # what the server received is what eval.py builds: its user content exactly; the system text as a string,
    # which OpenAI-compatible servers (vLLM's chat parser) read as the one text part eval.py sends
    expected = {
        entry[0][1]["content"][0]["text"]: entry[0] for ds in FILES for entry in eval_py_messages(folder, folder, ds)
    }
    for request in sent:
        system, user = request["messages"]
        built = expected[user["content"][0]["text"]]
        assert user == built[1]
        assert system["role"] == "system" and system["content"] in (built[0]["content"], SYSTEM_PROMPT)
        assert (request["temperature"], request["max_tokens"], request["seed"]) == (TEMPERATURE, MAX_TOKENS, SEED)
    rows = pq.read_table(run / "responses.parquet").to_pylist()
    lowered = next(row for row in rows if row["sample_id"] in lower)
    assert lowered["accuracy"] == 0 and lowered["format"] == 1 and lowered["extracted"].islower()
    meta = json.loads((run / "run.json").read_text())
    assert (meta["config"], meta["split"], meta["release"]["format"]) == (
        "ophthareason-eval",
        "test",
        "ophthareason-eval",
    )
    assert meta["release"]["content_key"] == json.loads((export / "manifest.json").read_text())["content_key"]
    with FakeOpenAI(FileAnswers(samples, set())) as server:
        again = rrd_eval(folder, server, "--out", str(run), "--max-tokens", str(MAX_TOKENS), "--seed", str(SEED))
        assert server.requests == [], "a rerun sends nothing"
    assert again == summary


def test_rrd_eval_names_the_records_it_leaves_out_and_keeps_the_rl_run_apart(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shutil.copytree(export / "ophthareason-eval", tmp_path / "export" / "ophthareason-eval")
    for path in [*export.glob("*.json"), export / "data"]:
        (shutil.copytree if path.is_dir() else shutil.copy)(path, tmp_path / "export" / path.name)
    records = _records(folder, "complex_reason")
    _write(folder, "complex_reason", [{**records[0], "image": ["nowhere.jpg"]}, *records[1:]])
    samples = list(ophthareason_samples(folder))
    rl_rows = list(iter_rows(export, "rl", "test"))
    files, rl = FileAnswers(samples, set()), AnswerKey(rl_rows)

    def both(request: dict) -> str:
        text = next(part["text"] for part in request["messages"][-1]["content"] if part["type"] == "text")
        return files(request) if text in files.by_prompt else rl(request)

    monkeypatch.chdir(tmp_path)  # the default run folders land under ./rrd-eval
    with FakeOpenAI(both) as server:
        summary = rrd_eval(folder, server, code=1)
        rl_summary = rrd_eval(tmp_path / "export", server)
    assert summary["samples"] == len(samples) and summary["accuracy"] == 1.0
    assert rl_summary["samples"] == len(rl_rows)
    assert Path(summary["out"]) != Path(rl_summary["out"]), "the two formats of one export are two runs"
    # the same model on the two formats of one export, matched by sample id (the records keep the rows' ids)
    compared = CliRunner().invoke(app, ["eval", "compare", summary["out"], rl_summary["out"], "--json"])
    assert compared.exit_code == 0, compared.output
    matched = json.loads(compared.stdout)["matched"]
    assert (matched["samples"], matched["only_a"], matched["only_b"]) == (len(samples), 0, len(rl_rows) - len(samples))
    meta = json.loads((Path(summary["out"]) / "run.json").read_text())
    assert meta["requests"]["samples_read"] == len(samples) + 1
    assert meta["skipped"] == [
        {
            "sample_id": records[0]["id"],
            "reason": f"{folder / 'complex_reason.json'} record 1 (id {records[0]['id']}): "
            f"{folder / 'complex_reason.csv'}: no row for image key 'nowhere.jpg'",
        }
    ]
