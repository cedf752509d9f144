"""The numbers of an evaluation run: accuracy, format rate, their 95 % bootstrap intervals, per group, pass@k and
majority vote, from the scored responses (`ScoredResponse`, one per sample and attempt).

Rules, stated once:
- A sample is the unit. With K attempts a sample's accuracy is the mean of its attempts' accuracies, and the
  run's accuracy the mean over samples: the expected accuracy of one attempt. Format rate and mean score alike.
  A failed call (`error` set) keeps the scores its row holds (0: no reply), so it counts as a wrong attempt;
  `failed` says how many there were.
- Intervals: percentile bootstrap over samples (never over attempts: the attempts of a sample are not
  independent), `resamples` resamples, 2.5th and 97.5th percentiles. The resampled means are drawn exactly as
  resampling samples with replacement would give them, but counted per distinct value: a per-sample value takes
  few values (0 or 1 with one attempt, i/K with K), so a resample is a multinomial draw over those values, which
  costs the same for 100 samples or 100,000. Each interval has its own generator, seeded from `seed` and the
  interval's name (`by_task/basic/accuracy`), so an interval does not depend on which others were computed.
- pass@k (k = 1..K): Chen et al. (2021)'s unbiased estimator 1 - C(n-c, k) / C(n, k) per sample (n attempts,
  c of them right, i.e. accuracy 1), averaged over the samples with at least k attempts. pass@1 = accuracy
  when every accuracy is 0 or 1.
- Majority vote (K > 1): each attempt votes for the answer it gave, normalised (letter sets sorted, true/false
  read, names folded by `text.normalise_term`). An answer is right when the scorer judged it right in at least
  one attempt of the sample (so 'VKH' and 'Vogt-Koyanagi-Harada disease' are one vote, and a right answer voided
  in one attempt by text outside the answer block still votes for the right answer); a failed call, or a reply
  from which no answer was read, votes for nothing. The vote is right only when the right answer is the sole
  mode: a tie with a wrong answer counts as wrong, and so does a sample with no votes.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import comb
from typing import Any

import numpy as np

from retinal_reason_data.evaluation.samples import ScoredResponse
from retinal_reason_data.teacher.answers import parse_bool, parse_letters
from retinal_reason_data.text import normalise_term

GROUPINGS = ("task", "modality", "question_type", "source")
COLUMNS = ("sample_id", "attempt", *GROUPINGS, "error", "extracted", "format", "accuracy", "score")
_MULTINOMIAL_MAX_VALUES = 4096  # above this many distinct per-sample values, resample indices in chunks
_CHUNK_CELLS = 4_000_000  # indices drawn at once by the chunked resampler


@dataclass(frozen=True)
class PerSample:
    """The responses folded per sample, samples sorted by id; arrays are aligned with `sample_ids`."""

    sample_ids: list[str]
    groups: dict[str, np.ndarray]  # grouping -> the sample's task / modality / question type / source
    attempts: np.ndarray  # responses per sample
    accuracy: np.ndarray  # mean over the sample's attempts
    format: np.ndarray
    score: np.ndarray
    correct: np.ndarray  # attempts with accuracy 1
    majority: np.ndarray  # 1.0 when the majority vote is right (see the module's rules)
    extracted: list[tuple[str | None, ...]]  # the answers read, in attempt order
    responses: int
    failed: int

    def __len__(self) -> int:
        return len(self.sample_ids)


def columns_of(rows: Sequence[ScoredResponse]) -> dict[str, list[Any]]:
    """The columns `per_sample` reads, from ScoredResponse rows (or any objects with those attributes)."""
    return {name: [getattr(row, name) for row in rows] for name in COLUMNS}


def per_sample(columns: Mapping[str, Sequence[Any]]) -> PerSample:
    """Fold response columns (COLUMNS, one entry per response, any order) into one entry per sample.

    Raises ValueError naming the sample when one (sample_id, attempt) comes twice or a sample's attempts
    disagree on its task, modality, question type or source."""
    ids = np.asarray(columns["sample_id"], dtype=str)
    attempts = np.asarray(columns["attempt"], dtype=np.int64)
    order = np.lexsort((attempts, ids)) if len(ids) else np.zeros(0, dtype=np.int64)
    ids, attempts = ids[order], attempts[order]
    firsts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[firsts, len(ids)])
    twice = np.flatnonzero((ids[1:] == ids[:-1]) & (attempts[1:] == attempts[:-1]))
    if len(twice):
        raise ValueError(f"sample {str(ids[twice[0]])!r} has attempt {int(attempts[twice[0]])} twice")
    groups = {
        name: _consistent(name, np.asarray(columns[name], dtype=str)[order], ids, firsts, counts) for name in GROUPINGS
    }
    values = {name: np.asarray(columns[name], dtype=np.float64)[order] for name in ("accuracy", "format", "score")}
    errors = [columns["error"][i] for i in order]
    extracted = [columns["extracted"][i] for i in order]
    sums = {name: np.add.reduceat(array, firsts) if len(array) else array for name, array in values.items()}
    right = (values["accuracy"] >= 1.0).astype(np.int64)
    per_attempts = [tuple(extracted[start : start + count]) for start, count in zip(firsts, counts, strict=True)]
    majority = _majority(groups["question_type"], firsts, counts, right, errors, extracted)
    return PerSample(
        sample_ids=[str(ids[start]) for start in firsts],
        groups=groups,
        attempts=counts,
        accuracy=sums["accuracy"] / np.maximum(counts, 1),
        format=sums["format"] / np.maximum(counts, 1),
        score=sums["score"] / np.maximum(counts, 1),
        correct=np.add.reduceat(right, firsts) if len(right) else right,
        majority=majority,
        extracted=per_attempts,
        responses=len(ids),
        failed=sum(error is not None for error in errors),
    )


def _consistent(name: str, values: np.ndarray, ids: np.ndarray, firsts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The value of `name` per sample; ValueError when a sample's attempts disagree on it."""
    per_sample_values = values[firsts]
    differ = np.flatnonzero(values != np.repeat(per_sample_values, counts))
    if len(differ):
        row = differ[0]
        first = firsts[np.searchsorted(firsts, row, side="right") - 1]
        sample, one, other = str(ids[row]), str(values[first]), str(values[row])
        raise ValueError(f"sample {sample!r}: its attempts disagree on {name} ({one!r} and {other!r})")
    return per_sample_values


