"""evaluation.metrics: the numbers of a run on hand-made responses whose right values are known."""

from __future__ import annotations

import json
import random
from itertools import combinations

import numpy as np
import pytest

from retinal_reason_data.evaluation.metrics import (
    interval,
    majority_is_right,
    resampled_means,
    summarise,
    vote_key,
)
from tests.helpers.eval_rows import row


def test_accuracy_and_format_per_group_are_the_shares_of_samples() -> None:
    rows = [
        row("b1", right=True, modality="CFP"),
        row("b2", right=True, modality="OCT"),
        row("b3", right=True, modality="CFP", well_formed=False),
        row("b4", right=False, modality="CFP"),
        row("c1", right=True, task="complex", modality="FFA", source="cases"),
        row("c2", right=False, task="complex", modality="FFA", source="cases", well_formed=False),
    ]
    summary = summarise(rows)
    assert (summary["samples"], summary["attempts"], summary["responses"], summary["failed"]) == (6, 1, 6, 0)
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["format_rate"] == pytest.approx(4 / 6)
    assert summary["mean_score"] == pytest.approx((4 * 0.9 + 4 * 0.1) / 6)
    basic, complex_ = summary["by_task"]["basic"], summary["by_task"]["complex"]
    assert (basic["count"], basic["accuracy"], basic["format_rate"]) == (4, 0.75, 0.75)
    assert (complex_["count"], complex_["accuracy"], complex_["format_rate"]) == (2, 0.5, 0.5)
    assert list(summary["by_modality"]) == ["CFP", "FFA", "OCT"]  # ordered by name
    assert {name: group["count"] for name, group in summary["by_modality"].items()} == {"CFP": 3, "FFA": 2, "OCT": 1}
    assert summary["by_modality"]["CFP"]["accuracy"] == pytest.approx(2 / 3)
    assert {name: group["count"] for name, group in summary["by_source"].items()} == {"cases": 2, "demo": 4}
    assert summary["by_question_type"]["single_choice"]["accuracy"] == pytest.approx(4 / 6)
    assert "pass_at_k" not in summary and "majority_vote" not in summary  # one attempt: neither
    assert json.loads(json.dumps(summary)) == summary  # run.json keeps it as it is


def test_accuracy_with_attempts_is_the_mean_over_samples_of_each_samples_mean() -> None:
    # s1: 1 of 2 attempts right (0.5); s2: one attempt landed, right (1.0): 0.75 per sample, not 2/3 per response
    rows = [row("s1", 1, True), row("s1", 2, False), row("s2", 1, True)]
    summary = summarise(rows)
    assert summary["accuracy"] == pytest.approx(0.75)
    assert (summary["samples"], summary["attempts"], summary["responses"]) == (2, 2, 3)


def test_failed_calls_are_counted_and_score_as_wrong_attempts() -> None:
    rows = [row("s1", 1, True), row("s1", 2, error="timeout"), row("s2", 1, error="server_error"), row("s2", 2, True)]
    summary = summarise(rows)
    assert summary["failed"] == 2
    assert summary["accuracy"] == pytest.approx(0.5)
    assert summary["format_rate"] == pytest.approx(0.5)


def test_rows_in_any_order_give_the_same_summary() -> None:
    rows = [row(f"s{i}", a, (i * a) % 3 != 0, task=["basic", "complex"][i % 2]) for i in range(30) for a in (1, 2, 3)]
    shuffled = rows[:]
    random.Random(4).shuffle(shuffled)
    assert summarise(shuffled) == summarise(rows)


def brute_pass_at_k(outcomes: list[list[bool]], k: int) -> float:
    """The share of k-subsets of each sample's attempts holding a right one, averaged over samples."""
    shares = []
    for attempts in outcomes:
        subsets = list(combinations(attempts, k))
        shares.append(sum(any(subset) for subset in subsets) / len(subsets))
    return sum(shares) / len(shares)


