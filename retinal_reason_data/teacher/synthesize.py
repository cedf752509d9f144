"""The synthesis stage: ask the teacher for every missing attempt, verify, commit each reply as it lands."""

from __future__ import annotations

import asyncio
import base64
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tqdm import tqdm

from retinal_reason_data.catalog import Catalog, dumps
from retinal_reason_data.imaging import open_image
from retinal_reason_data.ontology import Ontology
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Case, Generation, Item
from retinal_reason_data.teacher import offline
from retinal_reason_data.teacher.prompts import PROMPT_VERSION, build_messages, request_fingerprint
from retinal_reason_data.teacher.requests import Reply, Request, generation_params
from retinal_reason_data.verify import score


@dataclass
class SynthesisReport:
    requests: int = 0
    cache_hits: int = 0
    verified: int = 0
    failed: Counter[str] = field(default_factory=Counter)


def teacher_identity(recipe: Recipe) -> tuple[str, dict[str, object]]:
    """The model name and parameters that enter every request fingerprint."""
    spec = recipe.teacher
    if spec.kind == "offline":
        return offline.MODEL_NAME, {"error_rate": spec.offline_error_rate, "seed": recipe.seed}
    return spec.model, generation_params(spec)


def _attempts(
    catalog: Catalog, recipe: Recipe, report: SynthesisReport, progress: tqdm
) -> Iterator[tuple[Item, Case, int, str]]:
    model, params = teacher_identity(recipe)
    answered = catalog.answered_fingerprints()
    for item, case in catalog.iter_items_with_cases():
        for attempt in range(1, recipe.teacher.attempts + 1):
            fingerprint = request_fingerprint(model, params, item, attempt)
            if fingerprint in answered:
                report.cache_hits += 1
                progress.update()
                continue
            yield item, case, attempt, fingerprint


def synthesize(recipe: Recipe, catalog: Catalog, ontology: Ontology) -> SynthesisReport:
    """Draft traces for every item and attempt not yet answered; a rerun sends nothing it already has."""
    report = SynthesisReport()
    model, _ = teacher_identity(recipe)
    total = catalog.count("items") * recipe.teacher.attempts
    progress = tqdm(total=total, desc=f"synthesize ({model})", unit="req", leave=False, disable=None)

    batch: list[Generation] = []
    batch_size = 256 if recipe.teacher.kind == "offline" else 1  # remote replies are committed one by one

    def record(item: Item, attempt: int, fingerprint: str, reply: Reply) -> None:
        report.requests += 1
        verdict = score(item.question_type, item.answer.text, item.answer.aliases, reply.text or "")
        generation = Generation(
            fingerprint=fingerprint,
            item_id=item.item_id,
            attempt=attempt,
            model=model,
            prompt_version=PROMPT_VERSION,
            response=reply.text,
            extracted_answer=verdict.extracted,
            verified=reply.error is None and verdict.correct,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            latency_s=round(reply.latency_s, 4),
            error=reply.error,
        )
        batch.append(generation)
        if len(batch) >= batch_size:
            catalog.add_generations(batch)
            batch.clear()
        if generation.verified:
            report.verified += 1
        else:
            report.failed[failure_reason(generation)] += 1
        progress.update()

    attempts = _attempts(catalog, recipe, report, progress)
    try:
        if recipe.teacher.kind == "offline":
            for item, case, attempt, fingerprint in attempts:
                text = offline.draft(item, case, ontology, attempt, recipe.teacher.offline_error_rate, recipe.seed)
                tokens = len(text.split())
                record(item, attempt, fingerprint, Reply(text, 0, tokens, 0.0, None))
        else:
            from retinal_reason_data.teacher.openai_client import run_requests  # imports openai: only when used

            requests = (
                Request(fingerprint, item, attempt, build_messages(item, _image_urls(case, recipe)))
                for item, case, attempt, fingerprint in attempts
            )
            asyncio.run(
                run_requests(
                    recipe.teacher, requests, lambda req, reply: record(req.item, req.attempt, req.fingerprint, reply)
                )
            )
    finally:
        catalog.add_generations(batch)
        progress.close()
        catalog.bump("teacher.requests_total", report.requests)
        catalog.set_meta("last_synthesis", dumps({"requests": report.requests, "cache_hits": report.cache_hits}))
    return report


def failure_reason(generation: Generation) -> str:
    """Why an attempt does not count: its transport error, missing tags, or a wrong answer."""
    if generation.error:
        return generation.error
    if generation.extracted_answer is None:
        return "missing_tags"
    return "wrong_answer"


def _image_urls(case: Case, recipe: Recipe) -> list[str]:
    return [image_data_url(image.path, recipe.teacher.image_max_side) for image in case.images]


@lru_cache(maxsize=1024)
def image_data_url(path: str, max_side: int) -> str:
    """A JPEG data URL of the image, resized to `max_side` from a reduced decode; encoded once per image."""
    image = open_image(Path(path).read_bytes(), path, reduce_to=max_side)
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
