"""Time per call of the reward (`rewards.compute_score`) on adversarial replies.

Run: `.venv/bin/python benchmarks/reward_speed.py [--repeats 15] [--size 1000000]`

Every family below builds a reply of `--size` characters (1 MB by default) and one just under the reply cap
(MAX_REPLY_CHARS, 65,536 characters). Times are CPU time of the calling process (`time.process_time`): on a
shared machine, wall time adds whatever the scheduler takes away (the `at cap, wall` column, a median, shows
it). Three CPU timings per family, each the worst of `--repeats` calls:
- `1 MB`: the reward as trainers call it; over the cap, the reply is refused unread;
- `at cap`: the longest reply the reward reads (the real worst case of a call);
- `1 MB read`: `max_reply_chars=None`, the whole 1 MB read anyway, to show that reading is linear (about 15x
  the `at cap` figure for a 15x longer reply), not what a trainer pays.
The `full answer` families put the padding in the reasoning and an answer block of MAX_ANSWER_CHARS (1,024)
characters after it, the most the answer reader is given. The ground truth of every call is a single-choice
question whose answer is B, except `open_name` (an open question: Vogt-Koyanagi-Harada disease); each family
is scored once before timing, so the ground truth's parse is cached, as in a training run where every prompt
is scored n times.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from retinal_reason_data.rewards import compute_score, make_ground_truth
from retinal_reason_data.teacher.reply import MAX_ANSWER_CHARS, MAX_REPLY_CHARS

CHOICE = make_ground_truth("single_choice", "B", [])
OPEN = make_ground_truth("open", "Vogt-Koyanagi-Harada disease", ["VKH"])


def fill(unit: str, size: int, head: str = "", tail: str = "") -> str:
    """`head`, then `unit` repeated, then `tail`: `size` characters in all (the repetition cut to fit)."""
    body = size - len(head) - len(tail)
    return head + (unit * (body // len(unit) + 1))[:body] + tail


def nested(size: int) -> str:
    depth = size // 16
    return fill("x", size, "<think>" * depth, "</think>" * depth)


def letter_soup(size: int) -> str:
    return fill("(C) or D. ", size, "<think>x</think><answer>B. ", "</answer>")


def full_answer(unit: str) -> Callable[[int], str]:
    """A long reasoning, then an answer block as long as the answer cap allows, made of `unit` repeated."""
    answer = (unit * MAX_ANSWER_CHARS)[:MAX_ANSWER_CHARS]
    return lambda n: fill("look ", n, "<think>", f"</think><answer>{answer}</answer>")


FAMILIES: dict[str, Callable[[int], str]] = {
    "repeated `<think>`": lambda n: fill("<think>", n),
    "repeated `<think></think>`": lambda n: fill("<think></think>", n),
    "repeated `</answer>`": lambda n: fill("</answer>", n),
    "nested `<think>`": nested,
    "unclosed `<think>`": lambda n: fill("a", n, "<think>"),
    "unclosed `<answer>`": lambda n: fill("B ", n, "<think>x</think><answer>"),
    "huge answer": lambda n: fill("A, ", n, "<think>x</think><answer>", "</answer>"),
    "many option letters": letter_soup,
    "spaced tags `<   /   `": lambda n: fill("<   /   ", n),
    "`<` flood": lambda n: fill("<", n),
    "whitespace in answer": lambda n: fill(" ", n, "<think>x</think><answer>", "B</answer>"),
    "end-of-turn tokens after answer": lambda n: fill("<|endoftext|>", n, "<think>x</think><answer>B</answer>"),
    "text after answer": lambda n: fill("Actually C. ", n, "<think>x</think><answer>B</answer>"),
    "pre-filled long think": lambda n: fill("look ", n, "", "</think><answer>B</answer>"),
    "`\\boxed{` flood": lambda n: fill("\\boxed{", n, "<think>x</think>"),
    "brace flood in one box": lambda n: fill("{", n, "<think>x</think>\\boxed"),
    "fullwidth tags `＜think＞`": lambda n: fill("＜think＞", n),
    "Cyrillic і in `<thіnk>`": lambda n: fill("<thіnk>", n),
    "zero-width joiners": lambda n: fill("<\u200dthink>\u200b", n),
    "full answer: letters and hedges": full_answer("(C) or D. "),
    "full answer: truth words": full_answer("True or False "),
    "full answer: nested boxes": full_answer("\\boxed{"),
    "open_name: full answer of candidates": full_answer("a/"),
    "open_name: full answer of parentheses": full_answer("(VKH) "),
}


def call_times(reply: str, truth: str, repeats: int, cap: int | None, clock=time.process_time) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds per call, `repeats` calls, after one warm-up call (ground truth cached, ontology loaded)."""
    compute_score("bench", reply, truth, max_reply_chars=cap)
    times = []
    for _ in range(repeats):
        start = clock()
        compute_score("bench", reply, truth, max_reply_chars=cap)
        times.append(clock() - start)
    return times


def worst_call(reply: str, truth: str, repeats: int, cap: int | None) -> float:
    """The slowest of `repeats` calls, CPU seconds."""
    return max(call_times(reply, truth, repeats, cap))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args()
    under_cap = MAX_REPLY_CHARS - 1
    print(f"| family | {args.size:,} chars | at cap ({under_cap:,} chars) | at cap, wall | {args.size:,} chars read |")
    print("|---|---:|---:|---:|---:|")
    columns = ("big", "cap", "wall", "read")
    worst = dict.fromkeys(columns, 0.0)
    for name, build in FAMILIES.items():
        truth = OPEN if name.startswith("open_name") else CHOICE
        big, small = build(args.size), build(under_cap)
        assert len(big) == args.size and len(small) == under_cap, name
        timings = {
            "big": worst_call(big, truth, args.repeats, MAX_REPLY_CHARS),
            "cap": worst_call(small, truth, args.repeats, MAX_REPLY_CHARS),
            "wall": statistics.median(call_times(small, truth, args.repeats, MAX_REPLY_CHARS, time.perf_counter)),
            "read": worst_call(big, truth, max(3, args.repeats // 5), None),
        }
        for key, value in timings.items():
            worst[key] = max(worst[key], value)
        print(f"| {name} | " + " | ".join(f"{timings[key] * 1e3:.3f} ms" for key in columns) + " |")
    print("| **worst** | " + " | ".join(f"**{worst[key] * 1e3:.3f} ms**" for key in columns) + " |")
    plain = "<think>The disc is pale and the cup is large.</think><answer>B</answer>"
    typical = call_times(plain, CHOICE, 2000, MAX_REPLY_CHARS, time.perf_counter)
    print(f"\nordinary reply ({len(plain)} chars): median {statistics.median(typical) * 1e6:.1f} us per call (wall)")


if __name__ == "__main__":
    main()
