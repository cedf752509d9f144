"""How soon a user hears that the teacher endpoint is broken, with the default settings.

Run: `.venv/bin/python benchmarks/teacher_stall.py [--scenarios silent refused unauthorized] [--without-checks]`

Each scenario runs `rrd synthesize` in a child process (the user's command, default teacher settings but the
base URL, and `RRD_LOG_LEVEL` unset, so only warnings show) on 40 phantom APTOS cases against one broken
endpoint on 127.0.0.1, and reads its stderr as it comes: the time of the first warning, the time the
process ends, its exit code, the calls the server saw, the events in the catalog's `teacher_events`, and
the endpoint's line of the final message.
- `silent`: a server that accepts connections and never answers (tests/fake_openai.py `SilentServer`).
- `refused`: nothing listens on the port.
- `unauthorized`: every call gets 401 (the key the recipe names is not the one the server wants).
- `--without-checks`: `silent` again with `stall_warning_s: null` (no warning, no GET /models check: the
  engine's behaviour before them; it takes minutes).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import duckdb

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.pipeline import BuildReport, build_items, ingest
from retinal_reason_data.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.fake_openai import FakeOpenAI, SilentServer  # noqa: E402 - the repository's test servers

RRD = Path(sys.executable).parent / "rrd"
LIMIT_S = 900


def write_recipe(folder: Path, base_url: str, extra: str = "") -> Path:
    raw = folder.parent / "raw" / "aptos"
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        f"""name: stall
catalog: stall.duckdb
sources:
  - {{adapter: aptos2019, root: {raw}, phantom: {{cases: 40, seed: 1}}}}
teacher:
  kind: openai
  base_url: {base_url}
  model: fake-vlm
  api_key_env: STALL_BENCH_KEY
{extra}"""
    )
    return recipe


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def run_synthesis(recipe: Path) -> tuple[float | None, float, int, str]:
    """First warning (s), end (s), exit code, and the whole stderr of `rrd synthesize`."""
    env = {key: value for key, value in os.environ.items() if key != "RRD_LOG_LEVEL"}
    env["STALL_BENCH_KEY"] = "sk-stall-benchmark-key"
    started = time.monotonic()
    process = subprocess.Popen(
        [str(RRD), "synthesize", str(recipe)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    timer = threading.Timer(LIMIT_S, process.kill)  # bounded: a run that never stops is killed and reported
    timer.start()
    first_warning = None
    lines = []
    assert process.stderr is not None
    for line in process.stderr:
        if first_warning is None and line.startswith("WARNING"):
            first_warning = time.monotonic() - started
        lines.append(line)
    code = process.wait()
    timer.cancel()
    return first_warning, time.monotonic() - started, code, "".join(lines)


def events(catalog: Path) -> dict[str, int]:
    db = duckdb.connect(str(catalog), read_only=True)
    try:
        return dict(db.execute("SELECT kind, count(*) FROM teacher_events GROUP BY kind ORDER BY kind").fetchall())
    finally:
        db.close()


def final_line(output: str, base_url: str) -> str:
    """The endpoint's line of the final message ('every teacher endpoint failed; stopping. By endpoint:')."""
    tail = output.split("By endpoint:")[-1].splitlines()
    line = next((line.strip() for line in tail if base_url.split("//")[1].split("/")[0] in line), "")
    return line.replace("|", "/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=["silent", "refused", "unauthorized"])
    parser.add_argument("--without-checks", action="store_true", help="Also: silent with stall_warning_s: null.")
    args = parser.parse_args()
    scenarios = [(name, "") for name in args.scenarios]
    if args.without_checks:
        scenarios.append(("silent", "  stall_warning_s: null\n"))
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        "| endpoint | settings | first warning s | stop s | exit | calls the server saw | events logged "
        "| final message |"
    )
    print("|---|---|---:|---:|---:|---:|---|---|")
    with tempfile.TemporaryDirectory() as work:
        base = Path(work) / "base"
        base.mkdir()
        seeded = load_recipe(write_recipe(base, "http://127.0.0.1:9/v1"))
        catalog = Catalog(seeded.catalog_path)
        ingest(seeded, catalog, BuildReport())
        build_items(seeded, catalog, BuildReport())
        items = catalog.count("items")
        catalog.close()
        for index, (name, extra) in enumerate(scenarios):
            folder = Path(work) / f"{index}-{name}"
            folder.mkdir()
            (folder / "stall.duckdb").write_bytes(seeded.catalog_path.read_bytes())
            with ExitStack() as stack:
                if name == "silent":
                    server = stack.enter_context(SilentServer())
                    url, seen = server.base_url, lambda server=server: f"{server.connections} connections"
                elif name == "refused":
                    url, seen = closed_port_url(), lambda: "0"
                else:
                    fake = stack.enter_context(FakeOpenAI(expected_key="sk-another-key"))
                    url, seen = fake.base_url, lambda fake=fake: f"{len(fake.requests)} requests"
                recipe = write_recipe(folder, url, extra)
                warning, stop, code, output = run_synthesis(recipe)
                saw = seen()
            logged = events(folder / "stall.duckdb")
            settings = "defaults" if not extra else "stall_warning_s: null"
            first = f"{warning:.1f}" if warning is not None else "none"
            print(
                f"| {name} | {settings} | {first} | {stop:.1f} | {code} | {saw} | "
                f"{', '.join(f'{k} {v}' for k, v in logged.items()) or 'none'} | {final_line(output, url)} |",
                flush=True,
            )
            if os.environ.get("STALL_BENCH_VERBOSE"):
                print(output, file=sys.stderr)
    print(f"items: {items}; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
