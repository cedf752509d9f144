"""Reading replies and scoring answers, shared by verification and the RL reward: the format rules, the hedges
that earn nothing, the forms of a right answer that score right, and properties checked with hypothesis."""

from __future__ import annotations

import re
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.teacher.answers import accepted_forms, parse_bool, unwrap
from retinal_reason_data.teacher.reply import (
    MAX_ANSWER_CHARS,
    MAX_REPLY_CHARS,
    MAX_TAGS,
    SPECIAL_TOKEN,
    TAG,
    read_reply,
)
from retinal_reason_data.teacher.verify import parse_letters, score, split_response

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wrap(answer: str, think: str = "Step 1: look.") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


# --- letters ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, letters",
    [
        ("A", {"A"}),
        ("(b)", {"B"}),
        ("A, C", {"A", "C"}),
        ("C,A", {"A", "C"}),
        ("A and C", {"A", "C"}),
        ("B. Drusen", {"B"}),
        ("B. A full-thickness macular hole", {"B"}),  # the article 'A' is not an option letter
        ("(B) OCT B-scan shows drusen", {"B"}),  # nor is the B of 'B-scan'
        ("The answer is D.", {"D"}),
        (" a ,  c ", {"A", "C"}),
        ("Option B", {"B"}),
        ("**B**", {"B"}),
        ("\\boxed{B}", {"B"}),
        ("$\\boxed{\\text{B}}$", {"B"}),
        ("A. Drusen; C. Hard exudates", {"A", "C"}),
    ],
)
def test_letters_are_parsed_in_any_order_spacing_and_decoration(text: str, letters: set[str]) -> None:
    assert parse_letters(text) == frozenset(letters)


@pytest.mark.parametrize(
    "text",
    ["Drusen", "About 3", "none of them", "", "B or C", "B. or C. maybe", "A. or B. or C. or D.", "B. Drusen (or C)"],
)
def test_non_letter_and_hedged_answers_are_not_letters(text: str) -> None:
    assert parse_letters(text) is None


# --- hedges earn nothing -----------------------------------------------------------------------------------------

HEDGES = [  # question type, answer, aliases, reply, problem
    ("true_false", "True", [], wrap("True or False"), "both_truth_values"),
    ("true_false", "False", [], wrap("True or False"), "both_truth_values"),
    ("true_false", "True", [], wrap("True/False"), "both_truth_values"),
    ("true_false", "True", [], wrap("yes, no"), "both_truth_values"),
    ("true_false", "True", [], wrap("No, it is true"), "both_truth_values"),
    ("true_false", "False", [], wrap("No, it is true"), "both_truth_values"),
    ("true_false", "False", [], wrap("It is not true"), "unreadable_answer"),
    ("true_false", "False", [], wrap("Not true"), "negated"),
    ("single_choice", "B", [], wrap("B. or C. maybe"), "several_letters"),
    ("single_choice", "A", [], wrap("A. or B. or C. or D."), "several_letters"),
    ("single_choice", "B", [], wrap("B or C"), "several_letters"),
    ("single_choice", "B", [], wrap("B, C"), "several_letters"),
    ("single_choice", "B", [], wrap("(B) Drusen, not C"), "several_letters"),
    ("single_choice", "B", [], wrap("\\boxed{B} or \\boxed{C}"), "several_letters"),
    ("open", "Glaucoma", [], wrap("Glaucoma or cataract"), "several_candidates"),
    ("open", "Glaucoma", [], wrap("Cataract / glaucoma"), "several_candidates"),
    ("open", "Central serous chorioretinopathy", [], wrap("Central serous chorioretinopathy (CNV)"), None),
    ("single_choice", "B", [], wrap("B") + " Actually, the answer is C.", "text_outside_blocks"),
    ("single_choice", "B", [], "The answer is C. " + wrap("B"), "text_outside_blocks"),
    ("single_choice", "B", [], "<think>x</think>C<answer>B</answer>", "text_outside_blocks"),
    ("single_choice", "B", [], "<think>x</think> \\boxed{B} or \\boxed{C}", "boxed_without_answer_tags"),
    ("single_choice", "B", [], "<think>x</think> I pick \\boxed{B}, maybe C", "boxed_without_answer_tags"),
]


