"""The teacher as a second reader of case reports: a complex item is released only where the rules and the
teacher (its `rrd extract` reading) agree on the diagnosis.

With a model as the teacher (`teacher.kind: openai`), every case read from an article's text (it has
`case_text`) needs the teacher's reading of that text under the current model and extraction prompt: where the
two diagnoses name the same condition (same ontology concept, or one phrase within the other once normalised,
abbreviations included) its complex items are exported; where they differ, where the teacher found none, where
its reply was not valid JSON, or where it has not read the case yet (`rrd extract` not run), the items are
withheld (drops of stage `readers`) and go to the review page's `second_reader` queue. An annotator who accepts
(or edits) a trace of such an item settles it: the reference answer stands, and the next build exports it.

With the offline teacher there is no second reader: only the rules read the articles, and nothing is withheld.
Cases given as structured records (no article text to read) are not gated either.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.catalog.curation import assigned_items_of_task, count_drops, delete_drops, withhold_items
from retinal_reason_data.catalog.teacher import stored_readings
from retinal_reason_data.ontology import Ontology
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.review.verdicts import read_verdicts, verdict_folder
from retinal_reason_data.schema import Case, Decision
from retinal_reason_data.teacher.backends import backend_of
from retinal_reason_data.teacher.extraction import TeacherExtraction, reading_fingerprint, same_diagnosis

STAGE = "readers"
QUEUE = "second_reader"
OUTCOMES = ("agree", "disagree", "missing", "invalid")


@dataclass
class SecondReading:
    """How the teacher's reading of one case compares with the rules'."""

    outcome: str  # agree | disagree | missing | invalid
    teacher: str | None = None
    detail: str = ""


@dataclass
class SecondReaderReport:
    enabled: bool = False
    cases: Counter[str] = field(default_factory=Counter)  # outcome -> cases
    items_withheld: int = 0
    items_settled_in_review: int = 0

    def to_dict(self, model: str | None) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "readers": ["rules", f"teacher:{model}"] if self.enabled else ["rules"],
            "cases": {outcome: self.cases.get(outcome, 0) for outcome in OUTCOMES},
            "items_withheld": self.items_withheld,
            "items_settled_in_review": self.items_settled_in_review,
        }


def enabled(recipe: Recipe) -> bool:
    """A second reader exists only when the teacher is a model (and the recipe keeps `tasks.complex.second_reader`)."""
    return backend_of(recipe).is_model and recipe.tasks.complex.second_reader


def second_readings(recipe: Recipe, catalog: Catalog, ontology: Ontology) -> dict[str, SecondReading]:
    """Case id -> the comparison, for every case read from an article's text (the current model and prompt)."""
    stored = stored_readings(catalog)
    readings: dict[str, SecondReading] = {}
    for case in catalog.iter_cases():
        if not case.context.case_text or not case.context.diagnosis:
            continue
        row = stored.get(reading_fingerprint(recipe.teacher.model, case.context.case_text))
        readings[case.case_id] = compare_reading(case, row, ontology)
    return readings


def compare_reading(case: Case, row: tuple[str | None, str | None] | None, ontology: Ontology) -> SecondReading:
    """The teacher's stored reading of a case (teacher JSON, error) against the rules' diagnosis."""
    rules = case.context.diagnosis or ""
    if row is None:
        return SecondReading("missing", detail="the teacher has not read this case: run `rrd extract RECIPE`")
    teacher_json, error = row
    if error or not teacher_json:
        return SecondReading("invalid", detail=f"the teacher's reading could not be used ({error or 'empty'})")
    teacher = TeacherExtraction.model_validate(json.loads(teacher_json)).final_diagnosis
    if same_diagnosis([rules, *case.context.diagnosis_aliases], teacher, ontology):
        return SecondReading("agree", teacher=teacher)
    said = f"'{teacher}'" if teacher else "no diagnosis"
    return SecondReading("disagree", teacher=teacher, detail=f"the rules read '{rules}', the teacher {said}")


def _settled_items(recipe: Recipe) -> set[str]:
    """Items an annotator accepted or edited a trace of (the reference answer stands)."""
    log = read_verdicts(verdict_folder(recipe))
    return {
        item_id
        for (item_id, _), review in log.reviews().items()
        if review.decision in (Decision.ACCEPT, Decision.EDIT) and not review.item_rejected
    }


def withhold_disagreements(recipe: Recipe, catalog: Catalog, ontology: Ontology) -> SecondReaderReport:
    """After curation: take out of the release every complex item whose case the two readers do not agree on
    (unless review settled it), recording why (drops of stage `readers`)."""
    report = SecondReaderReport(enabled=enabled(recipe))
    delete_drops(catalog, STAGE)
    if not report.enabled:
        return report
    readings = second_readings(recipe, catalog, ontology)
    report.cases.update(reading.outcome for reading in readings.values())
    settled = _settled_items(recipe)
    drops, withheld = [], []
    for item_id, case_id in assigned_items_of_task(catalog, "complex"):
        reading = readings.get(case_id)
        if reading is None or reading.outcome == "agree":
            continue
        if item_id in settled:
            report.items_settled_in_review += 1
            continue
        withheld.append(item_id)
        drops.append({"item_id": item_id, "stage": STAGE, "reason": f"readers_{reading.outcome}", "detail": (
            f"case {case_id}: {reading.detail} (review queue '{QUEUE}')"
        )})  # fmt: skip
    report.items_withheld = len(withheld)
    withhold_items(catalog, drops, withheld)
    return report


def second_reader_stats(recipe: Recipe, catalog: Catalog, ontology: Ontology) -> dict[str, Any]:
    """The `second_reader` key of `rrd stats --json`: readers, cases by outcome, items withheld and settled."""
    report = SecondReaderReport(enabled=enabled(recipe))
    if report.enabled:
        report.cases.update(reading.outcome for reading in second_readings(recipe, catalog, ontology).values())
        report.items_withheld = count_drops(catalog, STAGE)
        settled = _settled_items(recipe)
        if settled:
            rows = assigned_items_of_task(catalog, "complex")
            report.items_settled_in_review = sum(item_id in settled for item_id, _ in rows)
    return report.to_dict(recipe.teacher.model if report.enabled else None)


def card_section(second_reader: dict[str, Any] | None, complex_rows: int) -> str:
    """The card's note on who read the case reports (empty when the release has no complex rows)."""
    if not complex_rows:
        return ""
    if not second_reader or not second_reader.get("enabled"):
        return (
            "## Case-report answers\n\nThe diagnoses of the complex rows were read from the articles by rules "
            "only (explicit diagnostic statements; nothing the article rules out or calls an earlier diagnosis). "
            "The teacher of this build was the offline drafter, so no second reader checked them.\n"
        )
    cases = second_reader["cases"]
    return (
        f"## Case-report answers\n\nThe diagnoses of the complex rows were read from the articles twice: by rules "
        f"(explicit diagnostic statements) and by the teacher (`{second_reader['readers'][1].split(':', 1)[1]}`). "
        f"A complex item is released only where both agree: {cases['agree']} case reports agreed, "
        f"{cases['disagree']} disagreed, {cases['missing']} were not read by the teacher and {cases['invalid']} "
        f"got no usable reading; {second_reader['items_withheld']} items were withheld for review "
        f"({second_reader['items_settled_in_review']} released after an annotator settled them).\n"
    )
