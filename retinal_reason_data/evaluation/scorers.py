"""How a reply is scored: one contract, a registry keyed by `Sample.scorer`.

A scorer takes (reply, ground truth) and returns the format score, the accuracy, the reward a trainer would
give (`rewards.compute_score`'s value) and the answer it read. `reward` is the release's own reward function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from retinal_reason_data import rewards
from retinal_reason_data.evaluation.ophthareason import score_ophthareason


class Scored(NamedTuple):
    format: float
    accuracy: float
    score: float
    extracted: str | None


Scorer = Callable[[str, str], Scored]


def score_reward(reply: str, ground_truth: str) -> Scored:
    """The release's reward (`rewards.compute_score`), read once: format, accuracy, overall, extracted answer."""
    verdict = rewards.verdict(reply, ground_truth)
    fmt, accuracy = float(verdict.well_formed), float(verdict.accurate)
    overall = (1.0 - rewards.FORMAT_WEIGHT) * accuracy + rewards.FORMAT_WEIGHT * fmt
    return Scored(fmt, accuracy, overall, verdict.extracted)


SCORERS: dict[str, Scorer] = {"reward": score_reward, "ophthareason": score_ophthareason}
