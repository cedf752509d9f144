"""What the page may send: the request bodies and query strings of the review API as strict pydantic models, and
the reading of a body (bounded in size and time)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from retinal_reason_data.schema import Decision, RejectReason

ANNOTATOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ANNOTATOR_RULE = "a name of letters, digits, '.', '_' or '-' (it names your verdict file)"
Model = TypeVar("Model", bound=BaseModel)
MAX_BODY = 512 * 1024  # bytes: a verdict with the longest edit the schema allows fits many times over


class BodyError(Exception):
    """A body or query the server refuses: status and message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class VerdictBody(BaseModel):
    """POST /api/verdict. The annotator and the session come from the browser's session, not from the body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    item_id: str = Field(min_length=1, max_length=256)
    generation_id: str = Field(min_length=1, max_length=256)
    decision: Decision
    reason: RejectReason | None = None
    note: str | None = Field(default=None, max_length=4000)
    edited_think: str | None = Field(default=None, max_length=40000)
    edited_answer: str | None = Field(default=None, max_length=2000)
    adjudication: bool = False


class AnnotatorBody(BaseModel):
    """POST /api/annotator: name (or rename) the annotator of this browser's session."""

    model_config = ConfigDict(extra="forbid", strict=True)

    annotator: str = Field(pattern=ANNOTATOR_PATTERN)


class QueueQuery(BaseModel):
    """GET /api/queue's query string (unknown parameters are ignored, known ones must be well formed)."""

    model_config = ConfigDict(extra="ignore")

    queue: str = "unreviewed"
    source: str = ""
    modality: str = ""
    task: str = ""
    question_type: str = ""
    sample: int | None = Field(default=None, ge=0, le=10_000_000)
    seed: int = Field(default=0, ge=-(2**62), le=2**62)
    limit: int | None = Field(default=None, ge=0, le=10_000_000)
    after: str = ""
    counts_only: bool = False

    @field_validator("sample", "limit", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("seed", mode="before")
    @classmethod
    def _blank_is_zero(cls, value: Any) -> Any:
        return 0 if value == "" else value

    @property
    def after_key(self) -> tuple[str, str] | None:
        if "|" not in self.after:
            return None
        item_id, generation_id = self.after.split("|", 1)
        return (item_id, generation_id)


def describe(error: ValidationError) -> str:
    """A validation error in one line: `field: what is wrong` for each problem."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "string_pattern_mismatch" and where == "annotator":
            message = ANNOTATOR_RULE
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_body(model: type[Model], body: bytes) -> Model:
    """The body as `model`: 400 when it is not JSON (or nests too deep), 422 when it is JSON of the wrong shape."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(problem["type"] == "json_invalid" for problem in exc.errors()):
            raise BodyError(HTTPStatus.BAD_REQUEST, f"not valid JSON: {describe(exc)}") from None
        raise BodyError(HTTPStatus.UNPROCESSABLE_ENTITY, describe(exc)) from None


def parse_query(model: type[Model], params: dict[str, str]) -> Model:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise BodyError(HTTPStatus.BAD_REQUEST, describe(exc)) from None


async def read_body(receive: Any, limit: int = MAX_BODY, timeout: float = 10.0) -> bytes:
    """The request body from an ASGI `receive`, refused (413) as soon as it passes `limit` bytes and (408) when it
    has not all arrived within `timeout` seconds."""
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BodyError(HTTPStatus.BAD_REQUEST, "the client went away before sending the whole body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a request body is at most {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise BodyError(HTTPStatus.REQUEST_TIMEOUT, f"the request body did not arrive within {timeout:g} s") from None