def test_pass_at_k_is_the_unbiased_estimator_checked_by_enumeration() -> None:
    generator = random.Random(7)
    outcomes = [[generator.random() < share for _ in range(5)] for share in (0.0, 0.1, 0.3, 0.5, 0.8, 1.0) * 4]
    rows = [row(f"s{i:02d}", a + 1, right) for i, attempts in enumerate(outcomes) for a, right in enumerate(attempts)]
    summary = summarise(rows)
    assert list(summary["pass_at_k"]) == ["1", "2", "3", "4", "5"]
    for k in range(1, 6):
        assert summary["pass_at_k"][str(k)] == pytest.approx(brute_pass_at_k(outcomes, k), abs=1e-12)
    assert summary["pass_at_k"]["1"] == pytest.approx(summary["accuracy"])
    values = [summary["pass_at_k"][str(k)] for k in range(1, 6)]
    assert values == sorted(values) and values[0] < values[-1]


def test_pass_at_k_counts_only_samples_with_at_least_k_attempts() -> None:
    # s1: 3 attempts, one right; s2: a single (wrong) attempt landed
    rows = [row("s1", 1, False), row("s1", 2, False), row("s1", 3, True), row("s2", 1, False)]
    pass_at = summarise(rows)["pass_at_k"]
    assert pass_at["1"] == pytest.approx((1 / 3 + 0) / 2)
    assert pass_at["2"] == pytest.approx(1 - 1 / 3)  # s1 alone: 1 - C(2,2)/C(3,2)
    assert pass_at["3"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        ([("B", 1), ("B", 1), ("C", 0)], True),  # 2 to 1
        ([("B", 1), ("B", 1), ("C", 0), ("C", 0)], False),  # a tie with a wrong answer is wrong
        ([("B", 1), ("B", 1), ("C", 0), ("D", 0), ("A", 0)], True),  # the wrong votes are split
        ([("B", 1), ("B", 1), ("C", 0), ("(c)", 0)], False),  # 'C' and '(c)' are one wrong answer: a tie
        ([("B", 1), (None, 0), (None, 0)], True),  # a reply with no answer votes for nothing
        ([("B", 0), ("B", 1), ("C", 0)], True),  # 'B' voided in one attempt still votes for the right answer
        ([(None, 0), (None, 0)], False),  # no votes at all
        ([("C", 0), ("C", 0), ("D", 0)], False),  # no attempt right
    ],
)
def test_majority_vote_rules(attempts: list[tuple[str | None, int]], expected: bool) -> None:
    answers = [answer for answer, _ in attempts]
    right = [good for _, good in attempts]
    assert majority_is_right("single_choice", right, [None] * len(attempts), answers) is expected


def test_majority_vote_merges_right_spellings_and_ignores_failed_calls() -> None:
    # VKH and its full name are both judged right: one answer with two votes against one wrong
    names = ["VKH", "Vogt-Koyanagi-Harada disease", "sympathetic ophthalmia"]
    assert majority_is_right("open", [1, 1, 0], [None] * 3, names)
    # a failed call votes for nothing, even when its row carries an answer
    assert majority_is_right("single_choice", [1, 0, 0, 0], [None, "timeout", "timeout", None], ["B", "C", "C", None])
    assert not majority_is_right("single_choice", [1, 0, 0], [None, None, None], ["B", "C", "c."])


def test_vote_keys_normalise_letters_truth_values_and_names() -> None:
    assert vote_key("C, A", "multiple_choice") == vote_key("a and c", "multiple_choice") == "A,C"
    assert vote_key("Yes.", "true_false") == vote_key("**True**", "true_false") == "true"
    assert vote_key("Diabetic Retinopathy.", "open") == vote_key("diabetic retinopathy", "open")
    assert vote_key("   ", "open") is None


