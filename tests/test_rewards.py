"""The RL reward functions: verl's and EasyR1's signatures over verification's one scoring implementation."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retinal_reason_data import rewards
from retinal_reason_data.rewards import (
    compute_score,
    easyr1_compute_score,
    make_ground_truth,
    parse_ground_truth,
    scores,
)
from retinal_reason_data.schema import QuestionType
from retinal_reason_data.teacher.verify import score


def wrap(answer: str, think: str = "The disc is pale and the cup is large.") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


TRUTHS = [
    make_ground_truth("single_choice", "B", []),
    make_ground_truth("multiple_choice", "A,C", []),
    make_ground_truth("true_false", "True", []),
    make_ground_truth("open", "Glaucoma", ["GON"]),
]


CASES = [  # question type, answer, aliases, response answer, correct
    ("true_false", "True", [], "True", True),
    ("true_false", "True", [], "yes", True),
    ("true_false", "False", [], "False.", True),
    ("true_false", "False", [], "True", False),
    ("single_choice", "B", [], "B", True),
    ("single_choice", "B", [], "(b)", True),
    ("single_choice", "B", [], "B. Drusen", True),
    ("single_choice", "B", [], "C", False),
    ("single_choice", "B", [], "B,C", False),
    ("multiple_choice", "A,C", [], "A,C", True),
    ("multiple_choice", "A,C", [], "C,A", True),
    ("multiple_choice", "A,C", [], "c , a", True),
    ("multiple_choice", "A,C", [], "A and C", True),
    ("multiple_choice", "A,C", [], "A", False),
    ("multiple_choice", "A,C", [], "A,B,C", False),
    ("open", "Glaucoma", ["glaucomatous optic neuropathy"], "glaucoma", True),
    ("open", "Glaucoma", ["glaucomatous optic neuropathy"], "Glaucomatous optic neuropathy.", True),
    ("open", "Glaucoma", [], "The diagnosis is glaucoma", True),
    ("open", "Glaucoma", [], "Cataract", False),
    ("open", "No diabetic retinopathy", [], "diabetic retinopathy", False),
]


@pytest.mark.parametrize("question_type, answer, aliases, given, correct", CASES)
def test_every_question_type_scores_like_verification(
    question_type: str, answer: str, aliases: list[str], given: str, correct: bool
) -> None:
    truth = make_ground_truth(question_type, answer, aliases)
    response = wrap(given)
    expected = score(question_type, answer, aliases, response)
    assert expected.correct is correct
    assert compute_score("aptos2019", response, truth) == pytest.approx(0.9 * correct + 0.1)
    assert scores(response, truth) == {
        "overall": pytest.approx(0.9 * correct + 0.1),
        "format": 1.0,
        "accuracy": correct,
    }


@pytest.mark.parametrize(
    "response",
    [
        "B",  # no tags at all
        "<answer>B</answer>",  # no think
        "<think>look</think>",  # no answer
        "<think>look</think><answer>B",  # unclosed answer
        "<think>look<answer>B</answer>",  # unclosed think
        "<answer>B</answer><think>look</think>",  # answer before think
        "<think>a</think><answer>B</answer><answer>C</answer>",  # two answers
        "<think>a<think>b</think></think><answer>B</answer>",  # nested think
        "<think>a</think><answer>B</answer></answer>",  # a stray closing tag
    ],
)
def test_malformed_tags_score_zero(response: str) -> None:
    truth = make_ground_truth("single_choice", "B", [])
    assert scores(response, truth) == {"overall": 0.0, "format": 0.0, "accuracy": 0.0}
    assert compute_score("x", response, truth) == 0.0


@pytest.mark.parametrize(
    "response",
    [
        "<think>\n  look  \n</think>\n\n<answer>\n  A , C \n</answer>\n",
        "  <THINK>look</THINK> <ANSWER>C,A</ANSWER>",
        "<think>look</think><answer>C,A</answer><|im_end|>",  # verl decodes with the end-of-turn token
        "<think>look</think>\t<answer>\tA,\tC\t</answer>",
    ],
)
def test_extra_whitespace_case_and_letter_order_do_not_matter(response: str) -> None:
    truth = make_ground_truth("multiple_choice", "A,C", [])
    assert compute_score("x", response, truth) == pytest.approx(1.0)


def test_plain_answers_are_accepted_as_ground_truth() -> None:
    assert parse_ground_truth("A,C").question_type is QuestionType.MULTIPLE_CHOICE
    assert parse_ground_truth("B").question_type is QuestionType.SINGLE_CHOICE
    assert parse_ground_truth("False").question_type is QuestionType.TRUE_FALSE
    assert parse_ground_truth("Central retinal vein occlusion").question_type is QuestionType.OPEN
    assert compute_score("x", wrap("C, A"), "A,C") == pytest.approx(1.0)
    assert compute_score("x", wrap("central retinal vein occlusion"), "Central retinal vein occlusion") == 1.0
    mapping = {"question_type": "open", "answer": "Glaucoma", "aliases": ["GON"]}
    assert compute_score("x", wrap("GON"), mapping) == pytest.approx(1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "   ", '{"aliases": []}', '{"question_type": "essay", "answer": "x"}'])
def test_unusable_ground_truth_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError):
        compute_score("x", wrap("A"), bad)


def test_verl_signature() -> None:
    parameters = list(inspect.signature(compute_score).parameters.values())
    assert [p.name for p in parameters[:4]] == ["data_source", "solution_str", "ground_truth", "extra_info"]
    assert parameters[3].default is None and parameters[-1].kind is inspect.Parameter.VAR_KEYWORD
    truth = make_ground_truth("single_choice", "B", [])
    # verl's reward managers call it with keywords
    assert compute_score(data_source="x", solution_str=wrap("B"), ground_truth=truth, extra_info={"index": 3}) == 1.0


def _call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):  # type: ignore[no-untyped-def]
    """verl/trainer/ppo/reward.py: how verl binds `custom_reward_function.reward_kwargs` (they take precedence)."""
    return raw_fn(*args, **{**kwargs, **extra_kwargs})


def test_verls_reward_loop_keywords_and_reward_kwargs_are_accepted() -> None:
    truth = make_ground_truth("single_choice", "B", [])
    loop_keywords = {"reward_router_address": "127.0.0.1:8000", "reward_model_tokenizer": object()}
    bound = partial(_call_with_kwargs, compute_score, {})
    assert bound(data_source="x", solution_str=wrap("B"), ground_truth=truth, extra_info={}, **loop_keywords) == 1.0
    weighted = partial(_call_with_kwargs, compute_score, {"format_weight": 0.5})
    assert weighted(data_source="x", solution_str=wrap("C"), ground_truth=truth, extra_info={}) == pytest.approx(0.5)
    long_reply = wrap("B", think="x" * 100_000)
    assert bound(data_source="x", solution_str=long_reply, ground_truth=truth, extra_info=None) == 0.0
    raised = partial(_call_with_kwargs, compute_score, {"max_reply_chars": 200_000})
    assert raised(data_source="x", solution_str=long_reply, ground_truth=truth, extra_info=None) == 1.0


def test_easyr1_sequential_and_batch_calls() -> None:
    truth = make_ground_truth("true_false", "False", [])
    one = easyr1_compute_score({"response": wrap("False"), "response_length": 12, "ground_truth": truth})
    assert one == {"overall": pytest.approx(1.0), "format": 1.0, "accuracy": 1.0}
    batch = easyr1_compute_score(
        [
            {"response": wrap("True"), "response_length": 9, "ground_truth": truth},
            {"response": "False", "response_length": 1, "ground_truth": truth},
        ],
        format_weight=0.5,
    )
    assert batch == [
        {"overall": pytest.approx(0.5), "format": 1.0, "accuracy": 0.0},
        {"overall": 0.0, "format": 0.0, "accuracy": 0.0},
    ]


def test_the_module_loads_from_its_file_path_as_verl_loads_it() -> None:
    """verl/utils/import_utils.py load_module: a spec named after the path's hash, not put in sys.modules."""
    path = Path(rewards.__file__)
    spec = importlib.util.spec_from_file_location(f"custom_module_{hash(str(path.resolve()))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = json.loads(make_ground_truth("open", "Drusen", ["drusen on OCT"]))
    assert module.compute_score("oct2017", wrap("Drusen on OCT"), json.dumps(truth)) == pytest.approx(1.0)


def test_the_module_loads_as_easyr1s_auto_reward_manager_loads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """EasyR1 verl/workers/reward/function.py: sys.modules['custom_reward_fn'], REWARD_TYPE read from the module
    (default 'batch'), reward_function_kwargs bound with functools.partial."""
    spec = importlib.util.spec_from_file_location("custom_reward_fn", Path(rewards.__file__))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "custom_reward_fn", module)
    spec.loader.exec_module(module)
    assert getattr(module, "REWARD_TYPE", "batch") == "batch" and module.REWARD_NAME == "retinal_reason"
    reward_fn = partial(module.easyr1_compute_score, **{"format_weight": 0.2})
    truth = make_ground_truth("multiple_choice", "A,C", [])
    inputs = [
        {"response": wrap("A, C"), "response_length": 7, "ground_truth": truth},
        {"response": wrap("A"), "response_length": 5, "ground_truth": truth},
        {"response": "<think>x</think> \\boxed{A,C}", "response_length": 9, "ground_truth": truth},
    ]
    assert reward_fn(inputs) == [
        {"overall": pytest.approx(1.0), "format": 1.0, "accuracy": 1.0},
        {"overall": pytest.approx(0.2), "format": 1.0, "accuracy": 0.0},
        {"overall": pytest.approx(0.8), "format": 0.0, "accuracy": 1.0},  # EasyR1's default \\boxed{} prompt
    ]


