"""Conformance of every registered trace check: it is described for the report, names real recipe fields,
fires on a sample that trips it (and is the first to fire there) and passes a good trace."""

from __future__ import annotations

import pytest

from retinal_reason_data.curation.filters import TRACE_REASONS, trace_problem
from retinal_reason_data.curation.report import REASONS
from retinal_reason_data.curation.trace_checks import TRACE_CHECKS, Trace, TraceCheck, trace_check
from retinal_reason_data.recipe import FiltersSpec

GOOD = (
    "<think>\nStep 1: This is a colour fundus photograph of the posterior pole.\n"
    "Step 2: There are dot and blot haemorrhages with hard exudates in all quadrants.\n"
    "Step 3: These findings define severe non-proliferative disease.\nStep 4: Therefore the answer is B.\n"
    "</think>\n<answer>B</answer>"
)
THINK = GOOD.split("<think>\n")[1].split("\n</think>")[0]

# one response per registered reason that trips it under the default recipe (a new check needs a line here)
TRIPS = {
    "malformed_tags": "<answer>B</answer>",
    "think_too_short": "<think>Short.</think><answer>B</answer>",
    "think_too_long": f"<think>{THINK * 80}</think><answer>B</answer>",
    "answer_too_long": f"<think>{THINK}</think><answer>{'B because of many reasons ' * 30}</answer>",
    "repetitive": "<think>" + "\n".join(["The disc looks normal."] * 8) + "</think><answer>B</answer>",
    "non_english": "<think>这是一张彩色眼底照片。可见视网膜出血和硬性渗出，"
    + "符合重度非增殖性糖尿病视网膜病变。因此答案是B。</think><answer>B</answer>",
    "refusal": f"<think>I'm sorry, but I cannot provide a diagnosis. {THINK}</think><answer>B</answer>",
    "hedging": f"<think>I'm not sure. It is difficult to say. {THINK}</think><answer>B</answer>",
    "given_answer": f"<think>I was told the answer is B. {THINK}</think><answer>B</answer>",
}

CHECKS = pytest.mark.parametrize("check", TRACE_CHECKS, ids=[check.reason for check in TRACE_CHECKS])


def test_the_registry_is_the_list_of_trace_reasons() -> None:
    assert tuple(check.reason for check in TRACE_CHECKS) == TRACE_REASONS
    assert len(set(TRACE_REASONS)) == len(TRACE_REASONS)
    assert set(TRIPS) == set(TRACE_REASONS), "every registered check needs a sample that trips it"


@CHECKS
def test_a_check_is_described_in_the_report(check: TraceCheck) -> None:
    assert check.description.strip()
    assert REASONS[check.reason] == check.description


@CHECKS
def test_a_check_names_real_recipe_fields(check: TraceCheck) -> None:
    for name in check.recipe_fields:
        assert name in FiltersSpec.model_fields


@CHECKS
def test_a_check_trips_on_its_sample_and_passes_a_good_trace(check: TraceCheck) -> None:
    spec = FiltersSpec()
    assert check.fires(Trace.parse(TRIPS[check.reason]), spec)
    assert trace_problem(TRIPS[check.reason], spec) == check.reason
    assert not check.fires(Trace.parse(GOOD), spec)
    assert trace_problem(GOOD, spec) is None


def test_every_trace_field_of_the_recipe_belongs_to_a_check() -> None:
    claimed = {name for check in TRACE_CHECKS for name in check.recipe_fields}
    not_trace_fields = {"images", "answer_in_question"}
    assert set(FiltersSpec.model_fields) - not_trace_fields == claimed


def test_a_check_is_registered_once_and_with_known_fields() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        trace_check("refusal", "again")(lambda trace, spec: False)
    with pytest.raises(ValueError, match="unknown recipe fields"):
        trace_check("new_check", "a check", "no_such_field")(lambda trace, spec: False)
    assert [check.reason for check in TRACE_CHECKS] == list(TRACE_REASONS)
