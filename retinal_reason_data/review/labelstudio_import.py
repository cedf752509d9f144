"""Label Studio's export read back into verdict files, in either of its forms:

- JSON: a list of tasks, each with its `data` and `annotations` (label_studio/data_export/serializers.py of
  Label Studio 1.23.2: `completed_by` is the user id, or `{id, email, first_name, last_name}` when the export
  expands it, as `label-studio export PROJECT JSON` does; results are `{from_name, type, value: {choices | text}}`).
- JSON_MIN: one flat object per annotation, the task's data and each control's result under its name (a single
  choice or text as a string, otherwise `{"choices": [...]}` / `{"text": [...]}`), `annotator` (the e-mail, or the
  user id), `annotation_id`, `created_at`, `updated_at`; skipped annotations are left out and a task without
  annotations is one object with `annotator` null (HumanSignal/label-studio-sdk, commit 97fcff19,
  src/label_studio_sdk/converter/converter.py `convert_to_json_min`, utils.py `prettify_result`, `get_annotator`).

Each annotator is keyed by the whole e-mail address (`alice@hospital-a.org` and `alice@hospital-b.org` are two
people) or, when the export names users by id only, by `<server>-<id>`. Every edit is checked as the review page
checks it: only what the annotator changed is kept, and the edited trace must still verify against the item's
answer with its tags intact; an edit that does not is not imported, and the report says which and why.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import ijson
from pydantic import ValidationError

from retinal_reason_data.catalog.review import named_traces_read_only
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.labelstudio import CONTROLS
from retinal_reason_data.review.verdicts import (
    AnnotationError,
    append_verdict,
    edit_problem,
    read_verdicts,
    verdict_folder,
)
from retinal_reason_data.schema import Decision, Generation, Item, RejectReason, Verdict
from retinal_reason_data.teacher.verify import split_response

ANNOTATOR_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # Verdict.annotator: also a file name
SERVER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,39}$")
DEFAULT_SERVER = "labelstudio"
KEPT = re.compile(r"[A-Za-z0-9.-]")


# --- who ----------------------------------------------------------------------------------------------------
def annotator_for_email(email: str) -> str:
    """A verdict-file name for an e-mail address, different for every address: the local part with characters
    other than letters, digits, '.' and '-' written as `_xx` (hex of their UTF-8 bytes), `_at_`, then the domain
    in lower case. `alice@hospital-a.org` -> `alice_at_hospital-a.org`. An address too long for a file name (or
    one that would not start with a letter or digit) becomes `ls-<local part>-<12 hex of its sha256>`."""
    local, _, domain = email.strip().rpartition("@")
    if not local or not domain:
        raise ValueError(f"{email!r} is not an e-mail address")

    def escaped(text: str) -> str:
        return "".join(c if KEPT.fullmatch(c) else "".join(f"_{b:02x}" for b in c.encode()) for c in text)

    name = f"{escaped(local)}_at_{escaped(domain.lower())}"
    if ANNOTATOR_PATTERN.fullmatch(name):
        return name
    digest = hashlib.sha256(f"{local}@{domain.lower()}".encode()).hexdigest()[:12]
    slug = re.sub(r"[^a-z0-9]+", "-", local.lower()).strip("-")[:40] or "user"
    return f"ls-{slug}-{digest}"


def annotator_for(user: Any, server: str) -> str | None:
    """The verdict-file name for Label Studio's `completed_by` (JSON) or `annotator` (JSON_MIN): a user with an
    e-mail, an e-mail, or a user id (`<server>-<id>`); None when the export does not say."""
    if isinstance(user, dict):
        user = user.get("email") or user.get("id")
    if isinstance(user, bool):
        return None
    if isinstance(user, int) or (isinstance(user, str) and user.isdigit()):
        return f"{server}-{int(user)}"
    if isinstance(user, str) and "@" in user:
        return annotator_for_email(user)
    return None


def _who(user: Any) -> str:
    """Who Label Studio says annotated, in words."""
    if isinstance(user, dict):
        return str(user.get("email") or f"user {user.get('id')}")
    return f"user {user}" if isinstance(user, int) else str(user)


# --- one annotation, from either form ------------------------------------------------------------------------
@dataclass
class Annotation:
    """One Label Studio annotation, whichever form it came in."""

    where: str  # file, task and annotation, for messages
    item_id: str
    generation_id: str
    user: Any  # completed_by / annotator as exported
    fields: dict[str, str]  # control name -> chosen value or text
    time: datetime | None
    cancelled: bool = False


def _text_of(value: Any) -> str | None:
    """A control's value in either form: a string, `{"choices": [...]}` / `{"text": [...]}`, or a list of these."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("choices", "text"):
            if key in value:
                return _text_of(value[key])
        return None
    if isinstance(value, list):
        parts = [text for part in value if (text := _text_of(part)) is not None]
        return "\n".join(parts) if parts else None
    return str(value)


def _time(record: dict[str, Any]) -> datetime | None:
    stamp = record.get("updated_at") or record.get("created_at")
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else None


