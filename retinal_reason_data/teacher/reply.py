"""Reading a model's reply into its reasoning and its answer, in time linear in the reply's length.

The layout asked for is `<think>REASONING</think><answer>ANSWER</answer>`. What is read, and how:

- A reply longer than `max_chars` (MAX_REPLY_CHARS, 65,536 characters, about 16k tokens, unless the caller
  sets another) is not read at all: no format, no answer (`too_long`). Reading it costs nothing.
- Tags are found by one left-to-right pass of `TAG`, a pattern without nested or unbounded quantifiers (each
  attempt looks at 18 characters at most), which stops at the fifth tag: a reply with more than four tags is
  malformed whatever follows. Tags may carry whitespace (`< think >`, `</ answer >`) and any letter case
  (ASCII letters only: look-alike characters make no tag).
- `well_formed` (the format score): `<think>` (or nothing, when the chat template pre-filled it and the reply
  starts inside the reasoning), `</think>`, `<answer>`, `</answer>`, each once and in that order; nothing but
  whitespace between `</think>` and `<answer>`; nothing but whitespace and end-of-turn tokens (`<|im_end|>`,
  `</s>`, ...) before `<think>` and after `</answer>`.
- The answer counts (`usable`) only where nothing else outside the reasoning could be another answer: text
  before `<think>`, between `</think>` and `<answer>` or after `</answer>` voids it
  (`text_outside_blocks`), and so do an answer block longer than MAX_ANSWER_CHARS (`answer_too_long`) and
  misplaced or repeated tags (`malformed_tags`).
- A reply without answer tags whose text after `</think>` holds a `\\boxed{}` (EasyR1's default format prompt
  asks for one) hands that text on as its answer (`boxed_without_answer_tags`): it may earn accuracy, never the
  format score. Whether the text around the box is only a lead-in is for the answer reader to say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REPLY_CHARS = 65_536
MAX_ANSWER_CHARS = 1_024
MAX_TAGS = 4  # a well-formed reply has four; scanning stops at the fifth
# letter classes rather than IGNORECASE, which would also take the Kelvin sign for a k and the long s for an s
TAG = re.compile(r"<([ \t\r\n/]{0,7})([tT][hH][iI][nN][kK]|[aA][nN][sS][wW][eE][rR])[ \t\r\n]{0,3}>")
EXACT_TAGS = {"<think>", "</think>", "<answer>", "</answer>"}
# end-of-turn and padding tokens a trainer may leave in a decoded reply (bounded, no nested quantifiers)
SPECIAL_TOKEN = re.compile(r"<\|[^<>|\s]{1,40}\|>|<｜[^<>｜]{1,40}｜>|</s>|<eos>|<end_of_turn>|<pad>")
STANDARD = ("think", "/think", "answer", "/answer")
PREFILLED = ("/think", "answer", "/answer")


@dataclass(frozen=True)
class Reading:
    """What a reply holds. `form`: 'standard', 'prefilled' (no opening <think>), 'boxed' (no answer tags, a
    \\boxed{} after </think>) or None; `usable`: the answer may be scored; `problem`: the first thing wrong."""

    think: str | None = None
    answer: str | None = None
    form: str | None = None
    well_formed: bool = False
    usable: bool = False
    exact_tags: bool = False
    problem: str | None = None
    tags_seen: int = 0


def is_blank(text: str) -> bool:
    """Only whitespace and end-of-turn tokens."""
    return not text or text.isspace() or not SPECIAL_TOKEN.sub("", text).strip()


def find_tags(text: str) -> list[re.Match[str]]:
    """The first MAX_TAGS + 1 tags of `text`, in order."""
    tags = []
    for match in TAG.finditer(text):
        tags.append(match)
        if len(tags) > MAX_TAGS:
            break
    return tags


def _kind(match: re.Match[str]) -> str:
    """'think', '/think', 'answer', '/answer', or 'broken' for a tag with several slashes."""
    slashes = match.group(1).count("/")
    return "broken" if slashes > 1 else "/" * slashes + match.group(2).lower()


def read_reply(text: str, max_chars: int | None = MAX_REPLY_CHARS) -> Reading:
    """Read `text` as described in the module docstring; `max_chars=None` reads a reply of any length."""
    if max_chars is not None and len(text) > max_chars:
        return Reading(problem="too_long")
    tags = find_tags(text)
    kinds = tuple(_kind(tag) for tag in tags)
    exact = all(tag.group(0).lower() in EXACT_TAGS for tag in tags)
    seen = len(tags)
    if kinds in (STANDARD, PREFILLED):
        return _tagged(text, tags, "standard" if kinds == STANDARD else "prefilled", exact)
    if kinds in (STANDARD[:2], PREFILLED[:1]):
        close = tags[-1]
        preamble_ok = kinds == PREFILLED[:1] or is_blank(text[: tags[0].start()])
        after = text[close.end() :]
        if "\\boxed" not in after:
            return Reading(think=_think(text, tags), problem="no_answer", tags_seen=seen)
        answer = SPECIAL_TOKEN.sub("", after).strip()
        usable = preamble_ok and len(answer) <= MAX_ANSWER_CHARS
        problem = "boxed_without_answer_tags" if usable else "answer_too_long" if preamble_ok else "text_outside_blocks"
        return Reading(
            think=_think(text, tags), answer=answer, form="boxed", usable=usable, problem=problem, tags_seen=seen
        )
    return Reading(problem="no_answer" if not kinds else "malformed_tags", tags_seen=seen)


def _think(text: str, tags: list[re.Match[str]]) -> str:
    """The reasoning: between <think> and </think>, or from the start when <think> was pre-filled."""
    if _kind(tags[0]) == "think":
        return text[tags[0].end() : tags[1].start()].strip()
    return text[: tags[0].start()].strip()


def _tagged(text: str, tags: list[re.Match[str]], form: str, exact: bool) -> Reading:
    think_close, answer_open, answer_close = tags[-3:]
    preamble = text[: tags[0].start()] if form == "standard" else ""
    gap = text[think_close.end() : answer_open.start()]
    answer = text[answer_open.end() : answer_close.start()].strip()
    outside_ok = is_blank(preamble) and (not gap or gap.isspace()) and is_blank(text[answer_close.end() :])
    problem = None if outside_ok else "text_outside_blocks"
    if outside_ok and len(answer) > MAX_ANSWER_CHARS:
        problem = "answer_too_long"
    return Reading(
        think=_think(text, tags),
        answer=answer,
        form=form,
        well_formed=outside_ok,
        usable=problem is None,
        exact_tags=exact,
        problem=problem,
        tags_seen=len(tags),
    )