@pytest.mark.parametrize("question_type, answer, aliases, reply, problem", HEDGES)
def test_a_hedge_earns_no_accuracy(
    question_type: str, answer: str, aliases: list[str], reply: str, problem: str | None
) -> None:
    verdict = score(question_type, answer, aliases, reply)
    assert not verdict.accurate and not verdict.correct
    if problem is not None:
        assert verdict.problem == problem


# --- right answers score right -----------------------------------------------------------------------------------

DME = ("Diabetic macular oedema", ["diabetic macular edema", "DME"])
RIGHT = [  # question type, answer, aliases, reply, well formed
    ("open", *DME, wrap("Diabetic macular oedema (DME)"), True),
    ("open", "Diabetic macular oedema", [], wrap("Diabetic macular oedema (DME)"), True),  # initials
    ("open", "Central serous chorioretinopathy", [], wrap("Central serous chorioretinopathy (CSC)"), True),
    ("open", *DME, wrap("DME / diabetic macular edema"), True),  # candidates that agree
    ("open", "Vogt-Koyanagi-Harada disease", ["VKH"], wrap("Vogt-Koyanagi-Harada"), True),
    ("open", "Vogt-Koyanagi-Harada disease", [], wrap("Harada disease"), True),  # the ontology's synonym
    ("open", "Coats disease", [], wrap("Coats"), True),
    ("open", "Stargardt disease", [], wrap("Stargardt's"), True),
    ("open", "Susac syndrome", [], wrap("Susac"), True),  # not in the ontology: no entry owns 'susac'
    ("open", "Normal fundus", [], wrap("normal"), True),
    ("open", "Normal retina on OCT", [], wrap("Normal."), True),
    ("open", "Normal fluorescein angiogram", [], wrap("**Normal**"), True),
    ("open", "Glaucoma", [], wrap("The diagnosis is glaucoma."), True),
    ("open", "Severe non-proliferative or proliferative diabetic retinopathy", [], wrap("severe NPDR or PDR"), True),
    ("single_choice", "B", [], wrap("**B**"), True),
    ("single_choice", "B", [], wrap("\\boxed{B}"), True),
    ("single_choice", "B", [], wrap("Final answer: $\\boxed{B}$."), True),
    ("single_choice", "B", [], wrap("`B`"), True),
    ("single_choice", "B", [], "< think >look</ think >\n< answer > B </ answer >", True),
    ("single_choice", "B", [], "<THINK>look</THINK><Answer>B</Answer>", True),
    ("single_choice", "B", [], "The disc is pale.</think>\n<answer>B</answer>", True),  # pre-filled <think>
    ("single_choice", "B", [], wrap("B") + "<|im_end|>\n<|endoftext|>", True),
    ("single_choice", "B", [], wrap("B") + "<｜end▁of▁sentence｜>", True),
    ("single_choice", "B", [], "<think>look</think>\nThe answer is \\boxed{B}.", False),  # EasyR1's default prompt
    ("single_choice", "B", [], "look</think> $\\boxed{B}$", False),
    ("multiple_choice", "A,C", [], wrap("**A, C**"), True),
    ("multiple_choice", "A,C", [], wrap("\\boxed{C,A}"), True),
    ("true_false", "True", [], wrap("**True**"), True),
    ("true_false", "True", [], wrap("\\boxed{\\text{Yes}}"), True),
    ("true_false", "False", [], wrap("False. There are no haemorrhages."), True),
]


@pytest.mark.parametrize("question_type, answer, aliases, reply, well_formed", RIGHT)
def test_right_answers_in_their_usual_forms_score_right(
    question_type: str, answer: str, aliases: list[str], reply: str, well_formed: bool
) -> None:
    verdict = score(question_type, answer, aliases, reply)
    assert verdict.accurate, verdict
    assert verdict.well_formed is well_formed and verdict.correct is well_formed