@lru_cache(maxsize=65536)
def vote_key(extracted: str, question_type: str) -> str | None:
    """The answer an attempt votes for: letters sorted ('A,C'), 'true'/'false', or the folded name."""
    text = extracted.strip()
    if not text:
        return None
    if question_type == "true_false":
        value = parse_bool(text)
        if value is not None:
            return "true" if value else "false"
    elif question_type != "open":
        letters = parse_letters(text)
        if letters:
            return ",".join(sorted(letters))
    return normalise_term(text) or text.lower()


def majority_is_right(question_type: str, right: Sequence[int], errors: Sequence[Any], answers: Sequence[Any]) -> bool:
    """One sample's majority vote over its attempts (aligned sequences); the module's rules."""
    if not any(right):
        return False
    if all(right):  # every attempt right (so none failed): the right answer has every vote
        return True
    keys = [
        None if error is not None or answer is None else vote_key(str(answer), question_type)
        for error, answer in zip(errors, answers, strict=True)
    ]
    right_keys = {key for key, good in zip(keys, right, strict=True) if good and key is not None}
    votes: Counter[str | bool] = Counter()
    for key, good, error in zip(keys, right, errors, strict=True):
        if error is None and (good or key in right_keys):
            votes[True] += 1
        elif key is not None:
            votes[key] += 1
    right_votes = votes.pop(True, 0)
    return right_votes > 0 and right_votes > max(votes.values(), default=0)


def _majority(
    question_types: np.ndarray,
    firsts: np.ndarray,
    counts: np.ndarray,
    right: np.ndarray,
    errors: list[Any],
    extracted: list[Any],
) -> np.ndarray:
    verdicts = np.zeros(len(firsts), dtype=np.float64)
    for index, (start, count) in enumerate(zip(firsts.tolist(), counts.tolist(), strict=True)):
        if count == 1:  # one vote: right when the attempt is
            verdicts[index] = right[start]
            continue
        end = start + count
        verdicts[index] = majority_is_right(
            str(question_types[index]), right[start:end].tolist(), errors[start:end], extracted[start:end]
        )
    return verdicts


