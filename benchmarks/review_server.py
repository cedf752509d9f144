"""The review page's speed: snapshot time and memory of the review server, API latencies (each request on a new
connection, as before; and with 50 stalled half-header connections open), the browser's time from a key press to
the next trace on screen, verdict appends, and a build applying 10k verdicts.

Run: `.venv/bin/python benchmarks/review_server.py` (needs Debian's chromium for the browser figure).
The demo recipe is built in a temporary folder; a second catalog repeats its traces under new ids until it
holds about 100k traces, to see how the server scales.
"""

from __future__ import annotations

import http.client
import json
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import yaml

REPO = Path(__file__).resolve().parents[1]
RRD = Path(sys.executable).parent / "rrd"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def build_demo(folder: Path) -> Path:
    recipe = yaml.safe_load((REPO / "recipes" / "demo.yaml").read_text())
    recipe["annotations"] = "annotations"
    path = folder / "demo.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    subprocess.run([str(RRD), "build", str(path)], check=True, capture_output=True)
    return path


def scaled_copy(recipe_path: Path, folder: Path, target: int) -> Path:
    """A copy of the recipe whose catalog repeats every exported trace under new ids, to about `target`."""
    recipe = yaml.safe_load(recipe_path.read_text())
    catalog = folder / "scaled.duckdb"
    shutil.copy(recipe_path.parent / recipe["catalog"], catalog)
    for source in recipe["sources"]:
        source["root"] = str((recipe_path.parent / source["root"]).resolve())
    recipe |= {"catalog": str(catalog), "annotations": str(folder / "annotations")}
    db = duckdb.connect(str(catalog))
    traces = db.execute("SELECT count(*) FROM assignments WHERE fingerprint IS NOT NULL").fetchone()[0]
    copies = max(1, target // traces)
    db.execute("CREATE TEMP TABLE k AS SELECT range AS k FROM range(1, ?)", [copies])
    db.execute(
        """INSERT INTO items SELECT i.item_id || '-' || k, i.case_id, i.task, i.question_type, i.modality,
               json_merge_patch(i.data, json_object('item_id', i.item_id || '-' || k))
           FROM items i JOIN assignments a USING (item_id), k WHERE a.fingerprint IS NOT NULL"""
    )
    db.execute(
        """INSERT INTO generations SELECT g.fingerprint || '-' || k, g.item_id || '-' || k, g.attempt, g.verified,
               g.error, g.prompt_tokens, g.completion_tokens,
               json_merge_patch(g.data, json_object('fingerprint', g.fingerprint || '-' || k,
                                                    'item_id', g.item_id || '-' || k))
           FROM generations g JOIN assignments a ON a.fingerprint = g.fingerprint, k"""
    )
    db.execute(
        """INSERT INTO assignments SELECT a.item_id || '-' || k, a.group_id, a.split, a.fingerprint || '-' || k,
               a.attempts, a.pass_at_k FROM assignments a, k WHERE a.fingerprint IS NOT NULL"""
    )
    db.close()
    path = folder / "scaled.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


class Client:
    """A browser session as the server sees it: the cookie from the page, the CSRF token, the page's origin."""

    def __init__(self, port: int, annotator: str) -> None:
        self.port = port
        connection = http.client.HTTPConnection("127.0.0.1", port)
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        connection.close()
        self.headers = {"Cookie": response.getheader("Set-Cookie", "").split(";")[0]}
        csrf = self.get("/api/session")[1]["csrf"]
        self.post_headers = self.headers | {
            "Content-Type": "application/json",
            "Origin": f"http://127.0.0.1:{port}",
            "X-RRD-Request": "1",
            "X-RRD-CSRF": csrf,
        }
        self.post("/api/annotator", {"annotator": annotator})

    def get(self, path: str) -> tuple[float, Any]:
        return self._request("GET", path, None, self.headers)

    def post(self, path: str, body: dict) -> tuple[float, Any]:
        return self._request("POST", path, json.dumps(body), self.post_headers)

    def _request(self, method: str, path: str, body: str | None, headers: dict[str, str]) -> tuple[float, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port)
        started = time.perf_counter()
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        data = json.loads(response.read())
        seconds = time.perf_counter() - started
        connection.close()
        assert response.status == 200, data
        return seconds, data


def _ms(values: list[float]) -> str:
    values = sorted(values)
    return f"{statistics.median(values) * 1000:.1f} / {values[int(0.95 * (len(values) - 1))] * 1000:.1f}"


def measure_server(recipe_path: str) -> dict[str, Any]:
    """In a fresh process: snapshot time, memory, and API latencies (median / p95 ms)."""
    from retinal_reason_data.recipe import load_recipe
    from retinal_reason_data.review.server import ReviewServer

    recipe = load_recipe(recipe_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    server = ReviewServer(recipe, port=0)
    snapshot_s = time.perf_counter() - started
    server.start()
    stalled: list[socket.socket] = []
    try:
        client = Client(server.port, "bench")
        queue_times, (_, queue) = [], client.get("/api/queue?queue=unreviewed")
        for _ in range(10):
            queue_times.append(client.get("/api/queue?queue=unreviewed")[0])
        keys = queue["keys"]
        step = max(1, len(keys) // 200)
        item_times = [client.get(f"/api/item?item={i}&generation={g}")[0] for i, g in keys[::step][:200]]
        verdict_times = []
        for item, generation in keys[:100]:
            body = {"item_id": item, "generation_id": generation, "decision": "accept"}
            verdict_times.append(client.post("/api/verdict", body)[0])
        for _ in range(50):  # half a header each: held until the header timeout (10 s), which outlasts this
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Slow: ".encode())
            stalled.append(sock)
        stalled_times = [client.get(f"/api/item?item={i}&generation={g}")[0] for i, g in keys[::step][:50]]
        rss_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        return {
            "traces": queue["counts"]["all"],
            "snapshot_s": round(snapshot_s, 2),
            "rss_growth_mb": round(rss_mb, 1),
            "queue_ms": _ms(queue_times),
            "item_ms": _ms(item_times),
            "verdict_ms": _ms(verdict_times),
            "item_ms_50_stalled": _ms(stalled_times),
        }
    finally:
        for sock in stalled:
            sock.close()
        server.close()


def measure_browser(recipe_path: Path, presses: int = 40) -> str:
    """Key press to the next trace on screen (median / p95 ms), accepting `presses` traces in a row."""
    from playwright.sync_api import sync_playwright

    from retinal_reason_data.recipe import load_recipe
    from retinal_reason_data.review.server import ReviewServer

    server = ReviewServer(load_recipe(recipe_path), port=0, annotator="browser")
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            # bypass_csp only lets the measuring code below run; the page itself is unchanged
            page = browser.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)
            page.goto(server.url + "#queue=unreviewed")
            page.wait_for_selector("#steps p")
            page.evaluate(
                """() => {
                  window.__times = [];
                  document.addEventListener('keydown', () => { window.__pressed = performance.now(); }, true);
                  new MutationObserver(() => {
                    if (!window.__pressed) return;
                    window.__times.push(performance.now() - window.__pressed);
                    window.__pressed = 0;
                  }).observe(document.getElementById('steps'), { childList: true });
                }"""
            )
            for n in range(presses):
                page.keyboard.press("a")
                page.wait_for_function(f"window.__times.length > {n}")
                page.wait_for_timeout(150)  # an annotator's glance is longer than this; prefetch runs meanwhile
            times = [t / 1000 for t in page.evaluate("window.__times")]
            browser.close()
        return _ms(times)
    finally:
        server.close()


def measure_store_and_build(recipe_path: Path, verdicts: int = 10_000) -> dict[str, Any]:
    from retinal_reason_data.catalog import Catalog
    from retinal_reason_data.recipe import load_recipe
    from retinal_reason_data.review.verdicts import append_verdict, apply_verdicts, verdict_folder
    from retinal_reason_data.schema import Verdict

    recipe = load_recipe(recipe_path)
    db = duckdb.connect(str(recipe.catalog_path), read_only=True)
    keys = db.execute(
        "SELECT item_id, fingerprint FROM assignments WHERE fingerprint IS NOT NULL ORDER BY item_id LIMIT ?",
        [verdicts],
    ).fetchall()
    db.close()
    folder = verdict_folder(recipe)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    decisions = ["accept"] * 8 + ["reject", "edit"]
    started = time.perf_counter()
    for n, (item, generation) in enumerate(keys):
        decision = decisions[n % len(decisions)]
        extra: dict[str, Any] = {"reason": "wrong_reasoning"} if decision == "reject" else {}
        if decision == "edit":
            extra = {"edited_think": "Step 1: corrected by the benchmark."}
        append_verdict(
            folder,
            Verdict(item_id=item, generation_id=generation, annotator=f"a{n % 3}", decision=decision,
                    time=start + timedelta(seconds=n), **extra),
        )  # fmt: skip
    append_s = time.perf_counter() - started
    catalog = Catalog(recipe.catalog_path)
    started = time.perf_counter()
    report = apply_verdicts(recipe, catalog)
    apply_s = time.perf_counter() - started
    catalog.close()
    return {
        "verdicts": len(keys),
        "append_per_s": round(len(keys) / append_s),
        "apply_s": round(apply_s, 2),
        "left_out": report.left_out,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--server":
        print(json.dumps(measure_server(sys.argv[2])))
        return
    load = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        demo = build_demo(folder)
        scaled = scaled_copy(demo, folder, 100_000)
        for label, recipe in (("demo", demo), ("scaled", scaled)):
            result = subprocess.run([sys.executable, __file__, "--server", str(recipe)], capture_output=True, text=True)
            print(label, result.stdout.strip() or result.stderr[-2000:])
        print("browser key press -> next trace (median / p95 ms):", measure_browser(demo))
        print("store and build:", json.dumps(measure_store_and_build(scaled)))
    print("load average at start:", " ".join(load))


if __name__ == "__main__":
    main()
