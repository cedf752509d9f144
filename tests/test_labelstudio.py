"""Label Studio: the tasks and labelling config, the images served to the annotator's browser, atomic task files,
and the import of Label Studio's own exports (JSON and JSON_MIN, users by e-mail and by id)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.cli import app
from retinal_reason_data.recipe import Recipe, load_recipe
from retinal_reason_data.review.image_server import ImageServer, ServedImage, read_manifest, serve_images
from retinal_reason_data.review.labelstudio import CONTROLS, JSON_MIN_KEYS, label_config
from retinal_reason_data.review.labelstudio_import import annotator_for, annotator_for_email
from retinal_reason_data.review.verdicts import append_verdict, read_verdicts, verdict_folder
from tests.conftest import write_recipe
from tests.helpers.builds import copy_build
from tests.helpers.review import REVIEW_SOURCES, exported_traces, verdict

FIXTURES = Path(__file__).parent / "data" / "labelstudio"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
LABEL_STUDIO = "http://localhost:8080"
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_review_build: Path) -> Path:
    """A copy of the session's review build: this module's tests may write to its catalog."""
    return copy_build(shared_review_build, tmp_path_factory.mktemp("labelstudio"))


def recipe_over(built: Path, folder: Path) -> Recipe:
    """A recipe over the built catalog whose verdicts (annotations/) live in `folder`."""
    sources = [{**source, "root": str(built.parent / source["root"])} for source in REVIEW_SOURCES]
    return load_recipe(write_recipe(folder, sources=sources, catalog=str(built.parent / "small.duckdb")))


def export(recipe: Recipe, tasks: Path, *options: str) -> Any:
    return runner.invoke(app, ["annotations", "export-labelstudio", str(recipe.path), "--tasks", str(tasks), *options])


# --- the tasks and the config -------------------------------------------------------------------------------
def test_every_field_the_config_names_is_in_every_task(built: Path, tmp_path: Path) -> None:
    recipe = recipe_over(built, tmp_path)
    tasks_path = tmp_path / "ls" / "tasks.json"
    result = export(recipe, tasks_path)
    assert result.exit_code == 0, result.output
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == len(exported_traces(recipe))
    config_text = tasks_path.with_suffix(".config.xml").read_text()
    config = ElementTree.fromstring(config_text)
    slots = max(sum(1 for key in task["data"] if key.startswith("image_")) for task in tasks)
    assert slots == 3 and config_text == label_config(slots)  # the FFA items have three images, side by side
    assert len(config.findall(".//Image")) == slots and not any(i.get("valueList") for i in config.iter("Image"))
    # Label Studio refuses a task that lacks a key the config names ('"image_2" key is expected in task data')
    variables = set(re.findall(r"\$(\w+)", config_text))
    assert all(variables <= set(task["data"]) for task in tasks)
    assert config.find("Header").get("value") == "$header"  # one field, not a template over the whole task
    names = {node.get("name") for node in config.iter() if node.get("name")}
    assert set(CONTROLS) <= names
    for task in tasks:
        data = task["data"]
        assert not set(data) & set(CONTROLS + JSON_MIN_KEYS)  # JSON_MIN would overwrite them
        assert re.fullmatch(r"[a-z0-9_]+ · [A-Za-z]+ · (basic|complex) / [a-z_]+( · pass@k [0-9.]+)?", data["header"])
        shown = [data[f"image_{n}"] for n in range(slots) if data[f"image_{n}"]]
        assert all(url.startswith("http://127.0.0.1:8765/") for url in shown)
        # the text boxes start with the trace: a prediction whose results Label Studio copies into the annotation
        (prediction,) = task["predictions"]
        texts = {r["from_name"]: r["value"]["text"] for r in prediction["result"] if r["type"] == "textarea"}
        assert texts == {"edited_think": [data["trace_think"]], "edited_answer": [data["trace_answer"]]}
    multiple = next(task["data"] for task in tasks if task["data"]["question_type"] == "multiple_choice")
    assert multiple["options"].startswith("A. ") and "\nB. " in multiple["options"]


def test_a_failed_export_leaves_the_previous_files_as_they_were(built: Path, tmp_path: Path) -> None:
    recipe = recipe_over(built, tmp_path)
    tasks_path = tmp_path / "ls" / "tasks.json"
    assert export(recipe, tasks_path).exit_code == 0
    before = {path.name: path.read_bytes() for path in tasks_path.parent.iterdir()}
    assert sorted(before) == ["tasks.config.xml", "tasks.images.json", "tasks.json"]
    image = next(iter(read_manifest(tasks_path)[1].values())).path
    hidden = image.with_name(image.name + ".hidden")
    image.rename(hidden)
    try:
        result = export(recipe, tasks_path)
    finally:
        hidden.rename(image)
    assert result.exit_code == 2 and "images of the tasks are missing" in result.output
    assert str(image) in result.output
    assert {path.name: path.read_bytes() for path in tasks_path.parent.iterdir()} == before  # no part file left


def test_embedded_images_fit_the_cap(built: Path, tmp_path: Path) -> None:
    recipe = recipe_over(built, tmp_path)
    tasks_path = tmp_path / "ls" / "tasks.json"
    result = export(recipe, tasks_path, "--images", "embed", "--max-image-bytes", "20000")
    assert result.exit_code == 0, result.output
    assert "reduced to fit --max-image-bytes" in result.output and not tasks_path.with_suffix(".images.json").exists()
    urls = [value for task in json.loads(tasks_path.read_text()) for key, value in task["data"].items()]
    urls = [url for url in urls if isinstance(url, str) and url.startswith("data:")]
    assert urls and all(len(base64.b64decode(url.split(",", 1)[1])) <= 20000 for url in urls)
    bad = export(recipe, tasks_path, "--image-url", "http://192.0.2.1:8765")
    assert bad.exit_code == 2 and "served on this machine only" in bad.output


# --- the images, served -------------------------------------------------------------------------------------
def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    connection.close()
    return result


@dataclass
class Served:
    tasks: Path
    port: int
    images: dict[str, ServedImage]


@pytest.fixture
def served(built: Path, tmp_path: Path) -> Iterator[Served]:
    """Step 1: export the tasks (naming a free port); step 2: `serve-images` them until the test ends."""
    recipe = recipe_over(built, tmp_path)
    tasks_path = tmp_path / "ls" / "tasks.json"
    probe = ImageServer({}, port=0)  # a free port
    port = probe.port
    probe.close()
    assert export(recipe, tasks_path, "--image-url", f"http://127.0.0.1:{port}").exit_code == 0
    stop = threading.Event()
    lines: list[str] = []
    thread = threading.Thread(target=serve_images, args=(tasks_path, lines.append), kwargs={"stop": stop})
    thread.start()
    for _ in range(100):  # the server is up once it has said so (at most 10 s)
        if lines:
            break
        stop.wait(0.1)
    assert lines and f"at http://127.0.0.1:{port}/" in lines[0], lines
    yield Served(tasks_path, port, read_manifest(tasks_path)[1])
    stop.set()
    thread.join(timeout=10)


def test_serve_images_answers_exactly_the_tasks_images(served: Served) -> None:
    port, images = served.port, served.images
    tasks = json.loads(served.tasks.read_text())
    urls = {task["data"][key] for task in tasks for key in task["data"] if key.startswith("image_")} - {""}
    assert len(urls) == len(images) == 19
    for url in sorted(urls):
        name = url.rsplit("/", 1)[1]
        status, headers, body = get(port, f"/{name}", {"Origin": LABEL_STUDIO})
        assert status == 200 and headers["access-control-allow-origin"] == LABEL_STUDIO
        assert hashlib.sha256(body).hexdigest() == images[name].sha256  # the very file, unchanged
        assert headers["content-type"] in ("image/jpeg", "image/png") and headers["x-content-type-options"] == "nosniff"
    name = next(iter(images))
    status, headers, _ = get(port, f"/{name}", {"Origin": "http://attacker.example"})
    assert status == 200 and "access-control-allow-origin" not in headers  # another site's script cannot read it
    assert headers["cross-origin-resource-policy"] == "same-origin"  # nor embed it with a plain <img>
    assert get(port, "/" + "0" * 64 + ".jpg")[0] == 404
    assert get(port, "/../recipe.yaml")[0] == 404
    assert get(port, f"/{name}", {"Host": f"attacker.example:{port}"})[0] == 400  # DNS rebinding
    assert get(port, f"/{name}", method="POST")[0] == 405
    status, headers, _ = get(port, f"/{name}", {"Origin": LABEL_STUDIO}, method="OPTIONS")
    assert status == 204 and headers["access-control-allow-origin"] == LABEL_STUDIO


def test_an_image_changed_after_the_export_is_not_served(served: Served) -> None:
    name, image = next(iter(served.images.items()))
    original = image.path.read_bytes()
    try:
        image.path.write_bytes(original[:-10] + b"\0" * 10)
        status, _, body = get(served.port, f"/{name}")
    finally:
        image.path.write_bytes(original)
    assert status == 410 and b"changed since the tasks were exported" in body
    assert get(served.port, f"/{name}")[0] == 200


def test_serve_images_needs_the_list_export_wrote(tmp_path: Path) -> None:
    (tmp_path / "tasks.json").write_text("[]")
    result = runner.invoke(app, ["annotations", "serve-images", str(tmp_path / "tasks.json")])
    assert result.exit_code == 2 and "tasks.images.json: not found" in result.output


def test_label_studio_in_a_browser_reads_the_images_only_from_its_own_origin(served: Served) -> None:
    """As Label Studio's page does (XMLHttpRequest, then a blob URL), from an allowed origin and from another;
    a plain <img> of another site gets nothing either."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed at /usr/bin/chromium: `make test` installs it")
    name = next(iter(served.images))
    pages = {label: _page_server(b"<!doctype html><title>a site</title>") for label in ("allowed", "other")}
    allowed_origin = f"http://127.0.0.1:{pages['allowed'].server_address[1]}"
    relisten = ImageServer(served.images, port=0, origins=[allowed_origin])  # Label Studio's origin is that page's
    relisten.start()
    script = """async (url) => await new Promise((done) => {
        const request = new XMLHttpRequest();
        request.open("GET", url); request.responseType = "blob";
        request.onload = () => done(request.status + " " + request.response.size);
        request.onerror = () => done("blocked");
        request.send();
    })"""
    embed = """async (url) => await new Promise((done) => {
        const image = new Image();
        image.onload = () => done("shown"); image.onerror = () => done("blocked");
        image.src = url;
    })"""
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                results = {}
                for label, httpd in pages.items():
                    page = browser.new_page()
                    page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/")
                    results[label] = page.evaluate(script, f"{relisten.url}/{name}")
                    results[f"{label} <img>"] = page.evaluate(embed, f"{relisten.url}/{name}")
            finally:
                browser.close()
    finally:
        relisten.close()
        for httpd in pages.values():
            httpd.shutdown()
            httpd.server_close()
    size = len(relisten.image_bytes(name)[0])
    assert results == {
        "allowed": f"200 {size}",
        "other": "blocked",
        "allowed <img>": "blocked",
        "other <img>": "blocked",
    }


