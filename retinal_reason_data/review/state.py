"""What the review server knows: the snapshot of the build and the verdict files, and what the page may ask of
them (queues, one trace, a new verdict). Plain blocking functions behind one lock; the web layer calls them
from worker threads."""

from __future__ import annotations

import threading
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError

from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.bodies import QueueQuery, VerdictBody
from retinal_reason_data.review.snapshot import (
    FACETS,
    QUEUES,
    ReviewSet,
    SnapshotError,
    catalog_mark,
    queue_view,
    select,
)
from retinal_reason_data.review.verdicts import (
    ITEM_REASONS,
    REASON_LABELS,
    Key,
    TraceReview,
    VerdictLog,
    append_verdict,
    edit_problem,
    utc_now,
    verdict_folder,
)
from retinal_reason_data.schema import Decision, RejectReason, Verdict
from retinal_reason_data.teacher.verify import split_response

QUEUE_PAGE = 500  # keys per queue request; the page asks for the next ones as the annotator nears the end


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a message the page shows as it is."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _verdict_view(verdict: Verdict) -> dict[str, Any]:
    return verdict.model_dump(mode="json", exclude_none=True, exclude={"session"})


def review_view(review: TraceReview | None, annotator: str | None) -> dict[str, Any]:
    """The verdicts on one trace as the page shows them to `annotator` (whose own verdict is `mine`, and who may
    settle the trace when `can_adjudicate`)."""
    if review is None:
        return {
            "verdicts": [],
            "decision": None,
            "disagreement": False,
            "mine": None,
            "edit": None,
            "participants": [],
            "can_adjudicate": False,
        }
    final = review.final
    mine = [v for v in review.verdicts if v.annotator == annotator and not v.adjudication]
    return {
        "verdicts": [_verdict_view(v) for v in review.verdicts],
        "decision": str(final.decision),
        "reason": final.reason,
        "disagreement": review.disagreement,
        "adjudicated": review.adjudication is not None,
        "mine": _verdict_view(mine[-1]) if mine else None,
        "edit": (
            {"think": final.edited_think, "answer": final.edited_answer, "annotator": final.annotator}
            if final.decision is Decision.EDIT
            else None
        ),
        "participants": sorted(review.participants),
        "can_adjudicate": review.contested and annotator is not None and annotator not in review.participants,
    }


def _who_said(review: TraceReview) -> str:
    return ", ".join(f"{name} {review.latest[name].decision}" for name in sorted(review.latest))


def adjudication_problem(review: TraceReview | None, annotator: str, adjudication: bool) -> RequestError | None:
    """Why `annotator` may not give this verdict on a trace: an adjudication needs a disagreement and must come
    from someone who took no part in it; someone who adjudicated may not then take part (that would void it)."""
    if adjudication:
        if review is None or not review.contested:
            return RequestError(HTTPStatus.CONFLICT, "no disagreement on this trace to adjudicate")
        if annotator in review.participants:
            return RequestError(
                HTTPStatus.FORBIDDEN,
                f"{annotator} took part in this disagreement ({_who_said(review)}): an adjudication must come from "
                "an annotator who gave no verdict on this trace",
            )
    elif review is not None and any(v.adjudication and v.annotator == annotator for v in review.verdicts):
        return RequestError(
            HTTPStatus.CONFLICT,
            f"{annotator} adjudicated this trace: a verdict of your own would make you a party to the disagreement; "
            "change your adjudication from the disagreements queue instead",
        )
    return None


