"""`rrd eval`: one model on one release split, from the settings to the written run folder.

Read the release, send every attempt not yet in the run folder's journal through the request engine, score every
reply with its sample's scorer, summarise (`metrics.summarise`), write responses.parquet, run.json and the report.

Decisions: temperature 0 for one attempt; with several attempts the default is SEVERAL_ATTEMPTS_TEMPERATURE, and
several attempts at an explicit temperature 0 are refused (they would be K copies of one greedy reply). The API
key is read from the variable --api-key-env names (default OPENAI_API_KEY when it is set, else no key, for local
servers) by the HTTP client only; it is never written anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.evaluation.samples import ScoredResponse

SEVERAL_ATTEMPTS_TEMPERATURE = 0.7
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class EvalSettingsError(ValueError):
    """Settings that cannot run (a key variable that is not set, attempts at temperature 0, ...)."""


class EvalStopped(RuntimeError):
    """The run stopped before every attempt had an answer (Ctrl-C, every endpoint failing); the journal keeps
    every reply that landed and the same command resumes."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class EvalSettings(BaseModel):
    """What `rrd eval` was asked (the CLI's options)."""

    model_config = ConfigDict(extra="forbid")

    release: str = Field(description="An export folder, or a Hub dataset repository (owner/name[@revision]).")
    base_url: str
    model: str
    api_key_env: str | None = Field(default=None, description="None: OPENAI_API_KEY when set, else no key.")
    config: str = "rl"
    split: str = "test"
    revision: str | None = None
    out: Path | None = None
    concurrency: int = Field(default=16, ge=1)
    attempts: int = Field(default=1, ge=1, le=16)
    temperature: float | None = Field(default=None, ge=0.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int = Field(default=4096, ge=16)
    seed: int | None = None
    timeout_s: float = Field(default=300.0, gt=0.0)
    image_max_side: int | None = Field(default=None, ge=64)

    def key_env(self) -> str | None:
        if self.api_key_env is not None:
            return self.api_key_env or None  # '' sends no key
        return DEFAULT_KEY_ENV if os.environ.get(DEFAULT_KEY_ENV) else None

    def sampling_temperature(self) -> float:
        if self.temperature is None:
            return SEVERAL_ATTEMPTS_TEMPERATURE if self.attempts > 1 else 0.0
        if self.temperature == 0 and self.attempts > 1:
            raise EvalSettingsError(
                f"--attempts {self.attempts} at --temperature 0 would be {self.attempts} copies of one greedy reply: "
                f"give a temperature above 0 (default with several attempts: {SEVERAL_ATTEMPTS_TEMPERATURE}) "
                "or --attempts 1"
            )
        return self.temperature

    def params(self) -> dict[str, Any]:
        """The sampling parameters as run.json records them (the seed of attempt n is seed + n - 1)."""
        return {
            "temperature": self.sampling_temperature(),
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "image_max_side": self.image_max_side,
            "timeout_s": self.timeout_s,
        }

    def named_params(self) -> dict[str, object]:
        """The parameters that change what is sent, when not the defaults, by their letter in the folder name."""
        given = {"m": self.max_tokens if self.max_tokens != 4096 else None, "p": self.top_p, "s": self.seed}
        given["px"] = self.image_max_side
        return {letter: value for letter, value in given.items() if value is not None}


@dataclass
class EvalOutcome:
    folder: Path
    meta: dict[str, Any]
    rows: list[ScoredResponse]
    failed: list[str] = field(default_factory=list)  # '<id> attempt <n>: <class> (<detail>)'
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return self.meta["summary"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.skipped else 0


def teacher_spec(settings: EvalSettings) -> Any:
    """The engine's settings for this run (a model teacher at --base-url: limits, retries, timeouts)."""
    from pydantic import ValidationError

    from retinal_reason_data.recipe import TeacherSpec

    try:
        return TeacherSpec(
            kind="openai",
            base_url=settings.base_url,
            model=settings.model,
            api_key_env=settings.key_env(),
            concurrency=settings.concurrency,
            temperature=settings.sampling_temperature(),
            top_p=settings.top_p,
            max_tokens=settings.max_tokens,
            seed=settings.seed,
            timeout_s=settings.timeout_s,
            attempts=settings.attempts,
        )
    except ValidationError as exc:
        raise EvalSettingsError(str(exc)) from None


def evaluate(settings: EvalSettings, echo: Callable[[str], None]) -> EvalOutcome:
    """Run (or resume) the evaluation; `echo` gets progress notes (the run folder, what is cached)."""
    from retinal_reason_data.evaluation.journal import Journal
    from retinal_reason_data.evaluation.release_samples import open_release
    from retinal_reason_data.evaluation.run_folder import default_out
    from retinal_reason_data.teacher.transports import MissingKey, read_key

    spec = teacher_spec(settings)
    try:
        for endpoint in spec.endpoint_specs():
            read_key(endpoint)
    except MissingKey as exc:
        raise EvalSettingsError(str(exc).replace("the recipe's api_key_env", "--api-key-env")) from None
    release = open_release(settings.release, settings.config, settings.split, settings.revision)
    folder = settings.out or default_out(
        settings.model,
        release.key(),
        release.config,
        release.split,
        settings.attempts,
        settings.sampling_temperature(),
        settings.named_params(),
    )
    _refuse_another_run(folder, identity(settings, release))
    folder.mkdir(parents=True, exist_ok=True)
    echo(f"run folder: {folder}")
    journal = Journal(folder)
    started = datetime.now(UTC)
    plan, report = _send(release, spec, journal, settings)
    echo(f"{plan.cached} attempts answered before, {report.replies} asked now ({report.calls} HTTP calls)")
    return _write(folder, settings, release, journal, plan, report, started)


def identity(settings: EvalSettings, release: Any) -> dict[str, Any]:
    """What makes two runs one run: the model, the content evaluated and what is sent (not the timeout)."""
    params = {key: value for key, value in settings.params().items() if key != "timeout_s"}
    return {
        "model": settings.model,
        "release_key": release.key(),
        "config": release.config,
        "split": release.split,
        "params": params,
    }


def _refuse_another_run(folder: Path, wanted: dict[str, Any]) -> None:
    """A run folder holds one run: refuse to mix another model, release or sampling into it (its journal would
    keep both, and its run.json and responses would silently become the other run's)."""
    import json

    path = folder / "run.json"
    if not path.is_file():
        return
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # a damaged run.json is rewritten; the journal is keyed by fingerprint
    stored = {**held, "params": {k: v for k, v in (held.get("params") or {}).items() if k != "timeout_s"}}
    differs = [key for key, value in wanted.items() if key in stored and stored[key] != value]
    if differs:
        said = "; ".join(f"{key}: {stored[key]!r} there, {wanted[key]!r} asked" for key in differs)
        raise EvalSettingsError(f"{folder} holds another run ({said}): give another --out, or remove that folder")


def _send(release: Any, spec: Any, journal: Any, settings: EvalSettings) -> tuple[Any, Any]:
    from retinal_reason_data.evaluation.runner import Plan, send
    from retinal_reason_data.teacher.engine import EndpointsExhausted
    from retinal_reason_data.teacher.progress import Progress

    plan = Plan()
    progress = Progress(0, f"eval {settings.model}", label="eval", failed_word="failed")
    try:
        report = send(release, spec, journal, plan, settings.image_max_side, progress)
    except EndpointsExhausted as exc:
        raise EvalStopped(
            f"{exc}\nevery reply that landed is in {journal.path}; rerun the same command to resume", 1
        ) from None
    finally:
        progress.close()
        journal.close()
    if report.stopped:
        raise EvalStopped(
            f"interrupted; {report.replies} replies of this run are kept in {journal.path}: "
            "rerun the same command to resume (it sends only what is missing)",
            130,
        )
    return plan, report


def _write(
    folder: Path,
    settings: EvalSettings,
    release: Any,
    journal: Any,
    plan: Any,
    report: Any,
    started: datetime,
) -> EvalOutcome:
    from retinal_reason_data.evaluation.metrics import summarise
    from retinal_reason_data.evaluation.report import write_report
    from retinal_reason_data.evaluation.run_folder import (
        failed_calls,
        public_url,
        scored_rows,
        write_responses,
        write_run_json,
    )

    rows = scored_rows(plan.samples, journal)
    skipped = release.skipped + plan.skipped
    summary = {"model": settings.model, **summarise(rows)}
    meta = {
        "model": settings.model,
        "base_url": public_url(settings.base_url),
        "release": release.ref.model_dump(exclude_none=True),
        "release_key": release.key(),
        "config": release.config,
        "split": release.split,
        "attempts": settings.attempts,
        "params": settings.params(),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "requests": {
            "samples_read": len(plan.samples) + len(plan.skipped) + len(release.skipped),
            "cached": plan.cached,
            "answered_now": report.replies,
            "calls": report.calls,
            "failed_calls": dict(sorted(report.failed_calls.items())),
        },
        "skipped": [{"sample_id": sample_id, "reason": reason} for sample_id, reason in skipped],
        "summary": summary,
    }
    write_responses(folder, rows)
    write_run_json(folder, meta)
    write_report(folder, meta, summary, rows)
    return EvalOutcome(folder, meta, rows, failed_calls(rows, journal), skipped)