def test_majority_vote_in_the_summary() -> None:
    rows = [
        *[row("s1", a, right) for a, right in enumerate([True, True, False], 1)],  # right
        *[row("s2", a, right) for a, right in enumerate([True, False, False], 1)],  # wrong
        *[row("s3", a, right) for a, right in enumerate([False, False, False], 1)],  # wrong
        *[row("s4", a, True) for a in (1, 2, 3)],  # right
    ]
    majority = summarise(rows)["majority_vote"]
    assert majority["accuracy"] == pytest.approx(0.5)
    low, high = majority["ci95"]["accuracy"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0


def test_interval_contains_the_estimate_and_narrows_with_more_samples() -> None:
    widths = []
    for n in (40, 400, 4000):
        rows = [row(f"s{i:05d}", right=i % 10 < 7) for i in range(n)]
        summary = summarise(rows)
        low, high = summary["ci95"]["accuracy"]
        assert summary["accuracy"] == pytest.approx(0.7)
        assert low < summary["accuracy"] < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # a binomial share's 95 % interval is about 2 x 1.96 x sqrt(p(1-p)/n) wide
    assert widths[2] == pytest.approx(2 * 1.96 * (0.7 * 0.3 / 4000) ** 0.5, rel=0.1)


def test_intervals_are_seeded_and_deterministic() -> None:
    rows = [row(f"s{i:03d}", right=i % 3 == 0, task=["basic", "complex"][i % 2]) for i in range(300)]
    first, again = summarise(rows, seed=3), summarise(rows, seed=3)
    assert first == again
    few = summarise(rows, resamples=40, seed=3)["by_task"]  # few resamples: the percentiles move with the seed
    assert summarise(rows, resamples=40, seed=4)["by_task"] != few
    # an interval depends on its own name and the seed, not on which others were computed before it
    alone = summarise([r for r in rows if r.task == "basic"], seed=3)["by_task"]["basic"]
    assert alone["ci95"] == first["by_task"]["basic"]["ci95"]


def test_resampled_means_match_resampling_the_samples() -> None:
    """The multinomial draw over distinct values and the chunked index draw (many distinct values) both give the
    bootstrap distribution of the mean: centred on the mean, spread sd / sqrt(n), percentiles as plain resampling."""
    values = np.array([0.0] * 300 + [0.5] * 100 + [1.0] * 600)
    plain_rng = np.random.default_rng(11)
    plain = values[plain_rng.integers(0, len(values), size=(4000, len(values)))].mean(axis=1)
    counted = resampled_means(values, np.random.default_rng(12), 4000)
    assert counted.mean() == pytest.approx(values.mean(), abs=0.002)
    assert counted.std() == pytest.approx(plain.std(), rel=0.06)
    assert np.percentile(counted, [2.5, 97.5]) == pytest.approx(np.percentile(plain, [2.5, 97.5]), abs=0.004)
    continuous = np.random.default_rng(13).random(6000)  # 6,000 distinct values: the chunked path
    chunked = resampled_means(continuous, np.random.default_rng(14), 500)
    assert chunked.mean() == pytest.approx(continuous.mean(), abs=0.002)
    assert chunked.std() == pytest.approx(continuous.std() / len(continuous) ** 0.5, rel=0.12)


def test_interval_of_a_constant_is_that_constant_and_of_nothing_is_none() -> None:
    assert interval(np.ones(50), resamples=200, seed=0, label="x") == [1.0, 1.0]
    assert interval(np.zeros(0), resamples=200, seed=0, label="x") is None


def test_no_rows_give_counts_of_zero_and_no_rates() -> None:
    summary = summarise([])
    assert (summary["samples"], summary["responses"], summary["accuracy"]) == (0, 0, None)
    assert summary["ci95"] == {"accuracy": None, "format_rate": None}
    assert summary["by_task"] == {}


def test_bad_rows_are_refused_naming_the_sample() -> None:
    with pytest.raises(ValueError, match=r"sample 's1' has attempt 2 twice"):
        summarise([row("s1", 1), row("s1", 2), row("s1", 2)])
    with pytest.raises(ValueError, match=r"sample 's2': its attempts disagree on task \('basic' and 'complex'\)"):
        summarise([row("s1", 1), row("s2", 1), row("s2", 2, task="complex")])
    with pytest.raises(ValueError, match="resamples must be at least 1"):
        summarise([row("s1")], resamples=0)
