"""OphthaReason's five test files as `rrd eval` samples, and its `ophthareason` scorer.

Followed: lxirich/OphthaReason eval/eval.py (commit 58f0eaa). For each file name it loads `{DS_ROOT}/{name}.json`
and `pd.read_csv("{BASE64_ROOT}/{name}.csv", index_col=0).to_dict()["base64"]`, and sends each record as a
system message `SYSTEM_PROMPT` and a user message whose content is first the text
`QUESTION_DICT[kind].format(Question=conversations[0].value)` (kind: SINGLE, MULTI or COMPLEX by file), then one
`data:image/jpeg;base64,...` URL per key of `image` (a key or a list of keys), to a vLLM started with
`limit_mm_per_prompt={"image": 6}`, with `SamplingParams(temperature=0., max_tokens=8192, seed=3702)`.
`ophthareason_samples` yields exactly that: `system`, `prompt`, the images in order after the text
(`images_first=False`), with `answer` = conversations[1].value. The files are streamed (ijson) and the CSV is
indexed by offset (`base64_csv`), so memory holds one record and the CSV's keys, not the images.

Numbers that can be compared with OphthaReason's own pipeline. Its eval.py scores nothing: it pickles, per
file, `[response, question, answer, image]` for every record in file order (`{OUTPUT_DIR}/{model}_{name}.pkl`),
and the scoring behind the paper's tables is not in the repository. So what compares is:
- the requests: for the same files, `rrd eval FOLDER --max-tokens 8192 --seed 3702` (temperature 0 is its
  default for one attempt) sends the same system text, user text and image bytes (the export writes only JPEGs,
  so the data URLs are identical too; the system text goes as a string, which OpenAI-compatible servers read as
  the one text part eval.py sends), so a vLLM server of the same model answers as eval.py's offline `LLM.chat`
  does, up to vLLM's batch nondeterminism;
- the scores: eval.py's stored replies, scored by `score_eval_outputs` (the same `score_ophthareason`, the same
  ground truth: the record's own answer, without the release's aliases, which the files do not carry), give per
  file the accuracy `rrd eval` gives for that file's samples. A file is one (question_type, modality) pair of
  `responses.parquet` (`FILE_GROUPS`): by task, `complex` is complex_reason; by question type, multiple_choice
  is multi_choice_test_data_CFP; by modality, FFA and OCT are their single-choice files, `mixed` is
  complex_reason and CFP is single plus multi CFP.
Pickles are not read here: unpickling runs whatever code the file names, so an output file is read only as
JSON, which its owner writes from a pickle they trust (`score_eval_outputs`). The records keep the ids of the
export's `rl` rows, so `rrd eval compare` matches a run on these files with a run on the export's `rl` config
(the same questions in the two prompts).

The scorer. Format (the `<think></think><answer></answer>` layout, pre-filled `<think>` allowed, text outside
the blocks voiding the answer) and the reading of the answer are the reward's (`rewards.verdict`, one reply
parser). Accuracy is the reward's, and on top the letters must be in the form the prompts demand: SINGLE "must
be uppercase letters (e.g., B)" and says one answer is right, so exactly one uppercase letter; MULTI "must be
uppercase letters separated by commas without spaces (e.g., B,E,F)", so uppercase letters joined by bare commas.
Lower case ('b'), spaces ('B, E'), decorations ('**B**', 'B.', '\\boxed{B}', 'Option B') earn nothing here
although the reward accepts them: the prompt states the form, and following it is what is measured. Order is
free (set equality, 'E,B' is right for B,E): the prompt asks which options are correct and gives 'B,E,F' as an
example, not an ordering rule. COMPLEX asks for "just the name": the project's name matching (`answers.
judge_name`: case, spelling, ontology names, abbreviations, hedges refused) decides, as in the reward. So every
reply this scorer accepts the reward accepts, and for a reply in the asked form `score_ophthareason` equals
`scorers.score_reward` (same format, accuracy and `score`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

import ijson
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from retinal_reason_data import rewards
from retinal_reason_data.evaluation.base64_csv import Base64Csv, CsvProblem, ImageLookupError
from retinal_reason_data.evaluation.samples import Sample, SampleImage
from retinal_reason_data.release.ophthareason import CONFIG, FILES, MAX_IMAGES, NAME, SPLIT
from retinal_reason_data.release.reader import shard_paths
from retinal_reason_data.release.shards import file_sha256
from retinal_reason_data.schema import QuestionType
from retinal_reason_data.text import stable_hash

if TYPE_CHECKING:
    from retinal_reason_data.evaluation.scorers import Scored

log = logging.getLogger(__name__)

EVAL_PY = "lxirich/OphthaReason eval/eval.py @ 58f0eaa163de55d85b9bb96ca0cf936a9acddf9b"
SYSTEM_PROMPT = (
    "You're a professional ophthalmologist."  # eval.py joins these without a space, and so does this
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant "
    "first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning "
    "process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think><answer> answer here </answer>"
)
QUESTION_DICT = {
    "MULTI": "{Question}. First output the thinking process in English in <think> </think> tags and then output the "
    "final answer in English in <answer> </answer> tags. The final answer must be uppercase letters separated by "
    "commas without spaces (e.g., B,E,F). Note that this is a multiple-choice question with potentially multiple "
    "correct answers. Carefully analyze all options.",
    "SINGLE": "{Question}. First output the thinking process in English in <think> </think> tags and then output the "
    "final answer in English in <answer> </answer> tags. The final answer must be uppercase letters (e.g., B). Note "
    "that this is a single-choice question with only one correct answer. Carefully analyze all options.",
    "COMPLEX": "{Question}. First output the thinking process in English in <think> </think> tags. Then output the "
    "final answer (just the name of the disease/entity) in English in <answer> </answer> tags.",
}
TEMPERATURE = 0.0  # eval.py: SamplingParams(temperature=0., max_tokens=8192, seed=seed)
MAX_TOKENS = 8192
SEED = 3702


class FileGroup(NamedTuple):
    """What a file holds: its QUESTION_DICT key and the Sample groups of its records."""

    kind: str
    task: str
    question_type: str
    modality: str


# eval.py's DS_DICT (SIGLE_DS -> SINGLE, MULTI_DS -> MULTI, complex_reason -> COMPLEX); complex cases show
# images of several modalities, and OphthaReason reports them as one column: modality 'mixed'
FILE_GROUPS = {
    "single_choice_test_data_CFP": FileGroup("SINGLE", "basic", "single_choice", "CFP"),
    "single_choice_test_data_FFA": FileGroup("SINGLE", "basic", "single_choice", "FFA"),
    "single_choice_test_data_OCT": FileGroup("SINGLE", "basic", "single_choice", "OCT"),
    "multi_choice_test_data_CFP": FileGroup("MULTI", "basic", "multiple_choice", "CFP"),
    "complex_reason": FileGroup("COMPLEX", "complex", "open", "mixed"),
}
ASKED_FORM = {"SINGLE": re.compile(r"[A-H]"), "MULTI": re.compile(r"[A-H](?:,[A-H])*")}
_ASKED_KIND = {QuestionType.SINGLE_CHOICE: "SINGLE", QuestionType.MULTIPLE_CHOICE: "MULTI"}
_FILE_ANSWER = {"SINGLE": re.compile(r"\s*[A-H]\s*"), "MULTI": re.compile(r"\s*[A-H](?:\s*,\s*[A-H])*\s*")}


class SkippedRecord(NamedTuple):
    """A record that gives no sample: its file, its number in the file (1-based; None for the whole file), its
    id when it has one, a reason code and a message naming file, record and what is wrong."""

    file: str
    record: int | None
    sample_id: str | None
    reason: str
    message: str


def is_ophthareason_folder(path: Path) -> bool:
    """Whether `path` is a folder holding at least one of OphthaReason's file pairs (`{name}.json` and
    `{name}.csv`): an export's `ophthareason-eval/`, a copy of it, or eval.py's DS_ROOT = BASE64_ROOT. An export
    folder itself is not one (`rrd eval EXPORT` evaluates its `rl` config)."""
    path = Path(path)
    return path.is_dir() and any(
        (path / f"{name}.json").is_file() and (path / f"{name}.csv").is_file() for name in FILES
    )


def files_key(folder: Path) -> str:
    """A hash of the file pairs in `folder` (names and contents): what a run on them evaluated."""
    parts = []
    for name in FILES:
        for path in (Path(folder) / f"{name}.json", Path(folder) / f"{name}.csv"):
            if path.is_file():
                parts += [path.name, file_sha256(path)]
    return stable_hash(*parts, length=32)


def file_answer(name: str, answer: str) -> str | None:
    """The answer of a record of file `name` as the scorer checks it ('A,C' sorted for MULTI), None when it is
    not what the file's prompt asks for (one letter, letters, a name)."""
    kind = FILE_GROUPS[name].kind
    if kind == "COMPLEX":
        return answer.strip() or None
    if not _FILE_ANSWER[kind].fullmatch(answer):
        return None
    return ",".join(sorted({letter.strip() for letter in answer.split(",")}))