def generator(seed: int, label: str) -> np.random.Generator:
    """The generator of one interval: seeded from the run's seed and the interval's name."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng([seed, zlib.crc32(label.encode("utf-8"))])


def resampled_means(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """`resamples` bootstrap means of `values` (resampled with replacement, same size)."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) <= _MULTINOMIAL_MAX_VALUES:
        draws = rng.multinomial(n, counts / n, size=resamples)
        return draws @ distinct / n
    means = np.empty(resamples)
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, step):
        size = min(step, resamples - start)
        means[start : start + size] = values[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return means


def interval(values: np.ndarray, *, resamples: int, seed: int, label: str) -> list[float] | None:
    """95 % percentile bootstrap interval [low, high] of the mean of `values`; None when there are none."""
    if len(values) == 0:
        return None
    means = resampled_means(values, generator(seed, label), resamples)
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _rates(samples: PerSample, index: np.ndarray, label: str, resamples: int, seed: int) -> dict[str, Any]:
    accuracy, fmt = samples.accuracy[index], samples.format[index]
    return {
        "count": len(index),
        "accuracy": _mean(accuracy),
        "format_rate": _mean(fmt),
        "ci95": {
            "accuracy": interval(accuracy, resamples=resamples, seed=seed, label=f"{label}accuracy"),
            "format_rate": interval(fmt, resamples=resamples, seed=seed, label=f"{label}format_rate"),
        },
    }


def by_group(samples: PerSample, name: str, *, resamples: int, seed: int) -> dict[str, dict[str, Any]]:
    """{group: {count, accuracy, format_rate, ci95}} for one grouping, groups ordered by name."""
    names, inverse = np.unique(samples.groups[name], return_inverse=True)
    inverse = inverse.ravel()
    return {
        str(group): _rates(samples, np.flatnonzero(inverse == position), f"by_{name}/{group}/", resamples, seed)
        for position, group in enumerate(names)
    }


def pass_at_k(attempts: np.ndarray, correct: np.ndarray, k: int) -> float | None:
    """Mean over the samples with at least k attempts of 1 - C(n-c, k) / C(n, k); None when there are none."""
    eligible = attempts >= k
    if not eligible.any():
        return None
    n, c = attempts[eligible].astype(np.int64), correct[eligible].astype(np.int64)
    width = int(n.max()) + 1
    pairs, inverse = np.unique(n * width + c, return_inverse=True)  # one code per distinct (n, c)
    estimates = np.array([1.0 - comb(int(p // width - p % width), k) / comb(int(p // width), k) for p in pairs])
    return float(estimates[inverse.ravel()].mean())


def summarise_samples(samples: PerSample, *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """`summarise` from responses already folded per sample."""
    everything = np.arange(len(samples))
    overall = _rates(samples, everything, "", resamples, seed)
    most = int(samples.attempts.max()) if len(samples) else 0
    summary: dict[str, Any] = {
        "samples": len(samples),
        "attempts": most,
        "responses": samples.responses,
        "failed": samples.failed,
        "accuracy": overall["accuracy"],
        "format_rate": overall["format_rate"],
        "mean_score": _mean(samples.score),
        "ci95": overall["ci95"],
    }
    for name in GROUPINGS:
        summary[f"by_{name}"] = by_group(samples, name, resamples=resamples, seed=seed)
    if most > 1:
        summary["pass_at_k"] = {str(k): pass_at_k(samples.attempts, samples.correct, k) for k in range(1, most + 1)}
        summary["majority_vote"] = {
            "accuracy": _mean(samples.majority),
            "ci95": {"accuracy": interval(samples.majority, resamples=resamples, seed=seed, label="majority_vote")},
        }
    summary["bootstrap"] = {"resamples": resamples, "seed": seed, "unit": "sample", "interval": "percentile 95 %"}
    return summary


def summarise(rows: Sequence[ScoredResponse], *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The run's numbers from its scored responses (any order): `samples`, `attempts` (most per sample),
    `responses`, `failed` (calls with an error), `accuracy`, `format_rate`, `mean_score`, `ci95` ({accuracy,
    format_rate}: [low, high]), `by_task`, `by_modality`, `by_question_type`, `by_source` ({group: {count,
    accuracy, format_rate, ci95}}, groups ordered by name, count in samples), with more than one attempt
    `pass_at_k` ({"1": ..., "K": ...}) and `majority_vote` ({accuracy, ci95: {accuracy}}), and `bootstrap` (how
    the intervals were drawn). Rates are None where there is no sample. The module's docstring states the rules.
    Deterministic: the same rows (in any order) and seed give the same numbers."""
    return summarise_samples(per_sample(columns_of(rows)), resamples=resamples, seed=seed)
