"""Reward functions for RL trainers; they call the very scoring that verification uses (`verify.score`).

The ground truth is the `ground_truth` column of the `rl` config (also `reward_model.ground_truth` in the
`verl` format and `answer` in the `easyr1` format): JSON with the question type, the canonical answer and
its accepted aliases. A plain answer ('B', 'A,C', 'True', a name) is accepted too; its type is inferred.

verl: `custom_reward_function.path=<this file>`, `custom_reward_function.name=compute_score`. verl's reward
managers call `compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)` with the
decoded response, which may still end in the tokenizer's end-of-turn token (verl/workers/reward_manager/
naive.py); text outside the tags is therefore allowed, as in verification.

EasyR1: `worker.reward.reward_function=<this file>:easyr1_compute_score`. EasyR1 passes one
`{response, response_length, ground_truth}` dict (reward_type sequential) or a list of them (batch) and reads
`overall`, `format` and `accuracy` back (verl/workers/reward/function.py, examples/reward_function/math.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from retinal_reason_data.schema import QuestionType
from retinal_reason_data.verify import FALSE_WORDS, TRUE_WORDS, Verdict, score

FORMAT_WEIGHT = 0.1
_LETTER_SET = re.compile(r"^\s*[A-H](?:\s*,\s*[A-H])*\s*$")


class GroundTruth(NamedTuple):
    """What a response is checked against (a NamedTuple: trainers may load this file without registering it
    in `sys.modules`, which dataclasses need)."""

    question_type: QuestionType
    answer: str
    aliases: tuple[str, ...] = ()


def make_ground_truth(question_type: str, answer: str, aliases: list[str]) -> str:
    """The JSON string stored in the export and passed back to the reward functions."""
    return json.dumps(
        {"question_type": question_type, "answer": answer, "aliases": aliases}, sort_keys=True, ensure_ascii=False
    )


def parse_ground_truth(ground_truth: str | Mapping[str, Any]) -> GroundTruth:
    """The export's JSON ground truth (or a mapping of it), or a plain answer whose type is inferred."""
    data: Any = ground_truth
    if isinstance(ground_truth, str):
        text = ground_truth.strip()
        if not text:
            raise ValueError("ground_truth is empty")
        data = _json_object(text)
        if data is None:
            return _infer(text)
    if not isinstance(data, Mapping) or "answer" not in data:
        raise ValueError(f"ground_truth has no 'answer': {str(ground_truth)[:200]!r}")
    answer = str(data["answer"])
    kind = data.get("question_type")
    question_type = QuestionType(kind) if kind else _infer(answer).question_type
    return GroundTruth(question_type, answer, tuple(str(alias) for alias in data.get("aliases") or []))


def _json_object(text: str) -> Any:
    if not text.startswith("{"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _infer(answer: str) -> GroundTruth:
    if _LETTER_SET.match(answer.upper()) and answer.strip().isupper():
        letters = sorted({letter.strip() for letter in answer.split(",")})
        kind = QuestionType.SINGLE_CHOICE if len(letters) == 1 else QuestionType.MULTIPLE_CHOICE
        return GroundTruth(kind, ",".join(letters))
    if answer.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return GroundTruth(QuestionType.TRUE_FALSE, answer.strip())
    return GroundTruth(QuestionType.OPEN, answer.strip())


def verdict(solution_str: str, ground_truth: str | Mapping[str, Any]) -> Verdict:
    """Verification's verdict on one response (well formed, extracted answer, correct)."""
    truth = parse_ground_truth(ground_truth)
    return score(truth.question_type, truth.answer, truth.aliases, solution_str)


def scores(
    solution_str: str, ground_truth: str | Mapping[str, Any], format_weight: float = FORMAT_WEIGHT
) -> dict[str, float]:
    """`overall` = (1 - format_weight) * accuracy + format_weight * format, with both parts."""
    checked = verdict(solution_str, ground_truth)
    fmt, accuracy = float(checked.well_formed), float(checked.correct)
    return {"overall": (1.0 - format_weight) * accuracy + format_weight * fmt, "format": fmt, "accuracy": accuracy}


def format_reward(solution_str: str, ground_truth: str | Mapping[str, Any]) -> float:
    """1.0 when the response has one <think> block followed by one <answer> block."""
    return scores(solution_str, ground_truth)["format"]


def accuracy_reward(solution_str: str, ground_truth: str | Mapping[str, Any]) -> float:
    """1.0 when the answer extracted from <answer> is correct."""
    return scores(solution_str, ground_truth)["accuracy"]


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: Any = None) -> float:
    """verl's signature: 0.9 * accuracy + 0.1 * format."""
    return scores(solution_str, ground_truth)["overall"]


def easyr1_compute_score(
    reward_inputs: Mapping[str, Any] | list[Mapping[str, Any]], format_weight: float = FORMAT_WEIGHT
) -> dict[str, float] | list[dict[str, float]]:
    """EasyR1's reward function: one input dict gives one score dict, a list gives a list (reward_type batch)."""
    if isinstance(reward_inputs, Mapping):
        return scores(str(reward_inputs["response"]), reward_inputs["ground_truth"], format_weight)
    return [scores(str(one["response"]), one["ground_truth"], format_weight) for one in reward_inputs]