@pytest.mark.parametrize(
    "question_type, answer, reply",
    [
        ("open", "No diabetic retinopathy", "normal"),  # 'normal' is for the entries that mean a normal eye
        ("open", "Glaucoma", "Glaucoma suspect"),
        ("open", "Macular hole", "Macular"),  # 'hole' is not a generic suffix
        ("open", "Vitreomacular interface disease", "vitreomacular"),
        ("open", "No diabetic retinopathy", "diabetic retinopathy"),
        ("single_choice", "B", "C"),
        ("true_false", "False", "True"),
    ],
)
def test_wrong_answers_stay_wrong(question_type: str, answer: str, reply: str) -> None:
    verdict = score(question_type, answer, [], wrap(reply))
    assert verdict.well_formed and not verdict.accurate and verdict.problem == "wrong_answer"


def test_a_stem_owned_by_another_entry_is_not_accepted() -> None:
    ontology = default_ontology()
    vkh = accepted_forms(["Vogt-Koyanagi-Harada disease"])
    assert {"vogt koyanagi harada", "harada", "vkh"} <= vkh
    assert "normal" in accepted_forms(["Normal fundus"]) and "normal" not in accepted_forms(["No glaucoma"])
    # 'Tilted disc syndrome' (a synonym of 'Tilted optic disc') gives 'tilted disc' to that entry only
    assert "tilted disc" in accepted_forms(["Tilted optic disc"])
    assert "tilted disc" not in accepted_forms(["Glaucoma"])
    extended = ontology.extend(
        [ontology.entry("vkh").model_copy(update={"code": "other.harada", "name": "Harada syndrome", "synonyms": ()})]
    )
    assert "harada" not in accepted_forms(["Vogt-Koyanagi-Harada disease"], extended)


def test_choice_scoring_is_set_equality() -> None:
    assert score("multiple_choice", "A,C", [], wrap("C, A")).correct
    assert not score("multiple_choice", "A,C", [], wrap("A")).correct
    assert not score("multiple_choice", "A,C", [], wrap("A,B,C")).correct
    assert score("single_choice", "B", [], wrap("b")).correct


def test_true_false_values() -> None:
    assert parse_bool("Yes") is True and parse_bool("false.") is False and parse_bool("Correct") is True
    assert parse_bool("True or False") is None and parse_bool("maybe") is None


# --- the format and the reply cap --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        "<answer>A</answer>",
        "<think>x</think>",
        "<answer>A</answer><think>x</think>",
        "<think>x</think><answer>A</answer><answer>B</answer>",
        "<think>x<think>y</think><answer>A</answer>",
        "<think>x</think><answer>A",
        "<think>x<//think><answer>A</answer>",
        "A",
    ],
)
def test_malformed_responses_score_zero(response: str) -> None:
    verdict = score("single_choice", "A", [], response)
    assert not verdict.well_formed and not verdict.accurate and not verdict.correct
    assert split_response(response) == (None, None)


def test_split_response_keeps_only_the_exported_layout() -> None:
    assert split_response("<think> a </think>\n<answer> B </answer>\n") == ("a", "B")
    assert split_response("<THINK>a</THINK><ANSWER>B</ANSWER><|im_end|>") == ("a", "B")
    # accepted by the reward, not kept as an sft trace as it is
    for reply in ["a</think><answer>B</answer>", "< think >a</think><answer>B</answer>", wrap("B") + " More."]:
        assert split_response(reply) == (None, None)
    assert score("single_choice", "B", [], "a</think><answer>B</answer>").correct


def test_a_reply_over_the_cap_is_not_read() -> None:
    right = wrap("B", think="x" * (MAX_REPLY_CHARS - len(wrap("B", think=""))))
    assert len(right) == MAX_REPLY_CHARS and score("single_choice", "B", [], right).correct
    over = wrap("B", think="x" * (MAX_REPLY_CHARS + 1))
    verdict = score("single_choice", "B", [], over)
    assert (verdict.well_formed, verdict.accurate, verdict.problem) == (False, False, "too_long")
    assert score("single_choice", "B", [], over, max_reply_chars=None).correct
    long_answer = wrap("B " * MAX_ANSWER_CHARS)
    assert score("single_choice", "B", [], long_answer).problem == "answer_too_long"


