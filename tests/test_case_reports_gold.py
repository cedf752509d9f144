"""Case reports on a real gold set (tests/data/real/case_reports: openly licensed PMC articles annotated by hand):
the real `pmc_oa` adapter and the complex-item builder, through the benchmark's own evaluation, export no wrong
answer, read age and sex as the annotators did, and show no question or caption that gives the diagnosis away."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLD = REPO / "tests" / "data" / "real" / "case_reports" / "gold.jsonl"


@pytest.fixture(scope="module")
def results() -> list:
    spec = importlib.util.spec_from_file_location("case_reports_gold", REPO / "benchmarks" / "case_reports_gold.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module.evaluate(GOLD)


def test_every_gold_case_is_read_and_no_exported_answer_is_wrong(results: list) -> None:
    assert {r.article for r in results} == {"PMC10754557", "PMC13261293"} and len(results) == 3  # 2 + 1 cases
    wrong = [(r.article, r.case, r.answer, r.gold_diagnosis) for r in results if r.verdict == "wrong"]
    assert wrong == []
    exported = [r for r in results if r.item]
    assert len(exported) == 3 and all(r.verdict == "right" for r in exported)


def test_age_and_sex_are_read_as_the_annotators_read_them(results: list) -> None:
    for r in results:
        if r.gold_age is not None:
            assert r.age == r.gold_age, (r.article, r.case)  # PMC13261293 writes '7\u2010year\u2010old'
        if r.gold_sex is not None:
            assert r.sex == r.gold_sex, (r.article, r.case)


def test_no_exported_question_or_caption_gives_the_diagnosis_away(results: list) -> None:
    for r in results:
        if r.item:
            assert r.leaked == [], (r.article, r.case, r.leaked)
            assert "What is the most likely diagnosis?" in r.question and r.captions  # captions kept, scrubbed