def ground_truth_for(name: str, answer: str) -> str:
    """The ground truth (`rewards.make_ground_truth` JSON) of a record of file `name` whose answer is valid."""
    checked = file_answer(name, answer)
    if checked is None:
        raise ValueError(f"{name}: answer {answer!r} is not what {FILE_GROUPS[name].kind} asks for")
    return rewards.make_ground_truth(FILE_GROUPS[name].question_type, checked, [])


class _Turn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: str


class EvalRecord(BaseModel):
    """One record as eval.py reads it: conversations[0] is the question, conversations[1] the answer."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    image: list[str] = Field(min_length=1)
    conversations: list[_Turn] = Field(min_length=2)

    @field_validator("image", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("id", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def ophthareason_samples(
    folder: Path, skipped: list[SkippedRecord] | None = None, *, base64_root: Path | None = None
) -> Iterator[Sample]:
    """The samples of every file pair in `folder` (CSVs in `base64_root` when given), files in the export's
    order, records in file order. A record that gives no sample is appended to `skipped` (logged as a warning
    when no list is given) and the rest goes on: every record is a sample or a SkippedRecord, and a JSON file
    broken midway is one SkippedRecord after the samples before the break. Sample ids are the records' `id`
    (`{name}:{number}` for a record without one); `source` and `case_id` come from the export's `rl` test split
    when `folder` is an export's `ophthareason-eval/`."""
    folder = Path(folder)
    report = skipped.append if skipped is not None else _log_skip
    release = _release_rows(folder)
    seen: set[str] = set()
    for name in FILES:
        json_path = folder / f"{name}.json"
        if json_path.is_file():
            csv_path = (Path(base64_root) if base64_root is not None else folder) / f"{name}.csv"
            yield from _file_samples(name, json_path, csv_path, release, seen, report)


