"""Teacher engine throughput against the OpenAI-compatible loopback server with 200 ms latency.

Run: `.venv/bin/python benchmarks/teacher_throughput.py [--rounds 25] [--concurrency 32 128 512]`

The real synthesis stage (`teacher.synthesize.synthesize`: catalog reads, fingerprints, image data URLs,
the engine, verification, commits) sends `concurrency x rounds` requests, one per item, to the server in
a child process (so that the CPU time measured here is the client's own). Items are variants of the
questions of 40 phantom APTOS cases (one 768 px JPEG each, encoded once per image). For each transport
and concurrency it reports requests/s as a fraction of concurrency / latency, the client's CPU time per
request (this process, all threads), and a rerun: its request count (must be 0) and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.pipeline import BuildReport, build_items, ingest, recipe_ontology
from retinal_reason_data.recipe import load_recipe
from retinal_reason_data.teacher.synthesize import synthesize

REPO = Path(__file__).resolve().parents[1]
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
    """Requests the server has seen, and the arrival times (server's clock) of those from `since` on."""
    query = f"?since={since}" if since is not None else ""
    with urllib.request.urlopen(f"{base_url}/stats{query}") as response:
        stats = json.loads(response.read())
    return int(stats["requests"]), stats["arrivals"]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_recipe(folder: Path, base_url: str, transport: str, concurrency: int) -> Path:
    raw = folder.parent / "raw" / "aptos"
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        f"""name: bench
catalog: bench.duckdb
sources:
  - {{adapter: aptos2019, root: {raw}, phantom: {{cases: 40, seed: 1}}}}
teacher:
  kind: openai
  base_url: {base_url}
  model: fake-vlm
  transport: {transport}
  concurrency: {concurrency}
  attempts: 1
  max_tokens: 64
  timeout_s: 30
  prices: {{fake-vlm: {{prompt_per_mtok: 0.5, completion_per_mtok: 1.5}}}}
"""
    )
    return recipe


def prepare_catalog(folder: Path, base_url: str, items: int) -> Path:
    """Ingest the phantom cases once and write `items` distinct questions about them."""
    recipe = load_recipe(write_recipe(folder, base_url, "openai", 1))
    catalog = Catalog(recipe.catalog_path)
    ingest(recipe, catalog, BuildReport())
    build_items(recipe, catalog, BuildReport())
    seeds = list(catalog.iter_items())
    variants = []
    for index in range(items):
        seed = seeds[index % len(seeds)]
        variants.append(
            seed.model_copy(update={"item_id": f"{seed.item_id}-{index:06d}", "question": f"{seed.question} ({index})"})
        )
    catalog.replace_items(variants)
    catalog.close()
    return recipe.catalog_path


def timed_synthesis(
    folder: Path, base_url: str, transport: str, concurrency: int
) -> tuple[float, float, int, float | None]:
    """Wall seconds, client CPU seconds, requests the server saw, and the rate at which they arrived
    between the first request's reply and the last request (the steady state, without start-up)."""
    recipe = load_recipe(write_recipe(folder, base_url, transport, concurrency))
    catalog = Catalog(recipe.catalog_path)
    before, _ = served(base_url)
    cpu, wall = time.process_time(), time.perf_counter()
    report = synthesize(recipe, catalog, recipe_ontology(recipe))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    catalog.close()
    if report.failed_calls:
        print(f"  failed calls (retried): {dict(report.failed_calls)}", file=sys.stderr)
    count, arrivals = served(base_url, since=before)
    steady = None
    if len(arrivals) > 2 * concurrency:  # leave out the first round: connections are being opened
        steady = (len(arrivals) - concurrency) / (arrivals[-1] - arrivals[concurrency - 1])
    return wall, cpu, count - before, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="Requests per unit of concurrency.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--transports", nargs="+", default=["openai", "aiohttp"])
    args = parser.parse_args()
    server, base_url = start_server(LATENCY_S)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        "| transport | concurrency | requests | wall s | requests/s (wall) | requests/s (steady) "
        "| fraction of c/latency (steady) | client CPU ms/request | server CPU ms/request | rerun requests "
        "| rerun wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    try:
        with tempfile.TemporaryDirectory() as work:
            base = Path(work) / "base"
            base.mkdir()
            largest = max(args.concurrency) * args.rounds
            seeded = prepare_catalog(base, base_url, largest)
            for transport in args.transports:
                for concurrency in args.concurrency:
                    count = concurrency * args.rounds
                    folder = Path(work) / f"{transport}-{concurrency}"
                    folder.mkdir()
                    shutil.copy(seeded, folder / "bench.duckdb")
                    trim(folder / "bench.duckdb", count)
                    server_cpu = cpu_of(server.pid)
                    wall, cpu, sent, steady = timed_synthesis(folder, base_url, transport, concurrency)
                    server_cpu = cpu_of(server.pid) - server_cpu
                    rerun_wall, _, rerun_sent, _ = timed_synthesis(folder, base_url, transport, concurrency)
                    steady = steady or sent / wall
                    print(
                        f"| {transport} | {concurrency} | {sent:,} | {wall:.2f} | {sent / wall:,.0f} | {steady:,.0f} | "
                        f"{steady / (concurrency / LATENCY_S):.2f} | {1000 * cpu / sent:.2f} | "
                        f"{1000 * server_cpu / sent:.2f} | {rerun_sent} | {rerun_wall:.2f} |",
                        flush=True,
                    )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def trim(path: Path, count: int) -> None:
    """Keep the first `count` items of a copied catalog."""
    catalog = Catalog(path)
    catalog.db.execute(
        "DELETE FROM items WHERE item_id NOT IN (SELECT item_id FROM items ORDER BY item_id LIMIT ?)", [count]
    )
    catalog.close()


if __name__ == "__main__":
    main()
