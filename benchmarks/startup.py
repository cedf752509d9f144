"""Start-up time of the `rrd` command: median of 5 runs of `rrd --help`, `rrd sources` and a bare import of the
CLI module, each in a fresh process. Run: `.venv/bin/python benchmarks/startup.py`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RRD = Path(sys.executable).parent / "rrd"
RUNS = 5
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import retinal_reason_data.cli": [sys.executable, "-c", "import retinal_reason_data.cli"],
    "rrd --help": [str(RRD), "--help"],
    "rrd sources": [str(RRD), "sources"],
}


def median_seconds(command: list[str]) -> tuple[float, list[float]]:
    """Median wall time of RUNS runs of `command` (output discarded), and every run."""
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), runs


def main() -> None:
    for name, command in COMMANDS.items():
        median, runs = median_seconds(command)
        print(f"{name:32s} median {median:.2f} s  ({', '.join(f'{r:.2f}' for r in runs)})")


if __name__ == "__main__":
    main()
