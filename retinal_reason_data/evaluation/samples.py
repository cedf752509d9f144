"""What an evaluation asks and what it keeps: one sample of a release, one scored response.

Every reader of a release (the `rl` config of an export folder or a Hub repository, OphthaReason's five
files) yields `Sample`s; the run sends each one `attempts` times and keeps one `ScoredResponse` per attempt
(the rows of `responses.parquet`); the summary, the report and `rrd eval compare` read only those rows.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class SampleImage(NamedTuple):
    """One image as the release stores it: its bytes and its name in the release."""

    data: bytes
    path: str


class Sample(BaseModel):
    """One question of a release, as the model is shown it and as its answer is checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str = Field(description="The release's id of the row; runs on two releases are matched by it.")
    case_id: str = ""
    source: str = ""
    task: str = Field(description="'basic' or 'complex'.")
    question_type: str
    modality: str
    prompt: str = Field(description="The text the model reads, as the release's own prompt writes it.")
    images: tuple[SampleImage, ...] = Field(description="The images, in order.")
    system: str = Field(default="", description="A system message, when the release's evaluation sends one.")
    images_first: bool = Field(
        default=True,
        description="Images before the text (the `rl` prompt); False: text first (OphthaReason's eval.py).",
    )
    answer: str = Field(description="The answer as people read it (letters, a name, True/False).")
    ground_truth: str = Field(description="What the scorer checks a reply against.")
    scorer: str = Field(default="reward", description="Key of `scorers.SCORERS` that scores this sample.")


class ScoredResponse(BaseModel):
    """One attempt at one sample: the reply (or why there is none) and its scores. A row of responses.parquet."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str
    attempt: int = Field(ge=1)
    case_id: str
    source: str
    task: str
    question_type: str
    modality: str
    answer: str
    response: str | None = Field(description="The model's reply; None when the call failed.")
    error: str | None = Field(default=None, description="Failure class of the call after retries, else None.")
    extracted: str | None = Field(default=None, description="The answer the scorer read from the reply.")
    format: float = Field(ge=0.0, le=1.0, description="1 when the reply follows the release's layout.")
    accuracy: float = Field(ge=0.0, le=1.0, description="1 when the answer read is right.")
    score: float = Field(description="rewards.compute_score of the reply (what a trainer's reward gives it).")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    fingerprint: str = Field(description="Hash of model, sampling parameters, messages and attempt (the cache key).")


RESPONSE_COLUMNS = tuple(ScoredResponse.model_fields)
