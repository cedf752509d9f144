"""Label Studio, for teams that already run it: the build's traces as Label Studio tasks with a labelling config
that renders them as the review page does (header, images side by side, question and options, the trace in an
editable box), and the images served to the annotator's browser (`image_server`). Reading Label Studio's export
back into verdict files is `labelstudio_import`.

Each task carries its trace twice: as data (`trace_think`, `trace_answer`, which the import compares against)
and as a prediction whose result fills the two text boxes, so an annotator corrects the reasoning in place
instead of retyping it (Label Studio pre-fills an annotation from the task's prediction).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.image_server import (
    DEFAULT_PORT,
    ImageServeError,
    ServedImage,
    check_base_url,
    data_url,
    manifest_json,
    manifest_path,
    served_name,
)
from retinal_reason_data.review.snapshot import ReviewSet, in_queue, select
from retinal_reason_data.review.verdicts import REASON_LABELS, AnnotationError, read_verdicts, verdict_folder

IMAGE_MODES = ("serve", "embed")
DEFAULT_IMAGE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_MAX_IMAGE_BYTES = 1_500_000
PREDICTION_MODEL = "rrd-teacher-trace"  # the model_version of the prediction that pre-fills the text boxes
CONTROLS = ("decision", "reason", "edited_think", "edited_answer", "note")
# JSON_MIN puts the task's data, the annotation's results and these keys in one object, so the data may use none
# of them (label_studio_sdk converter: Converter.convert_to_json_min)
JSON_MIN_KEYS = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement")


def label_config(image_slots: int = 1) -> str:
    """The labelling interface for the exported tasks (`<tasks>.config.xml`): paste it into the project's
    Settings > Labeling Interface > Code. `image_slots` images stand side by side."""
    reasons = "\n".join(
        f"      <Choice value={quoteattr(label)} alias={quoteattr(str(code))}/>"
        for code, label in REASON_LABELS.items()
    )
    slots = "\n".join(
        f"""    <View style="flex: 1 1 0; min-width: 220px">
      <Image name="image_{n}" value="$image_{n}" zoom="true" zoomControl="true" rotateControl="false"/>
      <Text name="caption_{n}" value="$caption_{n}"/>
    </View>"""
        for n in range(max(1, image_slots))
    )
    return f"""<View>
  <Style>textarea[name^="edited_think:"] {{ min-height: 18em; }}</Style>
  <Header value="$header" size="4"/>
  <View style="display: flex; gap: 12px; align-items: flex-start; flex-wrap: wrap">
{slots}
  </View>
  <Header value="Question" size="5"/>
  <Text name="question" value="$question"/>
  <Text name="options" value="$options"/>
  <Text name="answers" value="$answers"/>
  <Header value="Reasoning: correct it in place, then choose Edit" size="5"/>
  <TextArea name="edited_think" toName="question" editable="true" transcription="true" rows="12" maxSubmissions="1"
            placeholder="The reasoning (pre-filled with the teacher's trace)"/>
  <Header value="Final answer" size="6"/>
  <TextArea name="edited_answer" toName="question" editable="true" transcription="true" rows="1" maxSubmissions="1"
            placeholder="The final answer (pre-filled with the trace's)"/>
  <Choices name="decision" toName="question" choice="single-radio" required="true" showInline="true">
    <Choice value="accept" hotkey="a"/>
    <Choice value="reject" hotkey="r"/>
    <Choice value="edit" hotkey="e"/>
  </Choices>
  <View visibleWhen="choice-selected" whenTagName="decision" whenChoiceValue="reject">
    <Header value="{escape("Why (a reason about the item drops the item)")}" size="6"/>
    <Choices name="reason" toName="question" choice="single-radio">
{reasons}
    </Choices>
  </View>
  <TextArea name="note" toName="question" rows="2" maxSubmissions="1" editable="true"
            placeholder="Note (needed for Other)"/>