class ReviewState:
    """The verdict files and the snapshot of the build, shared by the server's worker threads (behind one lock)."""

    def __init__(self, recipe: Recipe, queue_page: int = QUEUE_PAGE) -> None:
        self.recipe = recipe
        self.queue_page = queue_page
        self.folder = verdict_folder(recipe)
        self.log = VerdictLog(self.folder)
        self.log.refresh()
        self.snapshot = ReviewSet(recipe, self.log.trace_keys())
        self.lock = threading.RLock()
        self.build_note = ""
        self._selections: dict[tuple[Any, ...], tuple[list[Key], set[Key]]] = {}

    def close(self) -> None:
        self.snapshot.close()

    def refresh(self) -> None:
        """Read verdicts other annotators appended; take a new snapshot if the catalog was rebuilt."""
        with self.lock:
            self.log.refresh()
            if catalog_mark(self.recipe.catalog_path) == self.snapshot.mark:
                return
            try:
                fresh = ReviewSet(self.recipe, self.log.trace_keys())
            except SnapshotError as exc:
                self.build_note = f"showing the build as it was when review started: {exc}"
                return
            old, self.snapshot, self.build_note = self.snapshot, fresh, ""
            old.close()
            self._selections.clear()

    def session(self) -> dict[str, Any]:
        """What the page needs once: the recipe, facets, queues and reasons."""
        with self.lock:
            self.refresh()
            return {
                "recipe": self.recipe.name,
                "version": self.recipe.version,
                "verdict_folder": str(self.folder),
                "facets": self.snapshot.facet_values(),
                "queues": list(QUEUES),
                "reasons": [
                    {"code": str(code), "label": label, "item": code in ITEM_REASONS}
                    for code, label in REASON_LABELS.items()
                ],
                "traces": len(self.snapshot.entries),
                "build_note": self.build_note,
            }

    def queue(self, query: QueueQuery, annotator: str | None) -> dict[str, Any]:
        """One page of a queue for `annotator` (unreviewed means: no verdict from them yet)."""
        if query.queue not in QUEUES:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"queue: one of {', '.join(QUEUES)}")
        filters = {name: getattr(query, name) for name in FACETS}
        sample = (query.sample, query.seed) if query.sample else None
        limit = min(max(query.limit or self.queue_page, 1), 10 * QUEUE_PAGE)
        with self.lock:
            self.refresh()
            chosen, chosen_set = self._selected(filters, sample)
            reviews = self.log.reviews().values()
            keys, counts, more = queue_view(
                chosen, chosen_set, reviews, annotator or "", query.queue, query.after_key, limit,
                self.snapshot.second_reader_keys,
            )  # fmt: skip
            if query.counts_only:
                return {"counts": counts, "selected": len(chosen)}
            return {"keys": keys, "counts": counts, "selected": len(chosen), "more": more}

    def _selected(self, filters: dict[str, str], sample: tuple[int, int] | None) -> tuple[list[Key], set[Key]]:
        """The traces that pass the filters (and the batch), remembered for this snapshot."""
        key = (id(self.snapshot), tuple(sorted(filters.items())), sample)
        if key not in self._selections:
            if len(self._selections) > 32:
                self._selections.clear()
            chosen = [entry.key for entry in select(self.snapshot.entries, filters, sample)]
            self._selections[key] = (chosen, set(chosen))
        return self._selections[key]

    def item(self, key: Key, annotator: str | None) -> dict[str, Any]:
        with self.lock:
            self.refresh()
            detail = self.snapshot.detail(key)
            if detail is None:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no trace {key[1]} of item {key[0]} in this build")
            detail["review"] = review_view(self.log.review(key), annotator)
            return detail

    def add_verdict(self, body: VerdictBody, annotator: str, session_id: str) -> dict[str, Any]:
        """Check a verdict from the page, append it to the annotator's file and return the trace's state."""
        key = (body.item_id, body.generation_id)
        fields = body.model_dump(include={"decision", "reason", "note", "edited_think", "edited_answer"})
        fields["note"] = (fields["note"] or "").strip() or None
        with self.lock:
            self.log.refresh()
            if key not in self.snapshot.by_key:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no trace {key[1]} of item {key[0]} in this build")
            if problem := adjudication_problem(self.log.review(key), annotator, body.adjudication):
                raise problem
            if fields["decision"] is Decision.EDIT:
                self._check_edit(key, fields)
            try:
                verdict = Verdict(
                    item_id=key[0],
                    generation_id=key[1],
                    annotator=annotator,
                    adjudication=body.adjudication,
                    session=session_id,
                    time=utc_now(),
                    **fields,
                )
            except ValidationError as exc:
                message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise RequestError(HTTPStatus.BAD_REQUEST, message) from None
            if verdict.decision is Decision.REJECT and verdict.reason is RejectReason.OTHER and not verdict.note:
                raise RequestError(HTTPStatus.BAD_REQUEST, "reason 'other': say why in the note")
            append_verdict(self.folder, verdict)
            self.log.refresh()
            return review_view(self.log.review(key), annotator)

    def _check_edit(self, key: Key, fields: dict[str, Any]) -> None:
        """Keep only what the annotator changed; refuse an edit the build could not export."""
        item, generation = self.snapshot.models(key)
        think, answer = split_response(generation.response or "")
        for name, current in (("edited_think", think), ("edited_answer", answer)):
            text = fields.get(name)
            fields[name] = None if text is None or text.strip() == (current or "").strip() else text.strip()
        if fields["edited_think"] is None and fields["edited_answer"] is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, "nothing was changed: accept the trace instead")
        problem = edit_problem(item, generation, fields["edited_think"], fields["edited_answer"])
        if problem:
            raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, problem)

    def image_path(self, sha: str) -> Any:
        with self.lock:
            return self.snapshot.image_path(sha)
