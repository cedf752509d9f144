"""Reward functions for RL trainers; they call the very scoring that verification uses (`verify.score`).

The ground truth is the `ground_truth` column of the `rl` config (also `reward_model.ground_truth` in the
`verl` format and `answer` in the `easyr1` format): JSON with the question type, the canonical answer and
its accepted aliases. A plain answer ('B', 'A,C', 'True', a name) is accepted too; its type is inferred.

Scores: `format` is 1 for `<think>...</think><answer>...</answer>` (the opening `<think>` may be missing, as
when a thinking model's chat template pre-fills it) with nothing else outside the blocks but end-of-turn
tokens; `accuracy` is 1 when the one answer given is right (verify.py, answers.py: hedges earn nothing, text
after `</answer>` voids the answer, a lone `\boxed{}` after `</think>` counts for accuracy but not format).
Replies longer than `max_reply_chars` (65,536 characters) score 0 without being read; every call is linear in
the length it reads.

verl (custom_reward_function.path=<this file> or pkg://retinal_reason_data.rewards, name=compute_score): its
reward managers call `compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`, the
reward loop adds `reward_router_address` and `reward_model_tokenizer`, and `custom_reward_function.reward_kwargs`
adds whatever it holds: keywords this function does not use are ignored; `format_weight` and `max_reply_chars`
are honoured (verl/trainer/ppo/reward.py, verl/experimental/reward_loop/reward_manager/naive.py).

EasyR1 (worker.reward.reward_function=<this file>:easyr1_compute_score): its AutoRewardManager reads
REWARD_TYPE from this module ('batch': one list of `{response, response_length, ground_truth}` dicts per step)
and binds `worker.reward.reward_function_kwargs` (`format_weight`, `max_reply_chars`); it reads `overall`,
`format` and `accuracy` back (verl/workers/reward/function.py). A single dict is scored too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from retinal_reason_data.schema import QuestionType
from retinal_reason_data.teacher.verify import FALSE_WORDS, MAX_REPLY_CHARS, TRUE_WORDS, Verdict, score

REWARD_NAME = "retinal_reason"  # EasyR1 prints it
REWARD_TYPE = "batch"  # EasyR1 passes every reply of a step in one list
FORMAT_WEIGHT = 0.1
MAX_GROUND_TRUTH_CHARS = 100_000
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
    if isinstance(ground_truth, str):
        return _parse_text(ground_truth)
    return _from_mapping(ground_truth, ground_truth)


@lru_cache(maxsize=4096)
def _parse_text(ground_truth: str) -> GroundTruth:
    """Cached: a trainer scores the same ground truth once per sampled reply."""
    text = ground_truth.strip()
    if not text:
        raise ValueError("ground_truth is empty")
    if len(text) > MAX_GROUND_TRUTH_CHARS:
        raise ValueError(f"ground_truth is {len(text):,} characters long: {text[:200]!r}...")
    data = _json_object(text)
    if data is None:
        return _infer(text)
    return _from_mapping(data, ground_truth)


def _from_mapping(data: Any, original: str | Mapping[str, Any]) -> GroundTruth:
    if not isinstance(data, Mapping) or "answer" not in data:
        raise ValueError(f"ground_truth has no 'answer': {str(original)[:200]!r}")
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


def verdict(
    solution_str: str, ground_truth: str | Mapping[str, Any], max_reply_chars: int | None = MAX_REPLY_CHARS
) -> Verdict:
    """Verification's verdict on one reply (well formed, extracted answer, accurate, correct, problem)."""
    truth = parse_ground_truth(ground_truth)
    return score(truth.question_type, truth.answer, truth.aliases, solution_str, max_reply_chars)


def scores(
    solution_str: str,
    ground_truth: str | Mapping[str, Any],
    format_weight: float = FORMAT_WEIGHT,
    max_reply_chars: int | None = MAX_REPLY_CHARS,
) -> dict[str, float]:
    """`overall` = (1 - format_weight) * accuracy + format_weight * format, with both parts."""
    checked = verdict(solution_str, ground_truth, max_reply_chars)
    fmt, accuracy = float(checked.well_formed), float(checked.accurate)
    return {"overall": (1.0 - format_weight) * accuracy + format_weight * fmt, "format": fmt, "accuracy": accuracy}


def format_reward(solution_str: str, ground_truth: str | Mapping[str, Any]) -> float:
    """1.0 when the reply has one <think> block (its opening tag may be pre-filled) and one <answer> block."""
    return scores(solution_str, ground_truth)["format"]


def accuracy_reward(solution_str: str, ground_truth: str | Mapping[str, Any]) -> float:
    """1.0 when the one answer the reply gives is right."""
    return scores(solution_str, ground_truth)["accuracy"]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Any = None,
    *,
    format_weight: float = FORMAT_WEIGHT,
    max_reply_chars: int | None = MAX_REPLY_CHARS,
    **kwargs: Any,
) -> float:
    """verl's signature: (1 - format_weight) * accuracy + format_weight * format. Other keywords (verl's reward
    loop passes `reward_router_address` and `reward_model_tokenizer`) are accepted and not used."""
    return scores(solution_str, ground_truth, format_weight, max_reply_chars)["overall"]


def easyr1_compute_score(
    reward_inputs: Mapping[str, Any] | list[Mapping[str, Any]],
    format_weight: float = FORMAT_WEIGHT,
    max_reply_chars: int | None = MAX_REPLY_CHARS,
) -> dict[str, float] | list[dict[str, float]]:
    """EasyR1's reward function: a list of input dicts gives a list of score dicts (REWARD_TYPE batch), one
    dict gives one."""
    if isinstance(reward_inputs, Mapping):
        return scores(str(reward_inputs["response"]), reward_inputs["ground_truth"], format_weight, max_reply_chars)
    return [scores(str(one["response"]), one["ground_truth"], format_weight, max_reply_chars) for one in reward_inputs]
