"""`rrd push` and `rrd diff` through the real `huggingface_hub` client against the Hub emulator on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
import yaml
from huggingface_hub import HfApi, snapshot_download
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from tests.conftest import SMALL_SOURCES, write_recipe
from tests.helpers.builds import copy_build
from tests.hub_emulator import HubEmulator

TOKEN = "hf_emulatorTOKEN_do_not_print_7f3a"
REPO = "alice/retina-release"
FORMATS = ["hf", "mm-retinal-reason", "ophthareason-eval", "verl", "easyr1", "sharegpt"]
runner = CliRunner()


def rrd(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    assert TOKEN not in result.output
    return result.output


def _recipe(folder: Path, sources: list[dict[str, object]] = SMALL_SOURCES) -> Path:
    return write_recipe(
        folder,
        sources=sources,
        export={"out": "export", "max_shard_size": "200KB", "formats": FORMATS},
        hub={"repo_id": REPO},
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_small_build: Path) -> Path:
    """The session's small build exported in all formats, copied by each test that changes it."""
    folder = tmp_path_factory.mktemp("release")
    copy_build(shared_small_build, folder, keep_export=False)
    rrd("export", str(_recipe(folder)))
    return folder


@pytest.fixture
def release(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built folder (recipe, catalog, export); returns the recipe path."""
    copy = tmp_path / "release"
    shutil.copytree(built, copy)
    return copy / "recipe.yaml"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubEmulator]:
    """The emulator, with huggingface_hub pointed at it: HF_ENDPOINT, a token in HF_TOKEN, no stored login, and
    the LFS protocol (the emulator does not speak Xet). Objects over 64 KB go in parts (multipart transfer)."""
    emulator = HubEmulator(tokens={TOKEN: "alice"}, chunk_size=64 * 1024).start()
    monkeypatch.setenv("HF_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    yield emulator
    emulator.stop()


def api(hub: HubEmulator) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=TOKEN)


def manifest(recipe: Path) -> dict:
    return json.loads((recipe.parent / "export" / "manifest.json").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(hub: HubEmulator, revision: str, folder: Path) -> Path:
    return Path(
        snapshot_download(
            REPO, repo_type="dataset", revision=revision, endpoint=hub.endpoint, token=TOKEN, cache_dir=folder
        )
    )


def test_push_creates_a_private_repository_uploads_one_commit_and_tags_it(
    release: Path, hub: HubEmulator, tmp_path: Path
) -> None:
    output = rrd("push", str(release), "--version", "1.0.0")
    assert "tagged alice/retina-release@v1.0.0" in output
    client = api(hub)
    info = client.repo_info(REPO, repo_type="dataset")
    assert info.private is True
    commits = client.list_repo_commits(REPO, repo_type="dataset")
    assert [c.title for c in commits] == ["Release v1.0.0", "initial commit"]
    tags = {ref.name: ref.target_commit for ref in client.list_repo_refs(REPO, repo_type="dataset").tags}
    assert tags == {"v1.0.0": commits[0].commit_id}
    files = manifest(release)["files"]
    expected = {f["path"] for f in files} | {"manifest.json", "CHANGELOG.md", "changelog/v1.0.0.json", ".gitattributes"}
    assert set(client.list_repo_files(REPO, repo_type="dataset", revision="v1.0.0")) == expected
    assert hub.calls("PUT", r"/part/\d+$"), "large objects should have gone up in parts"

    snapshot = download(hub, "v1.0.0", tmp_path / "cache")
    for entry in files:
        assert sha256(snapshot / entry["path"]) == entry["sha256"], entry["path"]
    assert (snapshot / "manifest.json").read_bytes() == (release.parent / "export" / "manifest.json").read_bytes()
    changelog = (snapshot / "CHANGELOG.md").read_text()
    assert "## v1.0.0" in changelog and "first release" in changelog
    rows = manifest(release)["rows"]
    assert f"| sft | train | 0 | {rows['sft']['train']} |" in changelog
    full = json.loads((snapshot / "changelog" / "v1.0.0.json").read_text())
    assert len(full["configs"]["sft"]["added"]) == sum(rows["sft"].values())
    loaded = datasets.load_dataset(str(snapshot), "rl")
    assert {split: ds.num_rows for split, ds in loaded.items()} == rows["rl"]


def test_a_new_version_lists_what_changed_by_id_and_removes_stale_files(
    release: Path, hub: HubEmulator, tmp_path: Path
) -> None:
    rrd("push", str(release), "--version", "1.0.0")
    before = manifest(release)
    old_index = release.parent / "v1-index.parquet"
    shutil.copy(release.parent / "export" / "index" / "samples.parquet", old_index)
    smaller = _recipe(release.parent, sources=[s for s in SMALL_SOURCES if s["adapter"] != "ffa_ir"])
    rrd("build", str(smaller))
    after = manifest(release)
    output = rrd("push", str(release), "--version", "1.1.0")
    assert "since v1.0.0" in output

    client = api(hub)
    assert [c.title for c in client.list_repo_commits(REPO, repo_type="dataset")][:2] == [
        "Release v1.1.0",
        "Release v1.0.0",
    ]
    files_now = set(client.list_repo_files(REPO, repo_type="dataset", revision="v1.1.0"))
    stale = {f["path"] for f in before["files"]} - {f["path"] for f in after["files"]}
    assert stale and not stale & files_now, "files of v1.0.0 that v1.1.0 no longer has must be deleted"
    assert set(client.list_repo_files(REPO, repo_type="dataset", revision="v1.0.0")) >= {
        f["path"] for f in before["files"]
    }, "the old tag keeps its files"

    snapshot = download(hub, "v1.1.0", tmp_path / "cache")
    diff = json.loads((snapshot / "changelog" / "v1.1.0.json").read_text())
    import pyarrow.parquet as pq

    old = pq.read_table(old_index).to_pylist()
    ffa_ids = {row["id"] for row in old if row["config"] == "sft"} - {
        row["id"] for row in pq.read_table(release.parent / "export" / "index" / "samples.parquet").to_pylist()
    }
    assert set(diff["configs"]["sft"]["removed"]) == ffa_ids and ffa_ids
    changelog = (snapshot / "CHANGELOG.md").read_text()
    assert changelog.index("## v1.1.0") < changelog.index("## v1.0.0"), "newest entry first, older ones kept"
    assert f"{len(ffa_ids)} removed" in changelog

    # rrd diff: two tags, and a tag against an export folder, give the same answer
    by_tags = json.loads(rrd("diff", f"{REPO}@v1.0.0", f"{REPO}@v1.1.0", "--json"))
    by_folder = json.loads(rrd("diff", "v1.0.0", str(release.parent / "export"), "--repo", REPO, "--json"))
    assert by_tags["configs"] == by_folder["configs"] == diff["configs"]
    text = rrd("diff", f"{REPO}@v1.0.0", f"{REPO}@v1.1.0", "--limit", "2")
    assert f"removed {len(ffa_ids)}:" in text


def _oid(path: str) -> str:
    return path.split("/")[3]


def completed_objects(hub: HubEmulator) -> set[str]:
    """LFS objects whose upload completed (one PUT, or the completion of a multipart upload)."""
    return {
        _oid(path)
        for method, path, status in hub.requests
        if status == 200 and re.fullmatch(r"/_lfs/\w+/[0-9a-f]{64}(/complete)?", path) and method in ("PUT", "POST")
    }


def test_a_push_interrupted_during_the_upload_completes_when_run_again(release: Path, hub: HubEmulator) -> None:
    hub.fail("PUT", r"^/_lfs/", status=403, after=6)
    output = rrd("push", str(release), "--version", "1.0.0", code=1)
    assert "run the same push again" in output
    client = api(hub)
    assert not client.list_repo_refs(REPO, repo_type="dataset").tags
    assert [c.title for c in client.list_repo_commits(REPO, repo_type="dataset")] == ["initial commit"]
    stored_before = completed_objects(hub)
    assert stored_before, "some objects went up before the failure"

    hub.requests.clear()
    rrd("push", str(release), "--version", "1.0.0")
    sent_again = {_oid(path) for method, path, _ in hub.requests if method == "PUT"}
    assert sent_again and not stored_before & sent_again, "objects stored by the interrupted push are not sent again"
    assert stored_before | completed_objects(hub) == {
        file.lfs_sha256
        for file in hub.repo(REPO).commits[hub.repo(REPO).branches["main"]].files.values()
        if file.lfs_sha256
    }
    assert [c.title for c in client.list_repo_commits(REPO, repo_type="dataset")] == [
        "Release v1.0.0",
        "initial commit",
    ]
    assert [ref.name for ref in client.list_repo_refs(REPO, repo_type="dataset").tags] == ["v1.0.0"]


def test_a_push_interrupted_before_tagging_tags_the_same_commit_when_run_again(release: Path, hub: HubEmulator) -> None:
    hub.fail("POST", r"/tag/", status=403)
    rrd("push", str(release), "--version", "1.0.0", code=1)
    client = api(hub)
    head = client.list_repo_commits(REPO, repo_type="dataset")[0]
    assert head.title == "Release v1.0.0" and not client.list_repo_refs(REPO, repo_type="dataset").tags
    output = rrd("push", str(release), "--version", "1.0.0")
    assert "not committing again" in output
    assert [c.commit_id for c in client.list_repo_commits(REPO, repo_type="dataset")][0] == head.commit_id
    tags = {ref.name: ref.target_commit for ref in client.list_repo_refs(REPO, repo_type="dataset").tags}
    assert tags == {"v1.0.0": head.commit_id}
    # and once tagged, the same push is done: nothing is sent
    hub.requests.clear()
    assert "already holds this export" in rrd("push", str(release), "--version", "1.0.0")
    assert not [call for call in hub.requests if call[0] in ("POST", "PUT") and "/preupload/" not in call[1]]


@pytest.mark.parametrize(
    "tamper, problem",
    [
        (lambda out: (out / "README.md").write_text("edited by hand\n"), "README.md: "),
        (
            lambda out: next((out / "data" / "sft").glob("train-*.parquet")).unlink(),
            "listed in the manifest but missing",
        ),
        (lambda out: (out / "verl" / "notes.txt").write_text("x"), "verl/notes.txt: not in the manifest"),
        (lambda out: _flip_a_byte(next((out / "sharegpt" / "images").iterdir())), "content differs"),
    ],
)
def test_a_push_of_files_that_do_not_match_the_manifest_is_refused(
    release: Path, hub: HubEmulator, tamper: object, problem: str
) -> None:
    tamper(release.parent / "export")  # type: ignore[operator]
    output = rrd("push", str(release), "--version", "1.0.0", code=1)
    assert "do not match manifest.json" in output and problem in output
    assert hub.requests == [], "nothing is sent to the Hub"


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_existing_and_older_versions_are_refused(release: Path, hub: HubEmulator) -> None:
    rrd("push", str(release), "--version", "1.2.0")
    recipe = yaml.safe_load(release.read_text())  # a different card: a different export (content key)
    recipe["export"]["card"] = {"citation": "A different card, so a different content key."}
    release.write_text(yaml.safe_dump(recipe))
    output = rrd("export", str(release))
    assert "written" in output
    assert "version v1.2.0 exists" in rrd("push", str(release), "--version", "1.2.0", code=1)
    assert "older than the latest version v1.2.0" in rrd("push", str(release), "--version", "1.1.9", code=1)
    assert "expected X.Y.Z" in rrd("push", str(release), "--version", "1.2", code=1)
    assert [ref.name for ref in api(hub).list_repo_refs(REPO, repo_type="dataset").tags] == ["v1.2.0"]


def test_a_public_repository_is_not_pushed_to_without_public(release: Path, hub: HubEmulator) -> None:
    api(hub).create_repo(REPO, repo_type="dataset", private=False)
    output = rrd("push", str(release), "--version", "1.0.0", code=1)
    assert "pass --public" in output
    rrd("push", str(release), "--version", "1.0.0", "--public")
    assert api(hub).repo_info(REPO, repo_type="dataset").private is False


def test_without_a_token_nothing_is_pushed(
    release: Path, hub: HubEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    assert "no Hugging Face token" in rrd("push", str(release), "--version", "1.0.0", code=1)
    assert hub.requests == []
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_9c2e")
    output = rrd("push", str(release), "--version", "1.0.0", code=1)
    assert "hf_wrong_token_9c2e" not in output and "Invalid credentials" in output
    # the stored login is used when HF_TOKEN is not set
    monkeypatch.delenv("HF_TOKEN")
    stored = tmp_path / "stored-token"
    stored.write_text(TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(stored))
    rrd("push", str(release), "--version", "1.0.0")
    assert api(hub).repo_info(REPO, repo_type="dataset").private is True


def test_dry_run_shows_the_plan_and_changes_nothing(release: Path, hub: HubEmulator) -> None:
    output = rrd("push", str(release), "--version", "0.1.0", "--dry-run")
    assert "dry run: would upload" in output and "## v0.1.0" in output
    assert all(method == "GET" or "/resolve/" in path for method, path, _ in hub.requests)
    assert not hub.repos
