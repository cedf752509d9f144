"""Reviewers' verdicts: the append-only store, how verdicts on a trace resolve, how a build applies them, and
agreement between annotators (Cohen's kappa).

Verdicts live in `<recipe.annotations>/<recipe name>/<annotator>.jsonl`, one JSON object per line (the
`Verdict` model). Files are only ever appended to, one write per verdict under an exclusive lock, so any
number of annotators (and review servers) can write at once without losing a line.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from retinal_reason_data.catalog import Catalog, dumps
from retinal_reason_data.catalog.review import assigned_items, exported_traces, reviewed_traces, store_review
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Decision, Generation, Item, RejectReason, Verdict
from retinal_reason_data.teacher import verify

try:  # POSIX; elsewhere O_APPEND with one write per verdict is the only guard
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

Key = tuple[str, str]  # (item_id, generation_id)

ITEM_REASONS = frozenset({RejectReason.REFERENCE_WRONG, RejectReason.IMAGE_UNUSABLE, RejectReason.QUESTION_FLAWED})
REASON_LABELS: dict[RejectReason, str] = {
    RejectReason.WRONG_REASONING: "Reasoning is wrong or does not lead to the answer",
    RejectReason.HALLUCINATED_FINDING: "Describes a finding that is not in the images",
    RejectReason.MISSED_FINDING: "Misses a finding that matters",
    RejectReason.UNSAFE: "Clinically unsafe or misleading statement",
    RejectReason.POOR_TEXT: "Unclear, repetitive or badly written",
    RejectReason.OTHER: "Other (say why in the note)",
    RejectReason.REFERENCE_WRONG: "Reference answer is wrong (drops the item)",
    RejectReason.IMAGE_UNUSABLE: "Image ungradable or not what the question says (drops the item)",
    RejectReason.QUESTION_FLAWED: "Question ambiguous or not answerable from the images (drops the item)",
}
REVIEW_STAGE = "review"


class AnnotationError(ValueError):
    """A verdict file that cannot be used; the message names the file, the line and what is wrong."""


def verdict_folder(recipe: Recipe) -> Path:
    """Where this recipe's verdict files live: `<annotations>/<recipe name>/`."""
    return recipe.annotations / recipe.name


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- the store ----------------------------------------------------------------------------------------------
def append_verdict(folder: Path, verdict: Verdict) -> Path:
    """Append one verdict to `<folder>/<annotator>.jsonl`: one write under an exclusive lock, then fsync."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{verdict.annotator}.jsonl"
    line = (verdict.model_dump_json(exclude_none=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a hand edit left no newline: keep lines apart
            line = b"\n" + line
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock
    return path


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(line)"
    return f"key '{location}': {error['msg']} (got {error.get('input')!r})"


def parse_verdict(text: str | bytes, path: Path, line: int) -> Verdict:
    """One line of a verdict file; a bad line raises AnnotationError naming the file and the line."""
    try:
        verdict = Verdict.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors()) if exc.error_count() else str(exc)
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            problems = "not valid JSON"
        raise AnnotationError(f"{path} line {line}: {problems}") from None
    if verdict.annotator != path.stem:
        raise AnnotationError(
            f"{path} line {line}: annotator '{verdict.annotator}' in the file of '{path.stem}' "
            "(each annotator writes only their own file)"
        )
    return verdict


@dataclass
class _FileState:
    inode: int
    offset: int = 0
    lines: int = 0


class VerdictLog:
    """Every verdict of one folder, read incrementally: files only grow, so a refresh reads just the new lines.

    A line another process is still writing (no newline yet) waits for the next refresh; `final=True` reads it
    too (a build, when no writer is expected)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[Path, _FileState] = {}
        self._by_key: dict[Key, list[tuple[datetime, int, Verdict]]] = defaultdict(list)
        self._reviews: dict[Key, TraceReview] = {}  # resolved, until a new verdict on the trace arrives
        self.count = 0

    def refresh(self, final: bool = False) -> bool:
        """Read what was appended since the last call; True when anything changed."""
        paths = sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []
        if set(self._files) - set(paths) or any(self._shrunk(p) for p in paths):
            self._files.clear()  # a file was replaced or removed (git checkout, hand edit): read all again
            self._by_key.clear()
            self._reviews.clear()
            self.count = 0
        changed = False
        for path in paths:
            stat = path.stat()
            state = self._files.setdefault(path, _FileState(stat.st_ino))
            if stat.st_size == state.offset:
                continue
            with path.open("rb") as handle:
                handle.seek(state.offset)
                data = handle.read()
            chunk = data if final else data[: data.rfind(b"\n") + 1]
            for raw in chunk.removesuffix(b"\n").split(b"\n") if chunk else []:
                state.lines += 1
                if raw.strip():
                    self._add(parse_verdict(raw, path, state.lines))
                    changed = True
            state.offset += len(chunk)
        return changed

    def _shrunk(self, path: Path) -> bool:
        state = self._files.get(path)
        if state is None:
            return False
        stat = path.stat()
        return stat.st_ino != state.inode or stat.st_size < state.offset

    def _add(self, verdict: Verdict) -> None:
        self.count += 1
        key = (verdict.item_id, verdict.generation_id)
        self._by_key[key].append((verdict.time, self.count, verdict))
        self._reviews.pop(key, None)

    def trace_keys(self) -> list[Key]:
        return sorted(self._by_key)

    def review(self, key: Key) -> TraceReview | None:
        review = self._reviews.get(key)
        if review is None and (entries := self._by_key.get(key)):
            review = TraceReview(key[0], key[1], [v for _, _, v in sorted(entries, key=lambda e: e[:2])])
            self._reviews[key] = review
        return review

    def reviews(self) -> dict[Key, TraceReview]:
        return {key: review for key in self.trace_keys() if (review := self.review(key)) is not None}

    def by_annotator(self) -> Counter[str]:
        return Counter(v.annotator for entries in self._by_key.values() for _, _, v in entries)