def test_tag_patterns_bound_the_work_of_every_attempt() -> None:
    """The patterns run over the whole reply have only bounded repeats, none nested: each match attempt looks at
    a bounded number of characters, so one pass is linear in the reply's length."""
    for pattern in (TAG, SPECIAL_TOKEN):
        repeats = list(_repeats(sre_parser.parse(pattern.pattern), depth=0))
        assert repeats, pattern.pattern
        assert all(high != sre_constants.MAXREPEAT and high <= 40 for high, _ in repeats), pattern.pattern
        assert all(depth == 0 for _, depth in repeats), pattern.pattern


def _repeats(parsed: sre_parser.SubPattern, depth: int):  # type: ignore[no-untyped-def]
    for op, value in parsed:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
            low, high, inner = value
            yield high, depth
            yield from _repeats(inner, depth + 1)
        elif op is sre_constants.SUBPATTERN:
            yield from _repeats(value[-1], depth)
        elif op is sre_constants.BRANCH:
            for branch in value[1]:
                yield from _repeats(branch, depth)


# --- properties --------------------------------------------------------------------------------------------------

LETTERS = "ABCDEFGH"
OPTION_TEXTS = ["Drusen", "Macular hole", "A full-thickness macular hole", "Hard exudates", "Normal fundus"]
OPEN_ENTRIES = ["vkh", "oct.dme", "stargardt", "normal.fundus", "cme", "amd.wet", "vasc.coats"]
DECORATIONS = [
    lambda a: a,
    lambda a: f"**{a}**",
    lambda a: f"\\boxed{{{a}}}",
    lambda a: f"$\\boxed{{{a}}}$",
    lambda a: f"Final answer: {a}",
    lambda a: f"The answer is {a}.",
    lambda a: f'"{a}"',
    lambda a: f"`{a}`",
    lambda a: f"  {a}\n",
]
REPLY_LAYOUTS = [
    lambda think, answer: f"<think>{think}</think><answer>{answer}</answer>",
    lambda think, answer: f"<think>\n{think}\n</think>\n\n<answer>\n{answer}\n</answer>\n",
    lambda think, answer: f"< think >{think}</ think >< answer >{answer}</ answer >",
    lambda think, answer: f"<THINK>{think}</THINK><ANSWER>{answer}</ANSWER>",
    lambda think, answer: f"{think}</think><answer>{answer}</answer>",  # pre-filled <think>
    lambda think, answer: f"<think>{think}</think><answer>{answer}</answer><|im_end|>",
]
thinking = st.text(st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=120)


@st.composite
def right_answers(draw: st.DrawFn) -> tuple[str, str, list[str], str]:
    """(question type, answer, aliases, a right answer in one of its plain forms)."""
    kind = draw(st.sampled_from(["single_choice", "multiple_choice", "true_false", "open"]))
    if kind == "single_choice":
        letter = draw(st.sampled_from(LETTERS))
        given = draw(st.sampled_from([letter, f"({letter})", f"{letter}. {draw(st.sampled_from(OPTION_TEXTS))}"]))
        return kind, letter, [], given
    if kind == "multiple_choice":
        letters = draw(st.lists(st.sampled_from(LETTERS), min_size=1, max_size=4, unique=True))
        separator = draw(st.sampled_from([",", ", ", " and ", "; ", " "]))
        return kind, ",".join(sorted(letters)), [], separator.join(draw(st.permutations(letters)))
    if kind == "true_false":
        value = draw(st.booleans())
        words = ["True", "yes", "Correct", "TRUE"] if value else ["False", "no", "Incorrect", "false"]
        return kind, "True" if value else "False", [], draw(st.sampled_from(words))
    entry = default_ontology().entry(draw(st.sampled_from(OPEN_ENTRIES)))
    return kind, entry.name, list(entry.aliases), draw(st.sampled_from([entry.name, *entry.aliases]))