def _log_skip(skip: SkippedRecord) -> None:
    log.warning("skipped: %s", skip.message)


def _release_rows(folder: Path) -> dict[str, tuple[str, str]]:
    """id -> (case_id, source) of the export's `rl` test rows, when `folder` is that export's `ophthareason-eval`."""
    export = folder.resolve().parent
    if folder.resolve().name != NAME or not (export / "manifest.json").is_file():
        return {}
    rows: dict[str, tuple[str, str]] = {}
    for path in shard_paths(export, CONFIG, SPLIT):
        with pq.ParquetFile(path, pre_buffer=False) as shard:
            for batch in shard.iter_batches(columns=["id", "case_id", "source"]):
                for row in batch.to_pylist():
                    rows[row["id"]] = (row["case_id"], row["source"])
    return rows


def _file_samples(
    name: str,
    json_path: Path,
    csv_path: Path,
    release: dict[str, tuple[str, str]],
    seen: set[str],
    report: Callable[[SkippedRecord], None],
) -> Iterator[Sample]:
    try:
        images: Base64Csv | None = Base64Csv(csv_path)
        csv_problem = ""
    except CsvProblem as exc:
        images, csv_problem = None, str(exc)
    number = 0
    try:
        with json_path.open("rb") as handle:
            for number, record in enumerate(_json_records(handle, json_path), start=1):
                where, sample_id = f"{json_path} record {number}", _record_id(name, record, number)
                if images is None:
                    result: Sample | tuple[str, str] = ("csv_unreadable", f"{where}: {csv_problem}")
                else:
                    result = _sample(name, record, sample_id, where, images, release, seen)
                if isinstance(result, Sample):
                    yield result
                else:
                    report(SkippedRecord(str(json_path), number, sample_id, *result))
    except (ijson.JSONError, _NotAnArray) as exc:
        message = f"{json_path}: JSON broken after record {number}: {exc}"
        report(SkippedRecord(str(json_path), number + 1, None, "json_unreadable", message))
    finally:
        if images is not None:
            images.close()