def read_verdicts(folder: Path) -> VerdictLog:
    """Every verdict in `folder`, read to the last byte (a build)."""
    log = VerdictLog(folder)
    log.refresh(final=True)
    return log


# --- resolution ---------------------------------------------------------------------------------------------
@dataclass
class TraceReview:
    """The verdicts on one trace, oldest first, and what they come to.

    Each annotator's latest verdict counts. An adjudication overrides everything, if it comes from an annotator
    who took no part (gave no verdict of their own on the trace; one who did is ignored and counted in
    `ignored_adjudications`); without one, any reject wins (with a reason about the item first), then the latest
    edit, then accept."""

    item_id: str
    generation_id: str
    verdicts: list[Verdict]

    @cached_property
    def latest(self) -> dict[str, Verdict]:
        """Each annotator's latest verdict that is not an adjudication."""
        return {v.annotator: v for v in self.verdicts if not v.adjudication}

    @cached_property
    def participants(self) -> frozenset[str]:
        """Annotators who gave a verdict of their own (not an adjudication) on the trace."""
        return frozenset(self.latest)

    @cached_property
    def ignored_adjudications(self) -> list[Verdict]:
        """Adjudications by an annotator who took part: they settle nothing."""
        return [v for v in self.verdicts if v.adjudication and v.annotator in self.participants]

    @cached_property
    def adjudication(self) -> Verdict | None:
        """The latest adjudication by an annotator who took no part, if any."""
        settling = (v for v in reversed(self.verdicts) if v.adjudication and v.annotator not in self.participants)
        return next(settling, None)

    @cached_property
    def final(self) -> Verdict:
        if (adjudication := self.adjudication) is not None:
            return adjudication
        latest = sorted(self.latest.values(), key=self.verdicts.index)
        rejects = [v for v in latest if v.decision is Decision.REJECT]
        if rejects:
            return max(rejects, key=lambda v: (v.reason in ITEM_REASONS, self.verdicts.index(v)))
        edits = [v for v in latest if v.decision is Decision.EDIT]
        return edits[-1] if edits else latest[-1]

    @property
    def decision(self) -> Decision:
        return self.final.decision

    @property
    def contested(self) -> bool:
        """Annotators' latest decisions differ (settled or not)."""
        return len({v.decision for v in self.latest.values()}) > 1

    @property
    def disagreement(self) -> bool:
        """Annotators' latest decisions differ and no adjudication settled it."""
        return self.adjudication is None and self.contested

    @property
    def item_rejected(self) -> bool:
        final = self.final
        return final.decision is Decision.REJECT and final.reason in ITEM_REASONS

    def annotators(self) -> list[str]:
        return sorted({v.annotator for v in self.verdicts})


