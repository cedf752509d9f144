"""A judge for near misses of open answers: when a teacher's diagnosis is wrong by the normalised match of
`verify.score` (the only scoring, and the RL reward) but close to an accepted name ('central retinal arterial
occlusion of the left eye'), the teacher is asked whether the two name the same diagnosis.

An 'equivalent' verdict makes the attempt verified and is recorded in its Generation (`judge`), so a
reader of the catalog or the export can tell a judged trace from a matched one; 'different' is recorded too.
Verdicts are stored in the table `judgements` under a fingerprint of the model, the prompt version, the
accepted names and the candidate answer: a rerun asks nothing twice.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.catalog.teacher import iter_unverified_answers, judgement_verdicts
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Generation, Item, QuestionType
from retinal_reason_data.teacher.backends import backend_of
from retinal_reason_data.teacher.calls import ask
from retinal_reason_data.text import normalise_term, stable_hash

PROMPT_VERSION = "judge-v1"
SYSTEM = (
    "You check answers to ophthalmology questions. Given the accepted diagnosis (with its other accepted names) "
    "and a candidate answer, reply with exactly one word: 'equivalent' if the candidate names the same diagnosis "
    "(a synonym, an abbreviation, a spelling variant, or the same diagnosis with the eye or a qualifier added), "
    "or 'different' otherwise (another disease, a broader or narrower one, or several diagnoses)."
)


@dataclass
class JudgeReport:
    near_misses: int = 0
    asked: int = 0
    cached: int = 0
    equivalent: int = 0
    different: int = 0
    failed: int = 0


def similarity(candidate: str, accepted: list[str]) -> float:
    """How close a candidate is to the nearest accepted name: the larger of the character ratio and the share
    of the accepted name's words that the candidate contains (0-1)."""
    text = normalise_term(candidate)
    best = 0.0
    for name in accepted:
        target = normalise_term(name)
        if not target or not text:
            continue
        ratio = difflib.SequenceMatcher(None, text, target).ratio()
        words = set(target.split())
        share = len(words & set(text.split())) / len(words)
        best = max(best, ratio, share)
    return best


def verdict_of(reply: str | None) -> str | None:
    words = normalise_term(reply or "").split()
    if "equivalent" in words[:3] and "different" not in words[:3]:
        return "equivalent"
    if "different" in words[:3]:
        return "different"
    return None


def judge_near_misses(recipe: Recipe, catalog: Catalog) -> JudgeReport:
    """Judge every unverified open answer close enough to an accepted name; update the generations."""
    report = JudgeReport()
    if not backend_of(recipe).is_model:
        return report  # the offline drafter is no judge
    threshold = recipe.tasks.complex.judge_min_similarity
    rows = iter_unverified_answers(catalog, str(QuestionType.OPEN))  # streamed
    wanted: list[tuple[Generation, Item, str]] = []
    for generation_json, item_json in rows:
        generation, item = Generation.model_validate_json(generation_json), Item.model_validate_json(item_json)
        candidate = generation.extracted_answer
        if generation.failure not in (None, "wrong_answer") or not candidate or generation.judge:
            continue
        accepted = [item.answer.text, *item.answer.aliases]
        if similarity(candidate, accepted) < threshold:
            continue
        report.near_misses += 1
        wanted.append((generation, item, _fingerprint(recipe, item, candidate)))
    known = judgement_verdicts(catalog)
    pending = [(g, i, f) for g, i, f in wanted if f not in known]
    report.cached = len(wanted) - len(pending)
    unique = {f: (i, g.extracted_answer or "") for g, i, f in pending}
    replies = ask(recipe.teacher, [(f, _messages(item, candidate)) for f, (item, candidate) in unique.items()])
    new_rows = []
    for fingerprint, (item, candidate) in unique.items():
        reply = replies[fingerprint]
        report.asked += 1
        verdict = verdict_of(reply.text)
        if verdict is None:
            report.failed += 1
            continue
        known[fingerprint] = verdict
        new_rows.append(
            {
                "fingerprint": fingerprint,
                "item_id": item.item_id,
                "candidate": candidate,
                "verdict": verdict,
                "model": recipe.teacher.model,
                "reply": (reply.text or "")[:200],
            }
        )
    catalog.insert("judgements", new_rows)
    updated = []
    for generation, _, fingerprint in wanted:
        verdict = known.get(fingerprint)
        if verdict is None:
            continue
        equivalent = verdict == "equivalent"
        report.equivalent += equivalent
        report.different += not equivalent
        updated.append(
            generation.model_copy(
                update={"judge": verdict, "verified": equivalent, "failure": None if equivalent else "wrong_answer"}
            )
        )
    catalog.add_generations(updated)
    return report


def _fingerprint(recipe: Recipe, item: Item, candidate: str) -> str:
    accepted = sorted({item.answer.text, *item.answer.aliases})
    return stable_hash(recipe.teacher.model, PROMPT_VERSION, SYSTEM, *accepted, "|", candidate, length=32)


def _messages(item: Item, candidate: str) -> list[dict[str, str]]:
    others = ", ".join(item.answer.aliases) or "none"
    text = f"Accepted diagnosis: {item.answer.text}\nOther accepted names: {others}\nCandidate answer: {candidate}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
