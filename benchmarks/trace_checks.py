"""Time of the trace filters (`curation.filters.trace_problem`) per thousand traces: a good trace (every check
runs) and one sample per reason (the checks stop at the first that fires).

Run: `.venv/bin/python benchmarks/trace_checks.py [--repeats 5] [--traces 2000]`

Times are CPU time of the process (`time.process_time`), the best of `--repeats` passes over `--traces` copies
of each sample. To compare with another tree, run the same script with that tree first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import time

from retinal_reason_data.curation.filters import trace_problem
from retinal_reason_data.recipe import FiltersSpec

THINK = (
    "Step 1: This is a colour fundus photograph of the posterior pole.\n"
    "Step 2: There are dot and blot haemorrhages with hard exudates in all quadrants, and venous beading.\n"
    "Step 3: These findings meet the 4-2-1 rule, which defines severe non-proliferative disease.\n"
    "Step 4: Therefore the answer is B."
)
SAMPLES = {
    "passes (every check runs)": f"<think>\n{THINK}\n</think>\n<answer>B</answer>",
    "malformed_tags": "<answer>B</answer>",
    "think_too_short": "<think>Short.</think><answer>B</answer>",
    "repetitive": "<think>" + "\n".join(["The disc looks normal."] * 8) + "</think><answer>B</answer>",
    "non_english": "<think>这是一张彩色眼底照片。可见视网膜出血和硬性渗出，符合重度非增殖性糖尿病视网膜病变。"
    "</think><answer>B</answer>",
    "given_answer (last check)": f"<think>I was told the answer is B. {THINK}</think><answer>B</answer>",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--traces", type=int, default=2000)
    args = parser.parse_args()
    spec = FiltersSpec()
    print("| sample | reason | ms per 1,000 traces |\n|---|---|---:|")
    for name, response in SAMPLES.items():
        reason = trace_problem(response, spec)
        best = float("inf")
        for _ in range(args.repeats):
            started = time.process_time()
            for _ in range(args.traces):
                trace_problem(response, spec)
            best = min(best, time.process_time() - started)
        print(f"| {name} | {reason} | {best * 1000 / args.traces * 1000:.1f} |")


if __name__ == "__main__":
    main()