def compose_response(think: str, answer: str) -> str:
    """A response in the exported form: `<think>...</think>` then `<answer>...</answer>`."""
    return f"<think>\n{think.strip()}\n</think>\n<answer>{answer.strip()}</answer>"


def edited_generation(
    item: Item, generation: Generation, edited_think: str | None, edited_answer: str | None
) -> Generation:
    """The teacher's generation with an annotator's correction in place, checked again against the answer."""
    think, answer = verify.split_response(generation.response or "")
    think = edited_think if edited_think is not None else think or ""
    answer = edited_answer if edited_answer is not None else answer or ""
    response = compose_response(think, answer)
    checked = verify.score(item.question_type, item.answer.text, item.answer.aliases, response)
    return generation.model_copy(
        update={
            "response": response,
            "extracted_answer": checked.extracted,
            "verified": checked.well_formed and checked.correct,
            "review": "edited",
        }
    )


def edit_problem(item: Item, generation: Generation, edited_think: str | None, edited_answer: str | None) -> str | None:
    """Why an edit could not be exported (tags typed into the text, an answer that does not check), or None."""
    edited = edited_generation(item, generation, edited_think, edited_answer)
    if verify.split_response(edited.response or "")[0] is None:
        return "the edited text must not contain <think>, </think>, <answer> or </answer>"
    if not edited.verified:
        return (
            f"the edited answer '{edited.extracted_answer}' does not match the reference answer "
            f"'{item.answer.text}'; correct it, or reject the trace with reason 'reference_wrong'"
        )
    return None


# --- applying verdicts in a build ---------------------------------------------------------------------------
@dataclass
class ReviewPlan:
    """What the verdicts do to a build: rows of the `reviews` table, and the traces and items they leave out."""

    verdicts: int = 0
    reviews: dict[Key, TraceReview] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected_traces: dict[str, TraceReview] = field(default_factory=dict)  # fingerprint -> review
    unverified_edits: dict[str, TraceReview] = field(default_factory=dict)
    edit_problems: dict[str, str] = field(default_factory=dict)  # fingerprint -> why its edit cannot be used
    rejected_items: dict[str, TraceReview] = field(default_factory=dict)  # item_id -> review
    stale: set[Key] = field(default_factory=set)  # traces no longer in the catalog
    ignored_adjudications: int = 0  # given by an annotator who took part in the disagreement
    context: dict[str, tuple[str, str]] = field(default_factory=dict)  # item_id -> (source, task)

    def counts(self) -> Counter[str]:
        return Counter(row["decision"] for row in self.rows)

    def unusable_edits(self) -> list[dict[str, str]]:
        """The edits a build cannot use: which item and trace, whose edit, and why."""
        return [
            {
                "item_id": review.item_id,
                "generation_id": fingerprint,
                "annotator": review.final.annotator,
                "why": self.edit_problems.get(fingerprint, ""),
            }
            for fingerprint, review in sorted(self.unverified_edits.items())
        ]


@dataclass
class ReviewReport:
    verdicts: int = 0
    traces: int = 0
    accepted: int = 0
    edited: int = 0
    rejected: int = 0
    items_rejected: int = 0
    unverified_edits: int = 0
    unusable_edits: list[dict[str, str]] = field(default_factory=list)  # item, trace, annotator, why
    stale: int = 0
    ignored_adjudications: int = 0  # given by an annotator who took part in the disagreement: not counted
    left_out: int = 0  # assignments changed: traces taken out of sft, items taken out of the release