def _key(where: str, data: dict[str, Any]) -> tuple[str, str]:
    item_id, generation_id = data.get("item_id"), data.get("generation_id")
    if not isinstance(item_id, str) or not isinstance(generation_id, str):
        raise AnnotationError(f"{where}: no item_id and generation_id in its data (was it exported by rrd?)")
    return item_id, generation_id


def _records(path: Path) -> Iterator[Any]:
    """The objects of a JSON list, one at a time (an export can be larger than memory would like)."""
    try:
        with path.open("rb") as handle:
            start = handle.read(4096).lstrip()
            if not start.startswith(b"["):
                raise AnnotationError(f"{path}: cannot read a Label Studio export: expected JSON or JSON_MIN, a list")
            handle.seek(0)
            yield from ijson.items(handle, "item", use_float=True)
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read a Label Studio export ({exc})") from None
    except ijson.JSONError as exc:
        raise AnnotationError(f"{path}: cannot read a Label Studio export (not JSON: {exc})") from None


def read_export(path: Path) -> list[Annotation]:
    """Every annotation of a Label Studio export (JSON or JSON_MIN), in file order."""
    annotations: list[Annotation] = []
    for number, record in enumerate(_records(path), start=1):
        if not isinstance(record, dict):
            raise AnnotationError(f"{path} object {number}: expected an object, got {type(record).__name__}")
        if isinstance(record.get("data"), dict):  # JSON: a task and its annotations
            where = f"{path} task {number} (id {record.get('id')})"
            key = _key(where, record["data"])
            for annotation in record.get("annotations") or []:
                fields: dict[str, str] = {}
                for result in annotation.get("result") or []:
                    name = result.get("from_name")
                    text = _text_of(result.get("value"))
                    if name in CONTROLS and text is not None:
                        fields[name] = fields[name] + "\n" + text if name in fields else text
                annotations.append(
                    Annotation(
                        f"{where} annotation {annotation.get('id')}",
                        *key,
                        annotation.get("completed_by"),
                        fields,
                        _time(annotation),
                        bool(annotation.get("was_cancelled")),
                    )
                )
        elif "annotator" in record and "annotation_id" in record:  # JSON_MIN: one annotation
            where = f"{path} record {number} (task {record.get('id')}, annotation {record.get('annotation_id')})"
            key = _key(where, record)
            if record["annotation_id"] is None:
                continue  # a task nobody annotated
            fields = {name: text for name in CONTROLS if (text := _text_of(record.get(name))) is not None}
            annotations.append(Annotation(where, *key, record.get("annotator"), fields, _time(record)))
        else:
            raise AnnotationError(
                f"{path} object {number}: neither a task (JSON export: 'data', 'annotations') nor an annotation "
                "(JSON_MIN export: 'annotator', 'annotation_id')"
            )
    return annotations


# --- the import ---------------------------------------------------------------------------------------------
@dataclass
class Unused:
    """An annotation that could not become a verdict."""

    where: str
    item_id: str
    generation_id: str
    annotator: str
    why: str

    def line(self) -> str:
        return f"{self.where}: item {self.item_id}, trace {self.generation_id[:12]}, by {self.annotator}: {self.why}"


@dataclass
class ImportReport:
    """What an import did with each annotation: read = added + already + cancelled + no_decision + unused."""

    read: int = 0
    added: int = 0
    already: int = 0  # imported before (importing the same export twice adds nothing)
    cancelled: int = 0  # skipped in Label Studio
    no_decision: list[str] = field(default_factory=list)
    unused: list[Unused] = field(default_factory=list)  # edits that do not check, unknown traces, no annotator
    notes: list[str] = field(default_factory=list)  # imported, with something worth saying
    annotators: dict[str, str] = field(default_factory=dict)  # verdict-file name -> who Label Studio said


@dataclass
class _Trace:
    item: Item
    generation: Generation | None  # None: the item is known, this trace is not (another build's)


