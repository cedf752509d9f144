"""`rrd eval` throughput: samples scored per second against the OpenAI-compatible loopback server with 200 ms latency.

Run: `.venv/bin/python benchmarks/eval_throughput.py [--samples 3200] [--concurrency 32 256]`

The whole evaluation (`evaluation.evaluate.evaluate`, what `rrd eval` runs: reading the release's rl shards,
fingerprints, image data URLs, the request engine, the journal, scoring with the release's reward, the summary
with its bootstrap intervals, responses.parquet, run.json and the report with its charts) runs in this process
against `tests/fake_openai.py --latency 0.2` in a child process (so that the CPU time measured here is the
client's own). The release holds `--samples` rl rows, each showing one 512 x 512 JPEG (64 distinct photographs-like
images, 40-50 kB each). For each concurrency it reports samples scored per second, the rate at which requests
reached the server after the first round, the client's CPU time (all threads) per sample, and a rerun of the same
command: requests sent (must be 0), wall time and CPU per sample.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from retinal_reason_data.evaluation.evaluate import EvalSettings, evaluate  # noqa: E402
from tests.helpers.eval_release import CELLS, release_rows, write_release  # noqa: E402 - the tests' release

LATENCY_S = 0.2


def start_server(latency_s: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fake_openai.py"), "--latency", str(latency_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline().split()[1])
    return server, f"http://127.0.0.1:{port}/v1"


def served(base_url: str, since: int | None = None) -> tuple[int, list[float]]:
    query = f"?since={since}" if since is not None else ""
    with urllib.request.urlopen(f"{base_url}/stats{query}") as response:
        stats = json.loads(response.read())
    return int(stats["requests"]), stats["arrivals"]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def photograph(seed: int, side: int = 512) -> bytes:
    """A fundus-like JPEG: a bright disc with blurred vessels-like strokes and noise (so it compresses like one)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 8, side - 8, side - 8), fill=(150 + rng.randrange(60), 60 + rng.randrange(30), 20))
    for _ in range(40):
        points = [(rng.randrange(side), rng.randrange(side)) for _ in range(4)]
        draw.line(points, fill=(90, 20, 10), width=rng.randrange(2, 6))
    noise = Image.effect_noise((side, side), 24).convert("RGB")
    image = Image.blend(image.filter(ImageFilter.GaussianBlur(1.5)), noise, 0.12)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def write_bench_release(folder: Path, samples: int) -> tuple[Path, float]:
    """The tests' release layout with `samples` rows, each showing one of 64 JPEGs; returns it and the mean size."""
    photos = [photograph(seed) for seed in range(64)]
    rows = release_rows(per_cell=max(1, samples // len(CELLS)))
    for index, row in enumerate(rows):
        row["images"] = [{"bytes": photos[index % len(photos)], "path": f"photo{index % len(photos):02d}.jpg"}]
    write_release(folder, rows, shard_bytes=64 << 20)
    return folder, sum(map(len, photos)) / len(photos)


def timed(settings: EvalSettings, base_url: str) -> tuple[float, float, int, list[float], int]:
    """Wall s, client CPU s, requests the server saw, their arrival times, samples scored."""
    before, _ = served(base_url)
    cpu, wall = time.process_time(), time.perf_counter()
    outcome = evaluate(settings, lambda _line: None)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    count, arrivals = served(base_url, since=before)
    return wall, cpu, count - before, arrivals, outcome.summary["samples"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args()
    server, base_url = start_server(LATENCY_S)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    try:
        with tempfile.TemporaryDirectory() as work:
            release, image_bytes = write_bench_release(Path(work) / "export", args.samples)
            print(f"release: {args.samples:,} samples, one JPEG of {image_bytes / 1000:.0f} kB mean each")
            print(
                "| in flight | samples | wall s | samples scored/s | requests/s (steady) | fraction of c/latency "
                "(steady) | client CPU ms/sample | server CPU ms/request | rerun requests | rerun wall s "
                "| rerun CPU ms/sample |"
            )
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for concurrency in args.concurrency:
                settings = EvalSettings(
                    release=str(release),
                    base_url=base_url,
                    model="fake-vlm",
                    api_key_env="",
                    concurrency=concurrency,
                    max_tokens=64,
                    out=Path(work) / f"run-{concurrency}",
                )
                server_cpu = cpu_of(server.pid)
                wall, cpu, sent, arrivals, scored = timed(settings, base_url)
                server_cpu = cpu_of(server.pid) - server_cpu
                rerun_wall, rerun_cpu, rerun_sent, _, _ = timed(settings, base_url)
                steady = sent / wall
                if len(arrivals) > 2 * concurrency:  # after the first round: connections are open
                    steady = (len(arrivals) - concurrency) / (arrivals[-1] - arrivals[concurrency - 1])
                print(
                    f"| {concurrency} | {scored:,} | {wall:.2f} | {scored / wall:,.0f} | {steady:,.0f} | "
                    f"{steady / (concurrency / LATENCY_S):.2f} | {1000 * cpu / scored:.2f} | "
                    f"{1000 * server_cpu / sent:.2f} | {rerun_sent} | {rerun_wall:.2f} | "
                    f"{1000 * rerun_cpu / scored:.2f} |",
                    flush=True,
                )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