def plan_review(recipe: Recipe, catalog: Catalog) -> ReviewPlan:
    """Resolve every verdict of the recipe against the catalog (reads only)."""
    log = read_verdicts(verdict_folder(recipe))
    plan = ReviewPlan(verdicts=log.count, reviews=log.reviews())
    plan.ignored_adjudications = sum(len(review.ignored_adjudications) for review in plan.reviews.values())
    if not plan.reviews:
        return plan
    found = reviewed_traces(catalog, list(plan.reviews))
    known = {(item_id, fp): (item_json, gen_json) for item_id, fp, _, _, item_json, gen_json in found}
    plan.context = {item_id: (source, task) for item_id, _, source, task, _, _ in found}
    for key, review in sorted(plan.reviews.items()):
        if review.item_rejected:
            plan.rejected_items.setdefault(key[0], review)
        if key not in known:
            plan.stale.add(key)
            continue
        item_json, gen_json = known[key]
        item, generation = Item.model_validate_json(item_json), Generation.model_validate_json(gen_json)
        final = review.final
        kept: Generation | None = None
        if final.decision is Decision.ACCEPT:
            kept = generation.model_copy(update={"review": "accepted"})
        elif final.decision is Decision.EDIT:
            kept = edited_generation(item, generation, final.edited_think, final.edited_answer)
            if not kept.verified:
                plan.unverified_edits[key[1]], kept = review, None
                plan.edit_problems[key[1]] = (
                    edit_problem(item, generation, final.edited_think, final.edited_answer)
                    or "the edited answer does not verify"
                )
        else:
            plan.rejected_traces[key[1]] = review
        plan.rows.append(
            {
                "fingerprint": key[1],
                "item_id": key[0],
                "decision": "edit_unverified" if final.decision is Decision.EDIT and kept is None else final.decision,
                "reason": final.reason,
                "annotators": len(review.annotators()),
                "generation": kept.model_dump_json() if kept is not None else None,
            }
        )
    return plan


def _who(review: TraceReview) -> str:
    final = review.final
    why = f" ({final.reason})" if final.reason else ""
    note = f": {final.note}" if final.note else ""
    return f"{final.decision} by {final.annotator}{why}{note}"


def apply_verdicts(recipe: Recipe, catalog: Catalog) -> ReviewReport:
    """Honour the verdicts after curation, before export: rejected traces leave `sft`, items rejected for a
    reason about the item leave the release, edited traces replace the teacher's (the `reviews` table, which
    the export reads), and accepted ones are marked."""
    plan = plan_review(recipe, catalog)
    counts = plan.counts()
    report = ReviewReport(
        verdicts=plan.verdicts,
        traces=len(plan.rows),
        accepted=counts["accept"],
        edited=counts["edit"],
        rejected=counts["reject"],
        items_rejected=len(plan.rejected_items),
        unverified_edits=len(plan.unverified_edits),
        unusable_edits=plan.unusable_edits(),
        stale=len(plan.stale),
        ignored_adjudications=plan.ignored_adjudications,
    )
    taken_out = {**plan.rejected_traces, **plan.unverified_edits}
    assigned = exported_traces(catalog)
    drops: list[dict[str, str]] = []
    for fingerprint, review in sorted(taken_out.items()):
        if fingerprint in assigned and review.item_id not in plan.rejected_items:
            reason = "edit_unverified" if fingerprint in plan.unverified_edits else "rejected_in_review"
            drops.append(_drop(review.item_id, reason, f"trace {fingerprint[:12]}: {_who(review)}"))
    present = assigned_items(catalog)
    for item_id, review in sorted(plan.rejected_items.items()):
        if item_id in present:
            drops.append(_drop(item_id, "item_rejected_in_review", _who(review)))
    report.left_out = len(drops)
    store_review(catalog, REVIEW_STAGE, plan.rows, drops, list(taken_out), list(plan.rejected_items))
    return report


def _drop(item_id: str, reason: str, detail: str) -> dict[str, str]:
    return {"item_id": item_id, "stage": REVIEW_STAGE, "reason": reason, "detail": detail}


# --- agreement ----------------------------------------------------------------------------------------------
def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters over paired labels; None when undefined (no pairs, or chance agreement 1)."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def agreement(reviews: Iterable[TraceReview]) -> dict[str, Any]:
    """Agreement over traces that two or more annotators reviewed (each annotator's latest decision).

    `kappa` is Cohen's kappa for two annotators; with more, the mean of the pairwise kappas (Light's kappa).
    `agreement` is the share of annotator pairs that made the same decision."""
    pairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    traces = 0
    for review in reviews:
        latest = review.latest
        if len(latest) < 2:
            continue
        traces += 1
        for a, b in combinations(sorted(latest), 2):
            pairs[(a, b)].append((str(latest[a].decision), str(latest[b].decision)))
    flat = [pair for values in pairs.values() for pair in values]
    kappas = {f"{a}/{b}": cohen_kappa(values) for (a, b), values in sorted(pairs.items())}
    defined = [k for k in kappas.values() if k is not None]
    return {
        "traces": traces,
        "agreement": round(sum(a == b for a, b in flat) / len(flat), 4) if flat else None,
        "kappa": round(sum(defined) / len(defined), 4) if defined else None,
        "pairs": {
            name: {"traces": len(pairs[tuple(name.split("/"))]), "kappa": None if k is None else round(k, 4)}
            for name, k in kappas.items()
        },
    }