def _record_id(name: str, record: Any, number: int) -> str:
    """The record's `id` (text or a whole number), else `{name}:{number}`."""
    raw = record.get("id") if isinstance(record, dict) else None
    return str(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else f"{name}:{number}"


class _NotAnArray(ValueError):
    pass


def _json_records(handle: BinaryIO, path: Path) -> Iterator[Any]:
    """The items of the JSON array in `handle`, one at a time (a byte-order mark is passed over)."""
    if handle.read(3) != b"\xef\xbb\xbf":
        handle.seek(0)
    start = handle.tell()
    while (first := handle.read(1)) and first.isspace():
        pass
    if first != b"[":
        raise _NotAnArray(f"eval.py reads a JSON array of records; {path.name} starts with {first!r}")
    handle.seek(start)
    yield from ijson.items(handle, "item", use_float=True)


def _sample(
    name: str,
    record: Any,
    sample_id: str,
    where: str,
    images: Base64Csv,
    release: dict[str, tuple[str, str]],
    seen: set[str],
) -> Sample | tuple[str, str]:
    """The record's sample, or (reason, message) for one that gives none."""

    def skip(reason: str, message: str) -> tuple[str, str]:
        return reason, f"{where} (id {sample_id}): {message}"

    if not isinstance(record, dict):
        return skip("record_invalid", f"expected an object, found {type(record).__name__}")
    try:
        parsed = EvalRecord.model_validate(record)
    except ValidationError as exc:
        return skip("record_invalid", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    if sample_id in seen:
        return skip("duplicate_id", "an earlier record has this id")
    if len(parsed.image) > MAX_IMAGES:
        return skip(f"more_than_{MAX_IMAGES}_images", f"{len(parsed.image)} images; eval.py's vLLM takes {MAX_IMAGES}")
    question, answer = parsed.conversations[0].value, parsed.conversations[1].value
    if file_answer(name, answer) is None:
        return skip("answer_invalid", f"answer {answer!r} is not what {FILE_GROUPS[name].kind} asks for")
    try:
        shown = tuple(SampleImage(images.image(key), key) for key in parsed.image)
    except ImageLookupError as exc:
        return skip(exc.reason, str(exc))
    seen.add(sample_id)
    group = FILE_GROUPS[name]
    case_id, source = release.get(sample_id, ("", ""))
    return Sample(
        sample_id=sample_id,
        case_id=case_id,
        source=source,
        task=group.task,
        question_type=group.question_type,
        modality=group.modality,
        prompt=QUESTION_DICT[group.kind].format(Question=question),
        images=shown,
        system=SYSTEM_PROMPT,
        images_first=False,
        answer=answer,
        ground_truth=ground_truth_for(name, answer),
        scorer="ophthareason",
    )


def in_asked_form(question_type: QuestionType | str, answer: str | None) -> bool:
    """Whether an answer read from a reply has the form OphthaReason's prompt for its type asks for: one
    uppercase letter (single choice), uppercase letters joined by commas without spaces (multiple choice);
    any text for a name (open) or a truth value, which its prompts do not ask in a set form."""
    if answer is None:
        return False
    kind = _ASKED_KIND.get(QuestionType(question_type))
    return kind is None or ASKED_FORM[kind].fullmatch(answer) is not None


def score_ophthareason(reply: str, ground_truth: str) -> Scored:
    """Score a reply the way OphthaReason's prompts ask (module docstring): the reward's format and reading, the
    reward's accuracy only for an answer in the asked form; `score` weighs them as `rewards.compute_score`."""
    # imported here: scorers.py registers this function, so importing it at load time would be a cycle
    from retinal_reason_data.evaluation.scorers import score_reward

    reward = score_reward(reply, ground_truth)
    question_type = rewards.parse_ground_truth(ground_truth).question_type
    if not reward.accuracy or in_asked_form(question_type, reward.extracted):
        return reward
    return reward._replace(accuracy=0.0, score=rewards.FORMAT_WEIGHT * reward.format)


class OutputsScore(BaseModel):
    """eval.py's stored replies for one file, scored: one `scored` per entry that could be read, in order."""

    file: str = Field(description="The eval file the replies answer (e.g. single_choice_test_data_CFP).")
    entries: int = Field(description="Entries read, scored or not.")
    scored: list[tuple[float, float, float, str | None]] = Field(
        description="(format, accuracy, score, extracted) per scored entry, in the file's order."
    )
    accuracy: float
    format_rate: float
    problems: list[str] = Field(description="Entries that could not be scored: index and what is wrong.")


def outputs_file_name(path: Path) -> str:
    """The eval file an output file answers, from eval.py's `{model}_{name}.pkl` naming kept in its JSON copy."""
    stem = Path(path).name
    while stem.endswith((".json", ".pkl")):
        stem = stem.rsplit(".", 1)[0]
    for name in FILES:
        if stem == name or stem.endswith(f"_{name}"):
            return name
    raise ValueError(f"{path}: the file name ends in none of {', '.join(FILES)}; name the file it answers")


def score_eval_outputs(path: Path, name: str | None = None) -> OutputsScore:
    """Score the replies eval.py stored for file `name` (by default read from the path's name), from a JSON copy
    of its pickle: the array of `[response, question, answer, image]` entries. Write the copy, from a pickle you
    made yourself, with `python -c "import json, pickle, sys; json.dump(pickle.load(open(sys.argv[1], 'rb')),
    sys.stdout)" MODEL_NAME.pkl > MODEL_NAME.json`; a pickle runs code when loaded, so this function never loads
    one. Each entry is scored by `score_ophthareason` against the ground truth its own answer gives."""
    name = name or outputs_file_name(path)
    if name not in FILE_GROUPS:
        raise ValueError(f"{name!r} is not one of OphthaReason's files ({', '.join(FILES)})")
    scored, problems, count = [], [], 0
    with Path(path).open("rb") as handle:
        try:
            for count, entry in enumerate(_json_records(handle, Path(path)), start=1):
                result = _score_entry(name, entry)
                if isinstance(result, str):
                    problems.append(f"{path} entry {count}: {result}")
                else:
                    scored.append(tuple(result))
        except (ijson.JSONError, _NotAnArray) as exc:
            problems.append(f"{path}: JSON broken after entry {count}: {exc}")
    total = len(scored) or 1
    return OutputsScore(
        file=name,
        entries=count,
        scored=scored,
        accuracy=sum(one[1] for one in scored) / total,
        format_rate=sum(one[0] for one in scored) / total,
        problems=problems,
    )


def _score_entry(name: str, entry: Any) -> Scored | str:
    """One entry scored, or what is wrong with it."""
    if not isinstance(entry, list) or len(entry) < 3:
        return "expected a list [response, question, answer, image]"
    response, answer = entry[0], entry[2]
    if not isinstance(response, str) or not isinstance(answer, str):
        return "response and answer must be text"
    if file_answer(name, answer) is None:
        return f"answer {answer!r} is not what {FILE_GROUPS[name].kind} asks for"
    return score_ophthareason(response, ground_truth_for(name, answer))
