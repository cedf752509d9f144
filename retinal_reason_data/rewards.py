"""Reward functions for RL trainers; they call the very scoring that verification uses.

verl: `custom_reward_function.path=<this file>`, `name=compute_score`.
The ground truth is the `ground_truth` column of the `rl` config: JSON with the question type,
the canonical answer and its accepted aliases.
"""

from __future__ import annotations

import json
from typing import Any

from retinal_reason_data.verify import score


def make_ground_truth(question_type: str, answer: str, aliases: list[str]) -> str:
    """The JSON string stored in the export and passed back to `compute_score`."""
    return json.dumps(
        {"question_type": question_type, "answer": answer, "aliases": aliases}, sort_keys=True, ensure_ascii=False
    )


def format_reward(solution_str: str, ground_truth: str) -> float:
    """1.0 when the response has one <think> block followed by one <answer> block."""
    truth = json.loads(ground_truth)
    return 1.0 if score(truth["question_type"], truth["answer"], truth["aliases"], solution_str).well_formed else 0.0


def accuracy_reward(solution_str: str, ground_truth: str) -> float:
    """1.0 when the extracted answer is correct."""
    truth = json.loads(ground_truth)
    return 1.0 if score(truth["question_type"], truth["answer"], truth["aliases"], solution_str).correct else 0.0


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: Any = None) -> float:
    """verl's signature: 0.9 * accuracy + 0.1 * format."""
    return 0.9 * accuracy_reward(solution_str, ground_truth) + 0.1 * format_reward(solution_str, ground_truth)