def import_labelstudio(
    recipe: Recipe, export_path: Path, annotator: str | None = None, server: str = DEFAULT_SERVER
) -> ImportReport:
    """Append the verdicts of a Label Studio export (JSON or JSON_MIN) to the annotators' files. Every annotation
    is checked before anything is written: those that cannot be used are in the report, the others are written;
    importing the same export twice adds nothing."""
    if annotator is not None and not ANNOTATOR_PATTERN.fullmatch(annotator):
        raise AnnotationError(f"--annotator {annotator!r}: letters, digits, '.', '_' and '-' only (a file name)")
    if not SERVER_PATTERN.fullmatch(server):
        raise AnnotationError(f"--server {server!r}: letters, digits, '.' and '-' only")
    annotations = read_export(export_path)
    traces = _traces(recipe, {(a.item_id, a.generation_id) for a in annotations})
    folder = verdict_folder(recipe)
    existing = [v for review in read_verdicts(folder).reviews().values() for v in review.verdicts]
    seen = {_identity(v): v.annotator for v in existing}
    report, verdicts = ImportReport(read=len(annotations)), []
    for annotation in annotations:
        if annotation.cancelled:
            report.cancelled += 1
            continue
        name = annotator or annotator_for(annotation.user, server)

        def unused(why: str, who: str | None = name, a: Annotation = annotation) -> None:
            report.unused.append(Unused(a.where, a.item_id, a.generation_id, who or "(unknown)", why))

        if "decision" not in annotation.fields:
            report.no_decision.append(annotation.where)
            continue
        if name is None:
            unused(f"cannot tell who annotated it (completed_by {annotation.user!r}); pass --annotator NAME")
            continue
        report.annotators.setdefault(name, _who(annotation.user))
        trace = traces.get((annotation.item_id, annotation.generation_id)) or traces.get((annotation.item_id, ""))
        if trace is None:
            unused(f"item {annotation.item_id} is not in the catalog of {recipe.name} (tasks of another recipe?)")
            continue
        try:
            verdict = _verdict(annotation, name, trace, report)
        except AnnotationError as exc:
            unused(str(exc))
            continue
        identity = _identity(verdict)
        if identity in seen:
            report.already += 1
            if seen[identity] != verdict.annotator:
                report.notes.append(f"{annotation.where}: already imported as {seen[identity]}, not as {name}")
            continue
        seen[identity] = verdict.annotator
        verdicts.append(verdict)
    for verdict in verdicts:
        append_verdict(folder, verdict)
    report.added = len(verdicts)
    return report


def _verdict(annotation: Annotation, name: str, trace: _Trace, report: ImportReport) -> Verdict:
    """The verdict an annotation stands for, checked as the review page checks one (AnnotationError says why not)."""
    fields = annotation.fields
    if annotation.time is None:
        raise AnnotationError("the annotation has no created_at or updated_at time with a time zone")
    decision = fields["decision"]
    if decision not in {str(d) for d in Decision}:
        raise AnnotationError(f"decision {decision!r}: expected accept, reject or edit")
    edits: dict[str, str | None] = {"edited_think": None, "edited_answer": None}
    if trace.generation is not None:
        think, answer = split_response(trace.generation.response or "")
        current = {"edited_think": think, "edited_answer": answer}
        for control in edits:  # keep only what the annotator changed (the boxes start with the trace)
            text = fields.get(control)
            edits[control] = None if text is None or text.strip() == (current[control] or "").strip() else text.strip()
    changed = any(text is not None for text in edits.values())
    reason, note = fields.get("reason"), (fields.get("note") or "").strip() or None
    if decision == Decision.EDIT:
        if trace.generation is None:
            raise AnnotationError(
                "an edit of a trace this build does not have cannot be checked; export the tasks again"
            )
        if not changed:
            raise AnnotationError("decision 'edit' but the text was not changed: accept the trace instead")
        problem = edit_problem(trace.item, trace.generation, edits["edited_think"], edits["edited_answer"])
        if problem:
            raise AnnotationError(problem)
    else:
        if changed:
            report.notes.append(
                f"{annotation.where}: the text was changed but the decision is '{decision}': the change is not kept"
            )
        edits = {"edited_think": None, "edited_answer": None}
    if decision == Decision.REJECT and reason is None:
        reason = str(RejectReason.OTHER)
        note = note or "no reason chosen in Label Studio"
    try:
        return Verdict(
            item_id=annotation.item_id,
            generation_id=annotation.generation_id,
            annotator=name,
            decision=decision,
            reason=reason if decision == Decision.REJECT else None,
            note=note,
            time=annotation.time,
            **edits,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'verdict'}: {e['msg']}" for e in exc.errors())
        raise AnnotationError(problems) from None


def _identity(verdict: Verdict) -> tuple[Any, ...]:
    """What makes two verdicts the same one, whatever file they are in."""
    return (
        verdict.item_id,
        verdict.generation_id,
        str(verdict.decision),
        verdict.reason,
        verdict.note,
        verdict.edited_think,
        verdict.edited_answer,
        verdict.time.timestamp(),
    )


def _traces(recipe: Recipe, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Trace]:
    """The items and traces the annotations name, from the catalog (opened read-only); an item whose trace the
    catalog does not hold is under (item_id, "")."""
    if not recipe.catalog_path.is_file():
        raise AnnotationError(f"{recipe.catalog_path}: no catalog yet; run `rrd build` on the recipe first")
    try:
        items, generations = named_traces_read_only(recipe.catalog_path, (k[0] for k in keys), (k[1] for k in keys))
    except duckdb.Error as exc:
        raise AnnotationError(f"{recipe.catalog_path}: cannot read the catalog ({exc}); is a build running?") from None
    found = {item_id: Item.model_validate_json(data) for item_id, data in items}
    traces = {(item_id, ""): _Trace(item, None) for item_id, item in found.items()}
    for item_id, fingerprint, data in generations:
        if item_id in found:
            traces[(item_id, fingerprint)] = _Trace(found[item_id], Generation.model_validate_json(data))
    return traces