REPLIES = st.builds(
    lambda think, answer, layout: layout.format(think=think, answer=answer),
    st.text(st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=60),
    st.sampled_from(["B", "C", "**B**", "\\boxed{B}", "B. Drusen", "True", "glaucoma", "A,C", "B or C"]),
    st.sampled_from(
        [
            "<think>{think}</think><answer>{answer}</answer>",
            "{think}</think>\n<answer>{answer}</answer>",
            "< think >{think}</think><answer>{answer}</answer><|im_end|>",
            "<think>{think}</think><answer>{answer}</answer></answer>",
            "{think}<answer>{answer}</answer>",
        ]
    ),
)
OTHER_ANSWERS = st.builds(
    lambda lead, other, tail: f"{lead}{other}{tail}",
    st.sampled_from([" ", "\n", " Actually, the answer is ", " Wait: ", "<|im_end|> ", "\n\nFinal answer: "]),
    st.sampled_from(["C", "B", "A,C", "\\boxed{C}", "<answer>C</answer>", "False", "True", "cataract", "(D)"]),
    st.text(max_size=20),
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(REPLIES, OTHER_ANSWERS, st.sampled_from(TRUTHS))
def test_text_after_the_answer_never_raises_the_score(reply: str, addition: str, truth: str) -> None:
    before = scores(reply, truth)
    after = scores(reply + addition, truth)
    assert after["overall"] <= before["overall"] and after["accuracy"] <= before["accuracy"]
    if addition.strip() and before["accuracy"]:  # words after </answer> void the answer
        assert after["accuracy"] == 0.0
