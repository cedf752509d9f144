"""Wall time of the demo build on this machine: a cold build (phantoms written, everything computed)
and a warm rebuild (nothing to do). Run: `.venv/bin/python benchmarks/demo_build.py`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RRD = Path(sys.executable).parent / "rrd"


def timed_build(recipe: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(RRD), "build", str(recipe)], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        recipe = Path(folder) / "demo.yaml"
        shutil.copy(REPO / "recipes" / "demo.yaml", recipe)
        cold = timed_build(recipe)
        warm = timed_build(recipe)
        rows = sum(1 for _ in (Path(folder) / "work" / "export" / "data").rglob("*.parquet"))
    print(f"demo build, cold: {cold:.1f} s; warm rebuild: {warm:.1f} s; parquet shards: {rows}")


if __name__ == "__main__":
    main()