def _page_server(body: bytes) -> Any:
    """A one-page loopback site, standing in for Label Studio's origin."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


# --- import -------------------------------------------------------------------------------------------------
def test_annotators_are_keyed_by_the_whole_address() -> None:
    names = {
        annotator_for_email(email)
        for email in (
            "alice@hospital-a.org",
            "alice@hospital-b.org",
            "alice_b@x.org",
            "alice-b@x.org",
            "alice+b@x.org",
            "Alice@x.org",
        )
    }
    assert len(names) == 6 and "alice_at_hospital-a.org" in names
    assert annotator_for_email("alice@Hospital-A.ORG") == "alice_at_hospital-a.org"  # domains ignore case
    long = annotator_for_email("a" * 70 + "@hospital.org")
    assert re.fullmatch(r"ls-a{40}-[0-9a-f]{12}", long) and long != annotator_for_email("a" * 71 + "@hospital.org")
    assert annotator_for({"id": 7, "email": "bob@x.org"}, "labelstudio") == "bob_at_x.org"
    assert annotator_for(7, "hospital-b") == "hospital-b-7" and annotator_for(None, "labelstudio") is None


# Label Studio 1.23.2's own exports of one project (tests/data/labelstudio/README.md): tasks 1-7 of this build
# reviewed by admin@rrd.test (user 1), alice@hospital-a.org (user 2) and alice@hospital-b.org (user 3). Written by
# label_studio/data_export/serializers.py (JSON) and HumanSignal/label-studio-sdk@97fcff19fa5a
# src/label_studio_sdk/converter/converter.py convert_to_json_min + utils.py prettify_result (JSON_MIN)
EXPORTS = {
    "export-json-emails.json": ("admin_at_rrd.test", "alice_at_hospital-a.org", "alice_at_hospital-b.org"),
    "export-json-ids.json": ("labelstudio-1", "labelstudio-2", "labelstudio-3"),
    "export-json_min-emails.json": ("admin_at_rrd.test", "alice_at_hospital-a.org", "alice_at_hospital-b.org"),
    "export-json_min-ids.json": ("labelstudio-1", "labelstudio-2", "labelstudio-3"),
}


def _fixture_keys(name: str) -> list[tuple[str, str]]:
    records = json.loads((FIXTURES / name).read_text())
    return [((r.get("data") or r)["item_id"], (r.get("data") or r)["generation_id"]) for r in records]


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_label_studio_exports_are_imported_as_the_page_would_take_them(built: Path, tmp_path: Path, name: str) -> None:
    recipe = recipe_over(built, tmp_path)
    traces = {(item, generation) for item, generation, _ in exported_traces(recipe)}
    assert set(_fixture_keys(name)) <= traces, (
        "the phantom build changed: export its tasks again and review them in Label Studio as "
        "tests/data/labelstudio/README.md says"
    )
    admin, alice_a, alice_b = EXPORTS[name]
    result = runner.invoke(app, ["annotations", "import-labelstudio", str(recipe.path), str(FIXTURES / name)])
    assert result.exit_code == 1, result.output  # two annotations could not be used, and say why
    json_form = "json_min" not in name
    assert (
        f"{8 if json_form else 7} annotations: 5 verdicts added, 0 already there, "
        f"{1 if json_form else 0} skipped in Label Studio, 0 without a decision, 2 not usable"
    ) in result.output
    assert f"by {admin}: decision 'edit' but the text was not changed: accept the trace instead" in result.output
    assert f"by {alice_a}: the edited answer 'A' does not match the reference answer 'D'" in result.output
    folder = verdict_folder(recipe)
    assert sorted(path.stem for path in folder.glob("*.jsonl")) == sorted([admin, alice_a, alice_b])
    reviews = read_verdicts(folder).reviews()
    first = reviews[_fixture_keys(name)[0]]  # task 1: one alice accepted, the other rejected
    assert {v.annotator: str(v.decision) for v in first.verdicts} == {alice_a: "accept", alice_b: "reject"}
    assert first.disagreement and first.final.reason == "hallucinated_finding"
    assert first.final.note == "no leakage in image 2"
    edited = next(review for review in reviews.values() if review.decision == "edit")  # task 4, one added step
    assert edited.final.annotator == admin and edited.final.edited_answer is None  # the answer was not changed
    assert edited.final.edited_think.endswith("Step 5: The annotator adds: the late leakage confirms it.")

    again = runner.invoke(app, ["annotations", "import-labelstudio", str(recipe.path), str(FIXTURES / name)])
    assert "5 verdicts added" not in again.output and "0 verdicts added, 5 already there" in again.output
    assert read_verdicts(folder).count == 5


def test_the_other_export_form_of_the_same_annotations_adds_nothing(built: Path, tmp_path: Path) -> None:
    recipe = recipe_over(built, tmp_path)
    args = ["annotations", "import-labelstudio", str(recipe.path)]
    runner.invoke(app, [*args, str(FIXTURES / "export-json-ids.json")])
    result = runner.invoke(app, [*args, str(FIXTURES / "export-json_min-emails.json")])
    assert "0 verdicts added, 5 already there" in result.output
    assert "already imported as labelstudio-2, not as alice_at_hospital-a.org" in result.output
    assert read_verdicts(verdict_folder(recipe)).count == 5


def test_a_file_that_is_not_an_export_of_rrd_tasks_is_refused_whole(built: Path, tmp_path: Path) -> None:
    recipe = recipe_over(built, tmp_path)
    args = ["annotations", "import-labelstudio", str(recipe.path)]
    path = tmp_path / "export.json"
    for content, message in [
        ("{not json", "cannot read a Label Studio export: expected JSON or JSON_MIN, a list"),
        ('{"tasks": []}', "cannot read a Label Studio export: expected JSON or JSON_MIN, a list"),
        ((FIXTURES / "export-json-emails.json").read_text()[:-300], "cannot read a Label Studio export (not JSON"),
        ("[1]", "object 1: expected an object, got int"),
        ('[{"data": {"image": "x.png"}, "annotations": []}]', "no item_id and generation_id"),
        ('[{"something": 1}]', "neither a task"),
    ]:
        path.write_text(content)
        result = runner.invoke(app, [*args, str(path)])
        assert result.exit_code == 2 and message in result.output, (content[:40], result.output)
        assert read_verdicts(verdict_folder(recipe)).count == 0  # checked whole before anything is written
    tasks = json.loads((FIXTURES / "export-json-emails.json").read_text())
    tasks[0]["data"]["item_id"] = "not-an-item"
    path.write_text(json.dumps(tasks))
    result = runner.invoke(app, [*args, str(path)])
    assert result.exit_code == 1 and "item not-an-item is not in the catalog" in result.output
    assert read_verdicts(verdict_folder(recipe)).count == 3  # the rest is imported (task 1 had two)


# --- a build names the edits it cannot use ------------------------------------------------------------------
def test_the_build_summary_and_stats_name_an_edit_left_out(built: Path, tmp_path: Path) -> None:
    recipe = recipe_over(built, tmp_path)
    item, generation, _ = next(t for t in exported_traces(recipe) if t[2] == "true_false")
    catalog = Catalog(recipe.catalog_path)
    try:
        reference = json.loads(catalog.query("SELECT data FROM items WHERE item_id = ?", [item])[0][0])["answer"]
    finally:
        catalog.close()
    wrong = "False" if reference["text"] == "True" else "True"
    append_verdict(verdict_folder(recipe), verdict(item, generation, "alice", "edit", edited_answer=wrong))
    result = runner.invoke(app, ["export", str(recipe.path)])
    assert result.exit_code == 0, result.output
    line = f"edit left out  item {item}, trace {generation[:12]}, by alice: the edited answer '{wrong}' does not match"
    assert line in result.output
    stats = json.loads(runner.invoke(app, ["stats", str(recipe.path), "--json"]).output)
    (unusable,) = stats["review"]["unusable_edits"]
    assert unusable["item_id"] == item and unusable["generation_id"] == generation and unusable["annotator"] == "alice"
    assert unusable["why"].startswith(f"the edited answer '{wrong}' does not match the reference answer")