@PROPERTY
@given(right_answers(), st.lists(st.sampled_from(DECORATIONS), max_size=3), st.sampled_from(REPLY_LAYOUTS), thinking)
def test_a_right_answer_in_allowed_decorations_scores_right(case, decorations, layout, think) -> None:  # type: ignore[no-untyped-def]
    kind, answer, aliases, given_answer = case
    for decorate in decorations:
        given_answer = decorate(given_answer)
    verdict = score(kind, answer, aliases, layout(think, given_answer))
    if given_answer.count("\\boxed") > 1:  # two boxes are two answers
        assert not verdict.accurate
    else:
        assert verdict.well_formed and verdict.accurate and verdict.correct, (given_answer, verdict)


@st.composite
def two_letter_answers(draw: st.DrawFn) -> str:
    first, second = draw(st.lists(st.sampled_from(LETTERS), min_size=2, max_size=2, unique=True))
    shape = draw(
        st.sampled_from(
            [
                "{a}{sep}{b}",
                "{a}. {text}{sep}{b}.",
                "({a}) {text} or ({b})",
                "{a}. or {b}. maybe",
                "{a}{sep}{b}{sep}{a}",
                "Option {a}{sep}option {b}",
            ]
        )
    )
    separator = draw(st.sampled_from([",", ", ", " or ", " and ", "/", " ", "; ", " & "]))
    given = shape.format(a=first, b=second, sep=separator, text=draw(st.sampled_from(OPTION_TEXTS)))
    for decorate in draw(st.lists(st.sampled_from(DECORATIONS), max_size=2)):
        given = decorate(given)
    return given


@PROPERTY
@given(two_letter_answers(), st.sampled_from(LETTERS), st.sampled_from(REPLY_LAYOUTS))
def test_a_single_choice_answer_with_two_letters_earns_nothing(given_answer: str, expected: str, layout) -> None:  # type: ignore[no-untyped-def]
    verdict = score("single_choice", expected, [], layout("Looking at the image.", given_answer))
    assert not verdict.accurate and not verdict.correct


@PROPERTY
@given(
    st.sampled_from(["True", "Yes", "correct"]),
    st.sampled_from(["False", "no", "incorrect"]),
    st.sampled_from([" or ", "/", ", ", " - ", "? ", ". It is "]),
    st.booleans(),
    st.booleans(),
)
def test_an_answer_with_both_truth_values_earns_nothing(
    yes: str, no: str, separator: str, true_first: bool, expected: bool
) -> None:
    given_answer = f"{yes}{separator}{no}" if true_first else f"{no}{separator}{yes}"
    verdict = score("true_false", str(expected), [], wrap(given_answer))
    assert not verdict.accurate


ADVERSARIAL_ALPHABET = st.sampled_from(
    ["<", ">", "/", " ", "think", "answer", "<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "{", "}"]
    + ["B", "C", "True", "False", " or ", "<|im_end|>", "＜", "і", "\u200b", "\n", "$", "**", "(", ")"]
)


@PROPERTY
@given(st.lists(ADVERSARIAL_ALPHABET, max_size=300).map("".join), st.sampled_from(["single_choice", "open"]))
def test_any_string_is_scored_without_error_and_with_a_bounded_number_of_tags_examined(text: str, kind: str) -> None:
    reading = read_reply(text)
    assert reading.tags_seen <= MAX_TAGS + 1
    verdict = score(kind, "B", [], text)
    assert verdict.correct <= verdict.accurate and verdict.correct <= verdict.well_formed
    assert score(kind, "B", [], text) == verdict  # deterministic


@settings(max_examples=12, deadline=None)
@given(st.lists(ADVERSARIAL_ALPHABET, min_size=1, max_size=8).map("".join))
def test_megabyte_replies_finish(unit: str) -> None:
    text = unit * (1_000_000 // len(unit) + 1)
    assert score("single_choice", "B", [], text).problem == "too_long"
    reading = read_reply(text, max_chars=None)  # read in full anyway: one pass
    assert reading.tags_seen <= MAX_TAGS + 1


def test_unwrap_is_bounded_on_deep_nesting() -> None:
    nested = "**" * 200 + "\\text{" * 50 + "B" + "}" * 50 + "**" * 200
    assert unwrap(nested) is not None
    assert re.fullmatch(r"[\\\w{}*]*", unwrap(nested) or "")