</View>
"""


# --- export -------------------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    tasks: int = 0
    images: int = 0  # distinct image files the tasks show
    image_slots: int = 1  # most images in one task: the config shows this many side by side
    reduced: list[str] = field(default_factory=list)  # embed: images made smaller to fit the cap


@contextmanager
def atomic_file(target: Path) -> Iterator[IO[str]]:
    """A text file written beside `target` and moved over it only when complete: a failure leaves `target` as it
    was (or absent) and no partial file behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temporary = Path(name)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # as open() would have made it (mkstemp makes it private)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def export_tasks(
    recipe: Recipe,
    tasks_path: Path,
    images: str = "serve",
    image_url: str = DEFAULT_IMAGE_URL,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    filters: dict[str, str] | None = None,
    sample: tuple[int, int] | None = None,
    queue: str = "all",
    annotator: str = "",
) -> ExportReport:
    """Write the build's traces as a Label Studio task list (JSON), its labelling config (`<tasks>.config.xml`)
    and, when the images are served, the list of image files (`<tasks>.images.json`). Every file is written
    whole or not at all: a failed export leaves the previous ones as they were."""
    if images not in IMAGE_MODES:
        raise AnnotationError(f"images {images!r}: expected one of {', '.join(IMAGE_MODES)}")
    base_url = image_url.rstrip("/")
    if images == "serve":
        try:
            check_base_url(base_url)
        except ImageServeError as exc:
            raise AnnotationError(str(exc)) from None
    log = read_verdicts(verdict_folder(recipe))
    snapshot = ReviewSet(recipe, log.trace_keys())
    report, served, missing, shown = ExportReport(), {}, [], set()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as scratch:  # one task a line, until the slots are known
        try:
            for entry in select(snapshot.entries, filters or {}, sample):
                if not in_queue(queue, log.review(entry.key), annotator, entry.key in snapshot.second_reader_keys):
                    continue
                detail = snapshot.detail(entry.key)
                if detail is None:
                    continue
                urls = []
                for image in detail["images"]:
                    sha = image["url"].rsplit("/", 1)[1]
                    path = snapshot.image_path(sha)
                    if path is None or not path.is_file():
                        missing.append(f"{path or sha} (item {detail['item_id']})")
                        urls.append("")
                    elif images == "serve":
                        name = served_name(sha, path)
                        served[name] = ServedImage(name, path, sha)
                        urls.append(f"{base_url}/{name}")
                    else:
                        url, reduced = _embedded(path, max_image_bytes)
                        if reduced:
                            report.reduced.append(str(path))
                        urls.append(url)
                    shown.add(sha)
                scratch.write(json.dumps(_task(detail, urls), ensure_ascii=False, sort_keys=True) + "\n")
                report.image_slots = max(report.image_slots, len(urls))
                report.tasks += 1
        finally:
            snapshot.close()
        if missing:
            listed = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise AnnotationError(f"{len(missing)} images of the tasks are missing: {listed}")
        report.images = len(shown)
        # the image list and the config first, the tasks last: a failure before this point changed nothing
        if images == "serve":
            with atomic_file(manifest_path(tasks_path)) as handle:
                handle.write(manifest_json(base_url, served.values()))
        else:
            manifest_path(tasks_path).unlink(missing_ok=True)  # nothing to serve: no stale list of files
        with atomic_file(tasks_path.with_suffix(".config.xml")) as handle:
            handle.write(label_config(report.image_slots))
        scratch.seek(0)
        with atomic_file(tasks_path) as handle:
            handle.write("[")
            for number, line in enumerate(scratch):
                task = json.loads(line)
                for n in range(len([k for k in task["data"] if k.startswith("image_")]), report.image_slots):
                    task["data"][f"image_{n}"] = task["data"][f"caption_{n}"] = ""  # Label Studio needs every key
                handle.write(("," if number else "") + "\n" + json.dumps(task, ensure_ascii=False, sort_keys=True))
            handle.write("\n]\n")
    return report


def _embedded(path: Path, max_bytes: int) -> tuple[str, bool]:
    try:
        return data_url(path, max_bytes)
    except (OSError, ImageServeError) as exc:
        raise AnnotationError(str(exc)) from None


def _task(detail: dict[str, Any], urls: list[str]) -> dict[str, Any]:
    """One Label Studio task: the data the config shows, and the prediction that pre-fills the text boxes."""
    trace, meta = detail["trace"], detail["meta"]
    pass_at_k = "" if meta["pass_at_k"] is None else f" · pass@k {meta['pass_at_k']:.2f}"
    data: dict[str, Any] = {
        "item_id": detail["item_id"],
        "generation_id": detail["generation_id"],
        "header": f"{meta['source']} · {meta['modality']} · {meta['task']} / {meta['question_type']}{pass_at_k}",
        "question": detail["question"],
        "options": "\n".join(f"{option['letter']}. {option['text']}" for option in detail["options"]),
        "answers": f"Trace answer: {trace['answer'] or '(none)'}\nReference answer: {detail['reference']['shown']}",
        "trace_think": trace["think"],
        "trace_answer": trace["answer"] or "",
        "source": meta["source"],
        "modality": meta["modality"],
        "task": meta["task"],
        "question_type": meta["question_type"],
    }
    for n, (url, image) in enumerate(zip(urls, detail["images"], strict=True)):
        data[f"image_{n}"] = url
        data[f"caption_{n}"] = f"Image {n + 1} ({image['modality']}): {image['caption'] or 'no caption'}"
    prediction = [
        _text_result("edited_think", trace["think"]),
        _text_result("edited_answer", trace["answer"] or ""),
    ]
    return {"data": data, "predictions": [{"model_version": PREDICTION_MODEL, "result": prediction}]}


def _text_result(name: str, text: str) -> dict[str, Any]:
    return {"id": name, "from_name": name, "to_name": "question", "type": "textarea", "value": {"text": [text]}}
