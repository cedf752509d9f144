"""What the review page shows: a snapshot of the build's traces, queues, filters and stratified samples.

The snapshot is copied from the catalog when review starts (and again when the catalog changes) by
`catalog.review_snapshot`, which owns its queries.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retinal_reason_data.catalog.review_snapshot import ReviewSnapshot, SnapshotError
from retinal_reason_data.curation.filters import trace_problem
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.verdicts import Key, TraceReview
from retinal_reason_data.schema import Case, Decision, Generation, Item
from retinal_reason_data.tasks.options import LETTERS
from retinal_reason_data.teacher.verify import split_response
from retinal_reason_data.text import stable_hash

FACETS = ("source", "modality", "task", "question_type")
# second_reader: complex items withheld because the teacher's reading of the case disagrees with the rules'
# diagnosis (casereports.second_reader); accepting or editing one of their traces settles them
QUEUES = ("all", "unreviewed", "rejected", "disagreements", "second_reader")
READERS_STAGE = "readers"
SFT_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Entry:
    """One reviewable trace: an item and the teacher attempt shown for it."""

    item_id: str
    generation_id: str
    source: str
    modality: str
    task: str
    question_type: str

    @property
    def key(self) -> Key:
        return (self.item_id, self.generation_id)

    def facet(self, name: str) -> str:
        return str(getattr(self, name))


def catalog_mark(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of the catalog file, to notice a rebuild."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class ReviewSet:
    """The traces a build exports, plus every trace a verdict names, copied out of the catalog."""

    def __init__(self, recipe: Recipe, reviewed: Iterable[Key] = ()) -> None:
        self.recipe = recipe
        self.mark = catalog_mark(recipe.catalog_path)
        if self.mark is None:
            raise SnapshotError(f"{recipe.catalog_path}: no catalog yet; run `rrd build` on the recipe first")
        self.store = ReviewSnapshot(recipe.catalog_path, list(reviewed), READERS_STAGE)
        self.entries = [Entry(*row) for row in self.store.trace_facets()]
        self.by_key = {entry.key: entry for entry in self.entries}
        withheld = self.store.items_dropped_at(READERS_STAGE)
        self.second_reader_keys = {entry.key for entry in self.entries if entry.item_id in withheld}
        self.image_paths: dict[str, str] = {}  # sha256 -> file, for the images of items already served

    def close(self) -> None:
        self.store.close()

    def facet_values(self) -> dict[str, list[str]]:
        return {name: sorted({entry.facet(name) for entry in self.entries}) for name in FACETS}

    def detail(self, key: Key) -> dict[str, Any] | None:
        """Everything the page shows for one trace (texts as plain strings; the page renders them as text)."""
        row = self.store.trace(key)
        if row is None:
            return None
        item, case = Item.model_validate_json(row[0]), Case.model_validate_json(row[1])
        generation = Generation.model_validate_json(row[2])
        split, pass_at_k, attempts, exported = row[3:]
        drops = self.store.drops(item.item_id)
        think, answer = split_response(generation.response or "")
        return {
            "item_id": item.item_id,
            "generation_id": generation.fingerprint,
            "images": self._images(item, case),
            "question": item.question,
            "options": [{"letter": LETTERS[i], "text": text} for i, text in enumerate(item.options)],
            "reference": {"text": item.answer.text, "aliases": item.answer.aliases, "shown": _shown(item)},
            "trace": {
                "think": think if think is not None else (generation.response or ""),
                "answer": answer if answer is not None else generation.extracted_answer,
                "well_formed": think is not None,
                "verified": generation.verified,
            },
            "meta": {
                "source": case.source,
                "case_id": case.case_id,
                "modality": str(item.modality),
                "task": str(item.task),
                "question_type": str(item.question_type),
                "split": split,
                "pass_at_k": pass_at_k,
                "attempts": attempts,
                "attempt": generation.attempt,
                "guided": generation.guided,
                "model": generation.model,
                "prompt_version": generation.prompt_version,
                "eye": str(case.eye),
                "age": case.age,
                "sex": str(case.sex),
                "exported": exported == generation.fingerprint and split in SFT_SPLITS,
            },
            "checks": self._checks(generation, think, drops),
        }

    def _images(self, item: Item, case: Case) -> list[dict[str, Any]]:
        refs = {image.sha256: image for image in case.images}
        shas = item.image_shas or [image.sha256 for image in case.images]
        shown = []
        for index, sha in enumerate(shas):
            ref = refs.get(sha)
            if ref is None:
                continue
            self.image_paths[sha] = ref.path
            caption = item.captions[index] if index < len(item.captions) else ref.caption
            shown.append(
                {
                    "url": f"/image/{sha}",
                    "modality": str(ref.modality),
                    "caption": caption,
                    "width": ref.width,
                    "height": ref.height,
                }
            )
        return shown

    def _checks(self, generation: Generation, think: str | None, drops: Sequence[tuple[str, str, str]]) -> list[dict]:
        """The checks the trace went through, passed or not, in words."""
        problem = trace_problem(generation.response or "", self.recipe.filters)
        judged = " (by the judge)" if generation.judge == "equivalent" else ""
        checks = [
            {"name": "answer verified" + judged, "passed": generation.verified, "detail": generation.failure or ""},
            {
                "name": "trace filters",
                "passed": problem is None,
                "detail": problem or f"{len(think or '')} characters of reasoning",
            },
        ]
        stages = {stage for stage, _, _ in drops}
        if "dedup" not in stages:
            checks.append({"name": "not a duplicate", "passed": True, "detail": ""})
        checks += [{"name": f"{stage}: {reason}", "passed": False, "detail": detail} for stage, reason, detail in drops]
        return checks

    def models(self, key: Key) -> tuple[Item, Generation]:
        row = self.store.trace(key)
        if row is None:
            raise KeyError(key)
        return Item.model_validate_json(row[0]), Generation.model_validate_json(row[2])

    def image_path(self, sha: str) -> Path | None:
        path = self.image_paths.get(sha)
        return Path(path) if path else None


def _shown(item: Item) -> str:
    """The reference answer as a person reads it: letters with their option texts."""
    if not item.options:
        return item.answer.text
    letters = [letter.strip() for letter in item.answer.text.split(",") if letter.strip()]
    parts = []
    for letter in letters:
        index = LETTERS.find(letter)
        parts.append(f"{letter}. {item.options[index]}" if 0 <= index < len(item.options) else letter)
    return "; ".join(parts)


# --- queues, filters and samples ----------------------------------------------------------------------------
def matches(entry: Entry, filters: dict[str, str]) -> bool:
    return all(not value or entry.facet(name) == value for name, value in filters.items())


def in_queue(queue: str, review: TraceReview | None, annotator: str, second_reader: bool = False) -> bool:
    """all; unreviewed (no verdict from this annotator yet); rejected (as resolved); disagreements (unsettled);
    second_reader (the trace's item is withheld because the two readers of its case disagree)."""
    if queue == "all":
        return True
    if queue == "second_reader":
        return second_reader
    if queue == "unreviewed":
        return review is None or all(v.annotator != annotator for v in review.verdicts)
    if review is None:
        return False
    if queue == "rejected":
        return review.decision is Decision.REJECT
    if queue == "disagreements":
        return review.disagreement
    raise ValueError(f"unknown queue '{queue}'; expected one of {', '.join(QUEUES)}")


def allocate(sizes: dict[Any, int], n: int) -> dict[Any, int]:
    """Split n draws over strata: one each first (when n allows), the rest in proportion to what is left
    (largest remainders; ties by stratum order)."""
    if n >= sum(sizes.values()):
        return dict(sizes)
    taken = {stratum: 0 for stratum in sizes}
    if n >= len(sizes):
        taken = {stratum: min(1, size) for stratum, size in sizes.items()}
    remaining = n - sum(taken.values())
    room = {stratum: sizes[stratum] - taken[stratum] for stratum in sizes}
    total = sum(room.values())
    if remaining > 0 and total > 0:
        shares = {stratum: remaining * room[stratum] / total for stratum in sizes}
        floors = {stratum: math.floor(share) for stratum, share in shares.items()}
        left = remaining - sum(floors.values())
        order = sorted(sizes, key=lambda s: (-(shares[s] - floors[s]), list(sizes).index(s)))
        for stratum in order[:left]:
            floors[stratum] += 1
        for stratum in sizes:
            taken[stratum] += floors[stratum]
    return taken


def stratified_sample(entries: Sequence[Entry], n: int, seed: int) -> list[Entry]:
    """N traces stratified by source and task (deterministic for a seed), in item order."""
    strata: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in entries:
        strata[(entry.source, entry.task)].append(entry)
    quotas = allocate({stratum: len(members) for stratum, members in sorted(strata.items())}, max(n, 0))
    chosen: list[Entry] = []
    for stratum, members in sorted(strata.items()):
        ranked = sorted(members, key=lambda e: stable_hash(seed, e.item_id, e.generation_id))
        chosen += ranked[: quotas[stratum]]
    return sorted(chosen, key=lambda e: e.key)


def select(
    entries: Sequence[Entry],
    filters: dict[str, str],
    sample: tuple[int, int] | None = None,
) -> list[Entry]:
    """Entries passing the filters, then (if asked) a stratified sample of them."""
    chosen = [entry for entry in entries if matches(entry, filters)]
    return stratified_sample(chosen, *sample) if sample else chosen


def queue_view(
    chosen: Sequence[Key],
    chosen_set: set[Key],
    reviews: Iterable[TraceReview],
    annotator: str,
    queue: str,
    after: Key | None = None,
    limit: int | None = None,
    second_reader: set[Key] | frozenset[Key] = frozenset(),
) -> tuple[list[Key], dict[str, int], bool]:
    """One page of a queue among the chosen traces (sorted by key): up to `limit` keys after `after`, the size
    of every queue, and whether more follow. Only reviewed traces (and the few withheld for the second reader,
    `second_reader`) are looked at one by one, so this stays fast however large the build."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue '{queue}'; expected one of {', '.join(QUEUES)}")
    members: dict[str, set[Key]] = {
        "mine": set(),
        "rejected": set(),
        "disagreements": set(),
        "second_reader": {key for key in second_reader if key in chosen_set},
    }
    for review in reviews:
        key = (review.item_id, review.generation_id)
        if key not in chosen_set:
            continue
        if any(v.annotator == annotator for v in review.verdicts):
            members["mine"].add(key)
        if review.decision is Decision.REJECT:
            members["rejected"].add(key)
        if review.disagreement:
            members["disagreements"].add(key)
    counts = {
        "all": len(chosen),
        "unreviewed": len(chosen) - len(members["mine"]),
        "rejected": len(members["rejected"]),
        "disagreements": len(members["disagreements"]),
        "second_reader": len(members["second_reader"]),
    }
    start = bisect.bisect_right(chosen, after) if after is not None else 0
    limit = len(chosen) if limit is None else limit
    if queue == "all":
        page = list(chosen[start : start + limit + 1])
    else:
        if queue == "unreviewed":
            mine = members["mine"]
            candidates = (key for key in chosen[start:] if key not in mine)
        else:
            wanted = members[queue]
            candidates = (key for key in chosen[start:] if key in wanted)
        page = list(itertools.islice(candidates, limit + 1))
    return page[:limit], counts, len(page) > limit