def review_stats(recipe: Recipe, catalog: Catalog) -> dict[str, Any]:
    """The `review` key of `rrd stats --json`: what annotators decided, and how far they agree."""
    plan = plan_review(recipe, catalog)
    live = {key: review for key, review in plan.reviews.items() if key not in plan.stale}
    counts = plan.counts()
    by_cell: dict[tuple[str, str], list[TraceReview]] = defaultdict(list)
    for (item_id, _), review in live.items():
        by_cell[plan.context.get(item_id, ("unknown", "unknown"))].append(review)
    kappa: dict[str, dict[str, Any]] = defaultdict(dict)
    for (source, task), reviews in sorted(by_cell.items()):
        cell = agreement(reviews)
        if cell["traces"]:
            kappa[source][task] = cell
    digest = hashlib.sha256(
        dumps([[r["fingerprint"], r["decision"], r["reason"], r["generation"]] for r in plan.rows]).encode()
    ).hexdigest()
    return {
        "verdicts": plan.verdicts,
        "annotators": dict(sorted(Counter(v.annotator for r in plan.reviews.values() for v in r.verdicts).items())),
        "traces_reviewed": len(live),
        "items_reviewed": len({item_id for item_id, _ in live}),
        "decisions": {
            "accept": counts["accept"],
            "edit": counts["edit"],
            "reject": counts["reject"],
            "edit_unverified": counts["edit_unverified"],
        },
        "unusable_edits": plan.unusable_edits(),  # which item and trace, whose edit, why it was left out
        "rejected_by_reason": dict(
            sorted(Counter(str(r.final.reason) for r in live.values() if r.decision is Decision.REJECT).items())
        ),
        "items_rejected": len(plan.rejected_items),
        "double_reviewed": sum(len(r.latest) >= 2 for r in live.values()),
        "disagreements": sum(r.disagreement for r in live.values()),
        "adjudicated": sum(r.adjudication is not None for r in live.values()),
        "adjudications_ignored": plan.ignored_adjudications,  # by an annotator who took part in the disagreement
        "stale_traces": len(plan.stale),
        "kappa_by_source_task": {source: dict(cells) for source, cells in sorted(kappa.items())},
        "digest": digest,
    }


def card_section(review: dict[str, Any] | None) -> str:
    """The dataset card's `## Review` section, from the `review` key of the build's stats."""
    if not review or not review.get("traces_reviewed"):
        return "## Review\n\nNo trace of this release was reviewed by an annotator.\n"
    decisions, people = review["decisions"], len(review["annotators"])
    items = f" ({review['items_rejected']} for a problem with the item itself)" if review["items_rejected"] else ""
    lines = [
        "## Review\n",
        f"{people} annotator{'s' if people != 1 else ''} reviewed {review['traces_reviewed']} traces of "
        f"{review['items_reviewed']} items: {decisions['accept']} accepted, {decisions['edit']} edited, "
        f"{decisions['reject']} rejected{items}.",
        "",
        "Rejected traces are not in this release, and items rejected for their image, question or reference answer "
        "are in neither config. Edited traces replace the teacher's: their `sft` rows have `review: edited` (and "
        "accepted ones `review: accepted`); an edit is exported only when its answer checks against the reference"
        + (f" ({decisions['edit_unverified']} did not and were left out)." if decisions["edit_unverified"] else "."),
    ]
    cells = [
        (source, task, cell)
        for source, tasks in sorted(review.get("kappa_by_source_task", {}).items())
        for task, cell in sorted(tasks.items())
    ]
    if cells:
        lines += [
            "",
            f"{review['double_reviewed']} traces were reviewed by two or more annotators ({review['disagreements']} "
            f"disagreements open, {review['adjudicated']} adjudicated). Agreement on accept / edit / reject:",
            "",
            "| source | task | traces | agreement | Cohen's kappa |",
            "|---|---|---|---|---|",
        ]
        for source, task, cell in cells:
            kappa = "n/a" if cell["kappa"] is None else f"{cell['kappa']:.2f}"
            lines.append(f"| {source} | {task} | {cell['traces']} | {cell['agreement']:.2f} | {kappa} |")
    return "\n".join(lines) + "\n"
