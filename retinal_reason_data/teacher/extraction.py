"""A second reading of each case report by the teacher: the same fields as the rule-based extractor, as JSON
validated by pydantic, compared field by field with the rules; disagreements are flagged for review.

Replies are stored in the catalog table `extractions` under a fingerprint of the model, the prompt version
and the case text, so a rerun asks only for cases it has not read yet.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retinal_reason_data.catalog import Catalog, dumps
from retinal_reason_data.catalog.teacher import extraction_fingerprints, iter_extraction_outcomes
from retinal_reason_data.ingest.casereports.clinical import Extracted, map_diagnosis
from retinal_reason_data.ontology import Ontology
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.schema import Case
from retinal_reason_data.teacher.backends import backend_of
from retinal_reason_data.teacher.calls import ask
from retinal_reason_data.text import normalise_term, stable_hash

PROMPT_VERSION = "extract-v2"
TEXT_FIELDS = ("chief_complaint", "history_of_present_illness", "past_history", "examination")
MIN_OVERLAP = 0.5
_JSON = re.compile(r"\{.*\}", re.DOTALL)


class TeacherExtraction(BaseModel):
    """What the teacher must return (extra keys are ignored, wrong types are an error)."""

    model_config = ConfigDict(extra="ignore")

    age: int | None = Field(default=None, ge=0, le=120)
    sex: str | None = Field(default=None, pattern="^(F|M)$")
    chief_complaint: str | None = None
    history_of_present_illness: str | None = None
    past_history: str | None = None
    examination: str | None = None
    final_diagnosis: str | None = None


SYSTEM = (
    "You read ophthalmic case reports and extract facts exactly as written. Reply with one JSON object and "
    "nothing else, with the keys: age (integer years or null), sex ('F', 'M' or null), chief_complaint, "
    "history_of_present_illness, past_history, examination (findings before imaging), final_diagnosis "
    "(a short noun phrase: the diagnosis the authors finally made for this patient, with abbreviations written "
    "out; not an earlier or mistaken diagnosis, not a condition that was excluded or whose criteria were not "
    "met). Use null for anything the text does not say."
)


def reading_fingerprint(model: str, case_text: str) -> str:
    """The key of the teacher's reading of one case text under this model and prompt."""
    return stable_hash(model, PROMPT_VERSION, SYSTEM, case_text, length=32)


def messages(case_text: str, title: str | None) -> list[dict[str, Any]]:
    heading = f"Title: {title}\n\n" if title else ""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{heading}Case report:\n{case_text}"}]


def parse_reply(text: str) -> TeacherExtraction:
    """The reply's JSON object, validated; ValueError says what is wrong."""
    found = _JSON.search(text or "")
    if found is None:
        raise ValueError("no JSON object in the reply")
    try:
        return TeacherExtraction.model_validate(json.loads(found.group(0)))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"reply is not the expected JSON: {str(exc)[:300]}") from None


def _tokens(text: str | None) -> set[str]:
    return {word for word in normalise_term(text or "").split() if len(word) > 2}


def compare(rule: Extracted, teacher: TeacherExtraction, ontology: Ontology) -> dict[str, dict[str, Any]]:
    """Fields on which the two readings disagree: {field: {rule, teacher}}. Ages and sexes must be equal,
    diagnoses must map to the same ontology entry (or read the same), texts must share half their words."""
    found: dict[str, dict[str, Any]] = {}
    if rule.age != teacher.age:
        found["age"] = {"rule": rule.age, "teacher": teacher.age}
    if rule.sex != teacher.sex:
        found["sex"] = {"rule": rule.sex, "teacher": teacher.sex}
    both_none = not rule.final_diagnosis and not teacher.final_diagnosis
    if not both_none and not same_diagnosis([rule.final_diagnosis or ""], teacher.final_diagnosis, ontology):
        found["final_diagnosis"] = {"rule": rule.final_diagnosis, "teacher": teacher.final_diagnosis}
    for name in TEXT_FIELDS:
        ours, theirs = _tokens(getattr(rule, name)), _tokens(getattr(teacher, name))
        if not ours and not theirs:
            continue
        overlap = len(ours & theirs) / max(1, min(len(ours), len(theirs))) if ours and theirs else 0.0
        if overlap < MIN_OVERLAP:
            found[name] = {"rule": getattr(rule, name), "teacher": getattr(teacher, name)}
    return found


