"""Label Studio, for teams that already run it: the build's traces as Label Studio tasks (with a labelling
config), and Label Studio's JSON export read back into verdict files.

Images are referred to as Label Studio local files (`/data/local-files/?d=<path under image_root>`): start
Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set
to the same folder. Several images per task use the Image tag's `valueList` (Label Studio 1.9 or later).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import duckdb
import pyarrow as pa
from pydantic import ValidationError

from retinal_reason_data.annotations import (
    REASON_LABELS,
    AnnotationError,
    append_verdict,
    read_verdicts,
    verdict_folder,
)
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.snapshot import ReviewSet, in_queue, select
from retinal_reason_data.schema import Decision, RejectReason, Verdict

TEXT_FIELDS = ("edited_think", "edited_answer", "note")


def label_config() -> str:
    """The labelling interface that matches the exported tasks (paste it into the project's settings)."""
    reasons = "\n".join(
        f"      <Choice value={quoteattr(label)} alias={quoteattr(str(code))}/>"
        for code, label in REASON_LABELS.items()
    )
    return f"""<View>
  <Header value="$source · $modality · $task / $question_type · pass@k $pass_at_k"/>
  <Image name="images" valueList="$images" zoom="true" zoomControl="true"/>
  <Text name="captions" value="$captions"/>
  <Header value="Question" size="5"/>
  <Text name="question" value="$question"/>
  <Text name="options" value="$options"/>
  <Header value="Reasoning" size="5"/>
  <Text name="trace" value="$trace"/>
  <Text name="answers" value="$answers"/>
  <Choices name="decision" toName="trace" choice="single-radio" required="true" showInline="true">
    <Choice value="accept" hotkey="a"/>
    <Choice value="reject" hotkey="r"/>
    <Choice value="edit" hotkey="e"/>
  </Choices>
  <View visibleWhen="choice-selected" whenTagName="decision" whenChoiceValue="reject">
    <Choices name="reason" toName="trace" choice="single-radio">
{reasons}
    </Choices>
  </View>
  <View visibleWhen="choice-selected" whenTagName="decision" whenChoiceValue="edit">
    <TextArea name="edited_think" toName="trace" editable="true" rows="10" maxSubmissions="1"
              placeholder="The corrected reasoning (the whole text)"/>
    <TextArea name="edited_answer" toName="trace" editable="true" rows="1" maxSubmissions="1"
              placeholder="The corrected answer"/>
  </View>
  <TextArea name="note" toName="trace" rows="2" maxSubmissions="1" placeholder="Note (needed for Other)"/>
</View>
"""


def _local_file_url(path: str, image_root: Path) -> str:
    try:
        relative = Path(path).resolve().relative_to(image_root.resolve())
    except ValueError:
        raise AnnotationError(f"image {path} is not under the image root {image_root}") from None
    return "/data/local-files/?d=" + quote(relative.as_posix(), safe="/")


def export_tasks(
    recipe: Recipe,
    tasks_path: Path,
    image_root: Path = Path("/"),
    filters: dict[str, str] | None = None,
    sample: tuple[int, int] | None = None,
    queue: str = "all",
    annotator: str = "",
) -> int:
    """Write the build's traces as a Label Studio task list (JSON) and the labelling config beside it
    (`<tasks>.config.xml`); returns the number of tasks."""
    log = read_verdicts(verdict_folder(recipe))
    snapshot = ReviewSet(recipe, log.trace_keys())
    count = 0
    try:
        entries = select(snapshot.entries, filters or {}, sample)
        tasks_path.parent.mkdir(parents=True, exist_ok=True)
        with tasks_path.open("w", encoding="utf-8") as handle:
            handle.write("[")
            for entry in entries:
                if not in_queue(queue, log.review(entry.key), annotator, entry.key in snapshot.second_reader_keys):
                    continue
                detail = snapshot.detail(entry.key)
                if detail is None:
                    continue
                task = {"data": _task_data(detail, snapshot, image_root)}
                handle.write(("," if count else "") + "\n" + json.dumps(task, ensure_ascii=False, sort_keys=True))
                count += 1
            handle.write("\n]\n")
    finally:
        snapshot.close()
    tasks_path.with_suffix(".config.xml").write_text(label_config(), encoding="utf-8")
    return count


def _task_data(detail: dict[str, Any], snapshot: ReviewSet, image_root: Path) -> dict[str, Any]:
    images = [
        _local_file_url(str(snapshot.image_path(image["url"].rsplit("/", 1)[1])), image_root)
        for image in detail["images"]
    ]
    trace, meta = detail["trace"], detail["meta"]
    return {
        "item_id": detail["item_id"],
        "generation_id": detail["generation_id"],
        "images": images,
        "image": images[0] if images else "",
        "captions": "\n".join(
            f"Image {n}: {image['modality']}: {image['caption'] or ''}" for n, image in enumerate(detail["images"], 1)
        ),
        "question": detail["question"],
        "options": "\n".join(f"{option['letter']}. {option['text']}" for option in detail["options"]),
        "trace": trace["think"],
        "answer": trace["answer"] or "",
        "reference": detail["reference"]["shown"],
        "answers": f"Trace answer: {trace['answer'] or '(none)'}\nReference: {detail['reference']['shown']}",
        "source": meta["source"],
        "modality": meta["modality"],
        "task": meta["task"],
        "question_type": meta["question_type"],
        "pass_at_k": "" if meta["pass_at_k"] is None else f"{meta['pass_at_k']:.2f}",
    }


# --- import -------------------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    added: int = 0
    already: int = 0  # the same verdict was imported before (importing twice adds nothing)
    cancelled: int = 0  # skipped annotations in Label Studio
    skipped: list[str] = field(default_factory=list)  # annotations without a decision, with where they are


def _annotator_of(completed_by: Any) -> str | None:
    """A verdict file name from Label Studio's `completed_by` (a user id, or a user with an email)."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if email:
            name = re.sub(r"[^A-Za-z0-9_.-]", "-", str(email).split("@")[0]).strip("-.") or None
            return name
        completed_by = completed_by.get("id")
    if isinstance(completed_by, int):
        return f"labelstudio-{completed_by}"
    return None


def _results(annotation: dict[str, Any]) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    for result in annotation.get("result") or []:
        name, value = result.get("from_name"), result.get("value") or {}
        if name in ("decision", "reason") and value.get("choices"):
            fields[name] = str(value["choices"][0])
        elif name in TEXT_FIELDS and value.get("text") is not None:
            text = value["text"]
            fields[name] = "\n".join(text) if isinstance(text, list) else str(text)
    return fields


def _when(annotation: dict[str, Any]) -> datetime | None:
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    if not stamp:
        return None
    when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return when if when.tzinfo else None


def import_labelstudio(recipe: Recipe, export_path: Path, annotator: str | None = None) -> ImportReport:
    """Append the verdicts of a Label Studio JSON export to the annotators' files. Everything is checked
    before anything is written; importing the same export twice adds nothing."""
    try:
        tasks = json.loads(export_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnnotationError(f"{export_path}: cannot read a Label Studio JSON export ({exc})") from None
    if not isinstance(tasks, list):
        raise AnnotationError(f"{export_path}: expected Label Studio's JSON export (a list of tasks)")
    known = _known_traces(recipe, tasks)
    folder = verdict_folder(recipe)
    seen = {_identity(v) for review in read_verdicts(folder).reviews().values() for v in review.verdicts}
    report, verdicts = ImportReport(), []
    for number, task in enumerate(tasks, start=1):
        where = f"{export_path} task {number} (id {task.get('id')})"
        data = task.get("data") or {}
        key = (data.get("item_id"), data.get("generation_id"))
        if not all(isinstance(part, str) for part in key):
            raise AnnotationError(f"{where}: no item_id and generation_id in its data (was it exported by rrd?)")
        if key not in known:
            raise AnnotationError(f"{where}: trace {key[1]} of item {key[0]} is not in the catalog of {recipe.name}")
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                report.cancelled += 1
                continue
            verdict = _verdict(where, key, annotation, annotator)
            if verdict is None:
                report.skipped.append(f"{where} annotation {annotation.get('id')}: no decision")
            elif _identity(verdict) in seen:
                report.already += 1
            else:
                seen.add(_identity(verdict))
                verdicts.append(verdict)
    for verdict in verdicts:
        append_verdict(folder, verdict)
    report.added = len(verdicts)
    return report


def _verdict(where: str, key: tuple[str, str], annotation: dict[str, Any], annotator: str | None) -> Verdict | None:
    fields = _results(annotation)
    if "decision" not in fields:
        return None
    name = annotator or _annotator_of(annotation.get("completed_by"))
    if not name:
        raise AnnotationError(f"{where}: cannot tell who annotated it; pass --annotator NAME")
    when = _when(annotation)
    if when is None:
        raise AnnotationError(f"{where}: the annotation has no created_at or updated_at time")
    decision = fields["decision"]
    reason = fields.get("reason")
    if decision == Decision.REJECT and reason is None:
        reason = str(RejectReason.OTHER)
    edits = {name: fields.get(name) for name in ("edited_think", "edited_answer")} if decision == Decision.EDIT else {}
    try:
        return Verdict(
            item_id=key[0],
            generation_id=key[1],
            annotator=name,
            decision=decision,
            reason=reason if decision == Decision.REJECT else None,
            note=(fields.get("note") or "").strip() or None,
            time=when,
            **{k: v.strip() if v else None for k, v in edits.items()},
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'verdict'}: {e['msg']}" for e in exc.errors())
        raise AnnotationError(f"{where}: {problems}") from None


def _identity(verdict: Verdict) -> tuple[Any, ...]:
    return (
        verdict.item_id,
        verdict.generation_id,
        verdict.annotator,
        str(verdict.decision),
        verdict.reason,
        verdict.edited_think,
        verdict.edited_answer,
        verdict.time.timestamp(),
    )


def _known_traces(recipe: Recipe, tasks: list[Any]) -> set[tuple[str, str]]:
    """Which of the tasks' traces the catalog holds (opened read-only)."""
    fingerprints = sorted(
        {str((task.get("data") or {}).get("generation_id")) for task in tasks if isinstance(task, dict)}
    )
    if not recipe.catalog_path.is_file():
        raise AnnotationError(f"{recipe.catalog_path}: no catalog yet; run `rrd build` on the recipe first")
    db = duckdb.connect(str(recipe.catalog_path), read_only=True)
    try:
        db.register("_asked", pa.table({"fingerprint": pa.array(fingerprints, pa.string())}))
        rows = db.execute(
            "SELECT g.item_id, g.fingerprint FROM generations g JOIN _asked USING (fingerprint)"
        ).fetchall()
    finally:
        db.close()
    return {(item_id, fingerprint) for item_id, fingerprint in rows}
