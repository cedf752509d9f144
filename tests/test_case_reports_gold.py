"""Case reports on real gold sets (tests/data/real/case_reports: openly licensed articles annotated by hand; two
full-text PMC articles, and 29 ophthalmic case-report abstracts wrapped in JATS): the real `pmc_oa` adapter and the
complex-item builder, through the benchmark's own evaluation, export no wrong answer, read age and sex as the
annotators did, and show no question or caption that gives the diagnosis away."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLD = REPO / "tests" / "data" / "real" / "case_reports"
# gold file -> (cases, fewest items the rules make of them today: a floor, so that a change that loses items fails)
SETS = {"gold.jsonl": (3, 3), "abstracts/gold.jsonl": (29, 10)}


def _benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("case_reports_gold", REPO / "benchmarks" / "case_reports_gold.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=sorted(SETS))
def results(request: pytest.FixtureRequest) -> tuple[str, list]:
    return request.param, _benchmark().evaluate(GOLD / request.param)


def test_every_gold_case_is_read_and_no_exported_answer_is_wrong(results: tuple[str, list]) -> None:
    name, found = results
    cases, fewest_items = SETS[name]
    assert len(found) == cases
    wrong = [(r.article, r.case, r.answer, r.gold_diagnosis) for r in found if r.verdict == "wrong"]
    assert wrong == []
    exported = [r for r in found if r.item]
    assert len(exported) >= fewest_items and all(r.verdict == "right" for r in exported)
    assert all(r.why_not for r in found if not r.item)  # every case without an item says why


def test_age_and_sex_are_read_as_the_annotators_read_them(results: tuple[str, list]) -> None:
    for r in results[1]:
        if r.gold_age is not None:
            assert r.age == r.gold_age, (r.article, r.case)  # PMC13261293 writes '7\u2010year\u2010old'
        if r.gold_sex is not None:
            assert r.sex == r.gold_sex, (r.article, r.case)


def test_no_exported_question_or_caption_gives_the_diagnosis_away(results: tuple[str, list]) -> None:
    for r in results[1]:
        if r.item:
            assert r.leaked == [], (r.article, r.case, r.leaked)
            assert "What is the most likely diagnosis?" in r.question