def same_diagnosis(names: list[str], other: str | None, ontology: Ontology) -> bool:
    """Whether `other` names the condition that any of `names` (a diagnosis and its aliases) names: the same
    ontology concept, the same short form, or one phrase of two words or more within the other once
    normalised (one word such as 'disease' or 'melanoma' is not enough)."""
    if not other or not other.strip():
        return False
    theirs = map_diagnosis(other, ontology)[1]
    wanted = normalise_term(other)
    for name in filter(None, names):
        ours = map_diagnosis(name, ontology)[1]
        if ours is not None and theirs is not None and ontology.same_concept(ours.code, theirs.code):
            return True
        normal = normalise_term(name)
        if name.strip() == other.strip() or (normal and normal == wanted):
            return True
        shorter, longer = sorted((normal, wanted), key=len)
        if len(shorter.split()) >= 2 and f" {shorter} " in f" {longer} ":  # 'chronic central serous ...'
            return True
    return False


def rule_reading(case: Case) -> Extracted:
    """The rule-based reading as stored with the case."""
    context = case.context
    return Extracted(
        age=case.age,
        sex=str(case.sex) if str(case.sex) in ("F", "M") else None,
        chief_complaint=context.chief_complaint,
        history_of_present_illness=context.history,
        past_history=context.past_history,
        examination=context.exam,
        final_diagnosis=context.diagnosis,
    )


@dataclass
class ExtractionReport:
    cases: int = 0
    asked: int = 0
    cached: int = 0
    agreed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    disagreements: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "asked": self.asked,
            "cached": self.cached,
            "agreed": self.agreed,
            "errors": dict(sorted(self.errors.items())),
            "disagreements": dict(sorted(self.disagreements.items())),
        }


def run_extraction(recipe: Recipe, catalog: Catalog, ontology: Ontology, limit: int | None = None) -> ExtractionReport:
    """Ask the teacher to read every case report that has its case text (those not read yet), store the
    readings and the disagreements, and count them. The readings are the second reader of the build: see
    `casereports.second_reader`."""
    if not backend_of(recipe).is_model:
        raise ValueError("teacher extraction needs an OpenAI-compatible teacher (teacher.kind: openai)")
    report = ExtractionReport()
    known = extraction_fingerprints(catalog)
    pending: list[tuple[str, Case]] = []
    for case in catalog.iter_cases():
        if not case.context.case_text:
            continue
        if limit is not None and report.cases >= limit:
            break
        report.cases += 1
        fingerprint = reading_fingerprint(recipe.teacher.model, case.context.case_text)
        if fingerprint in known:
            report.cached += 1
            continue
        pending.append((fingerprint, case))
    replies = ask(recipe.teacher, [(f, messages(c.context.case_text or "", c.context.title)) for f, c in pending])
    rows = []
    for fingerprint, case in pending:
        reply = replies[fingerprint]
        report.asked += 1
        if reply.text is None:  # no reply came back: not stored, asked again on the next run
            report.errors[reply.error or "empty"] += 1
            continue
        rule = rule_reading(case)
        teacher, disagreements, error = None, None, None
        try:
            parsed = parse_reply(reply.text)
            teacher = parsed.model_dump()
            disagreements = compare(rule, parsed, ontology)
        except ValueError as exc:
            error = f"invalid_reply: {exc}"
        rows.append(
            {
                "case_id": case.case_id,
                "fingerprint": fingerprint,
                "model": recipe.teacher.model,
                "rule": dumps(rule.model_dump()),
                "teacher": dumps(teacher) if teacher is not None else None,
                "disagreements": dumps(disagreements) if disagreements is not None else None,
                "error": error,
            }
        )
    catalog.insert("extractions", rows)
    for disagreements_json, error in iter_extraction_outcomes(catalog):
        if error:
            report.errors[error.split(":")[0]] += 1
        elif disagreements_json:
            fields = json.loads(disagreements_json)
            report.agreed += not fields
            report.disagreements.update(fields.keys())
    return report
