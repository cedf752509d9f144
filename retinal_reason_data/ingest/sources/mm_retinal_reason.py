"""Importer for the MM-Retinal-Reason release: basic_reasoning.json and complex_reasoning.json.

Each record carries its images as base64, a human question, the released answer and reasoning. Images are
decoded into the adapter's own work folder (content-addressed, written once), never into the collection.
The question, answer and reasoning are kept in the case context (`question`, `answer`, `reference_trace`).
Findings are taken from the answer only where it is exactly an ontology name (directly, or the text of the
option letter it gives); a complex record's answer is also its free-text diagnosis.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.image_folder import modality_value
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ontology import Ontology, default_ontology
from retinal_reason_data.schema import ClinicalContext, Modality, Quarantine
from retinal_reason_data.text import stable_hash

FILES = {"basic": "basic_reasoning.json", "complex": "complex_reasoning.json"}
_MAGIC = [
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"GIF8", ".gif"),
]
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_OPTION = re.compile(r"^\s*\(?([A-H])[.):]\s+(.+?)\s*$", re.MULTILINE)
_LETTERS = re.compile(r"^[A-H](?:\s*[,;]\s*[A-H])*$")
_MODALITY_WORDS = [
    (Modality.OCT, re.compile(r"\bOCT\b|optical coherence", re.IGNORECASE)),
    (Modality.FFA, re.compile(r"angiogra|\bFFA\b|fluorescein", re.IGNORECASE)),
    (Modality.CFP, re.compile(r"fundus|\bCFP\b", re.IGNORECASE)),
]


class ReasonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: Modality | None = Field(
        default=None, description="Modality of every image; by default read from the question when it names one."
    )

    @field_validator("modality", mode="before")
    @classmethod
    def _modality_alias(cls, value: object) -> object:
        return modality_value(value)


class Turn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    speaker: str = Field(alias="from")
    value: str


class ReleaseRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image: list[str] = Field(min_length=1)
    conversations: list[Turn] = Field(min_length=2)
    reason: str | None = None
    pmcid: str | None = None
    title: str | None = None
    caption: str | None = None

    @field_validator("image", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per record of each release file present; images go to `options.work_dir`/images."""
    settings = parse_options(ReasonOptions, options.values, source, "mm_retinal_reason")
    files = [(kind, root / name) for kind, name in FILES.items() if (root / name).is_file()]
    if not files:
        yield quarantine(source, root, None, "labels_missing", f"{root}: neither {' nor '.join(FILES.values())} found")
        return
    ontology = default_ontology()
    images_dir = options.work_dir / "images"
    for kind, path in files:
        number = 0
        try:
            with path.open("rb") as handle:
                for number, record in enumerate(_records(handle), start=1):
                    yield _case(record, kind, path, number, images_dir, settings, ontology, source)
        except ijson.JSONError as exc:
            yield quarantine(
                source, path, number + 1, "labels_unreadable", f"{path}: JSON broken after record {number}: {exc}"
            )


def _records(handle: BinaryIO) -> Iterator[Any]:
    """The records of a JSON array, or of JSON Lines / concatenated objects, streamed one at a time."""
    start = handle.read(3)
    if start != b"\xef\xbb\xbf":  # a byte-order mark ijson would not accept
        handle.seek(0)
    offset = handle.tell()
    while (first := handle.read(1)) and first.isspace():
        pass
    handle.seek(offset)
    if first == b"[":
        yield from ijson.items(handle, "item", use_float=True)
    else:
        yield from ijson.items(handle, "", multiple_values=True, use_float=True)


def _case(
    record: Any,
    kind: str,
    path: Path,
    number: int,
    images_dir: Path,
    settings: ReasonOptions,
    ontology: Ontology,
    source: str,
) -> RawCase | Quarantine:
    where = f"{path} record {number}"
    if not isinstance(record, dict):
        return quarantine(source, path, number, "record_invalid", f"{where}: expected an object")
    try:
        parsed = ReleaseRecord.model_validate(record)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return quarantine(source, path, number, "record_invalid", f"{where}: {problem}")
    question = next((t.value for t in parsed.conversations if t.speaker.lower() in ("human", "user")), None)
    answer = next((t.value for t in reversed(parsed.conversations) if t.speaker.lower() in ("gpt", "assistant")), None)
    if question is None or answer is None:
        return quarantine(source, path, number, "record_invalid", f"{where}: no human question or no gpt answer")
    question = question.replace("<image>", "").strip()
    blobs: list[bytes] = []
    for position, text in enumerate(parsed.image, start=1):
        try:
            blobs.append(_decode(text))
        except ValueError as exc:
            return quarantine(source, path, number, "image_undecodable", f"{where}: image {position}: {exc}")
    modality = settings.modality or _modality(question)
    images = [RawImage(path=_store(blob, images_dir), modality=modality, caption=parsed.caption) for blob in blobs]
    answer_text = _answer_text(answer, question)
    entry = ontology.lookup(answer_text) if answer_text else None
    return RawCase(
        local_id=f"{kind}/{stable_hash(question, answer, *(image.path.name for image in images))}",
        raw_patient_id=parsed.pmcid if kind == "complex" and parsed.pmcid else None,
        images=images,
        labels=[answer_text] if entry is not None or (kind == "complex" and answer_text) else [],
        context=ClinicalContext(
            diagnosis=answer_text if kind == "complex" and answer_text else None,
            title=parsed.title,
            pmcid=parsed.pmcid,
            question=question,
            answer=answer,
            reference_trace=parsed.reason,
        ),
        file=str(path),
        row=number,
    )


def _decode(text: str) -> bytes:
    """The bytes of a base64 image (a data-URL prefix and line breaks are allowed)."""
    text = text.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"base64 does not decode: {exc}") from None
    if not data:
        raise ValueError("base64 decodes to nothing")
    return data


def _store(data: bytes, folder: Path) -> Path:
    """Write `data` once under its content hash (reruns keep the file, so its fingerprint stays cached)."""
    suffix = next((ext for magic, ext in _MAGIC if data.startswith(magic)), ".bin")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        suffix = ".webp"
    digest = hashlib.sha256(data).hexdigest()
    path = folder / digest[:2] / f"{digest[:32]}{suffix}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(path)
    return path


def _answer_text(answer: str, question: str) -> str:
    """The answer without tags; a single option letter becomes the text of that option."""
    tagged = _ANSWER.search(answer)
    text = (tagged.group(1) if tagged else _strip_think(answer)).strip().rstrip(".")
    if _LETTERS.match(text):
        options = {letter: option for letter, option in _OPTION.findall(question)}
        letters = re.findall(r"[A-H]", text)
        return options.get(letters[0], "") if len(letters) == 1 else ""
    return text


def _strip_think(answer: str) -> str:
    return re.sub(r"<think>.*?</think>", "", answer, flags=re.IGNORECASE | re.DOTALL)


def _modality(question: str) -> Modality:
    named = [modality for modality, pattern in _MODALITY_WORDS if pattern.search(question)]
    return named[0] if len(named) == 1 else Modality.OTHER


ADAPTER = Adapter(
    name="mm_retinal_reason",
    title="MM-Retinal-Reason release (import: questions, answers and reasoning with base64 images)",
    layout="basic_reasoning.json, complex_reasoning.json: arrays (or JSON Lines) of {image: [base64], "
    "conversations: [{from: human|gpt, value}], reason}; complex adds pmcid, title, caption. Images are decoded "
    "into the source's work folder. options: modality (CFP|OCT|FFA|other; default: from the question's words)",
    licence="MM-Retinal-Reason release terms (research use); images keep their original collections' licences",
    read=read,
)
