"""Versioned releases on the Hugging Face Hub (`rrd push`).

A push checks the export against its manifest, creates the dataset repository (private unless asked),
uploads every file of the export plus the changelog in one commit (files of the previous version that the
new one no longer has are deleted in that same commit), and tags the commit `vX.Y.Z`. It is safe to run
again after an interruption: objects already uploaded are not sent twice (the Hub answers that it has them),
a commit that already holds this export is not repeated, and only the missing steps are done.

The token comes from HF_TOKEN or the stored login (huggingface_hub's `get_token`) and is never printed.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from pydantic import BaseModel, Field

from retinal_reason_data import __version__
from retinal_reason_data.recipe import Recipe
from retinal_reason_data.release.changelog import prepend, render_entry
from retinal_reason_data.release.diff import ReleaseDiff, ReleaseError, diff_indexes, download_from_hub, hub_endpoint
from retinal_reason_data.release.index import INDEX_PATH, read_index
from retinal_reason_data.release.shards import file_sha256

_VERSION = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
MANIFEST = "manifest.json"
CHANGELOG = "CHANGELOG.md"
KEPT_ON_HUB = (".gitattributes", CHANGELOG)  # files of the repository that a release does not replace


class PushReport(BaseModel):
    """What a push did (or, with --dry-run, would do)."""

    repo_id: str
    tag: str
    private: bool
    dry_run: bool = False
    created: bool = False
    previous_tag: str | None = None
    files: int = 0
    bytes: int = 0
    deleted: list[str] = Field(default_factory=list)
    commit: str | None = None
    committed: bool = False
    tagged: bool = False
    already_released: bool = False
    changelog: str = ""
    diff: ReleaseDiff | None = None


RERUN = "run the same push again: what was uploaded is kept and only the missing steps are done"


def _reason(exc: BaseException) -> str:
    """The first line of an error and of its cause (huggingface_hub wraps upload errors)."""
    parts = [f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
    if exc.__cause__ is not None:
        parts.append(f"{exc.__cause__.__class__.__name__}: {str(exc.__cause__).splitlines()[0]}")
    return "; ".join(parts)


def parse_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of 'X.Y.Z' or 'vX.Y.Z'."""
    match = _VERSION.match(text.strip())
    if not match:
        raise ReleaseError(f"version {text!r}: expected X.Y.Z (three numbers, e.g. 1.0.0)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def tag_name(version: tuple[int, int, int]) -> str:
    return "v" + ".".join(str(part) for part in version)


def verify_export(out: Path) -> dict[str, Any]:
    """The export's manifest, after checking that the folder holds exactly its files with their sizes and SHA-256."""
    path = out / MANIFEST
    if not path.is_file():
        raise ReleaseError(f"{out}: no {MANIFEST}; run `rrd export` first")
    try:
        manifest = json.loads(path.read_text())
        entries = {entry["path"]: entry for entry in manifest["files"]}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ReleaseError(f"{path}: not a manifest of retinal-reason-data ({exc})") from None
    problems = []
    for relative, entry in sorted(entries.items()):
        file = out / relative
        if not file.is_file():
            problems.append(f"{relative}: listed in the manifest but missing")
        elif file.stat().st_size != entry["bytes"]:
            problems.append(f"{relative}: {file.stat().st_size} bytes, the manifest says {entry['bytes']}")
        elif file_sha256(file) != entry["sha256"]:
            problems.append(f"{relative}: content differs from the manifest (sha256)")
    for file in sorted(out.rglob("*")):
        relative = file.relative_to(out).as_posix()
        if file.is_file() and relative != MANIFEST and relative not in entries:
            problems.append(f"{relative}: not in the manifest")
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ReleaseError(
            f"{out}: the files do not match {MANIFEST}; rerun `rrd export` (refusing to push):\n  {shown}"
        )
    return manifest


def _api(token: str) -> HfApi:
    return HfApi(endpoint=hub_endpoint(), token=token, library_name="retinal-reason-data", library_version=__version__)


def _version_tags(api: HfApi, repo_id: str) -> dict[tuple[int, int, int], tuple[str, str]]:
    """version -> (tag, commit) of the repository's vX.Y.Z tags."""
    tags = {}
    for ref in api.list_repo_refs(repo_id, repo_type="dataset").tags:
        if _VERSION.match(ref.name) and ref.name.startswith("v"):
            tags[parse_version(ref.name)] = (ref.name, ref.target_commit)
    return tags


def _remote_json(repo_id: str, revision: str, filename: str, folder: Path, token: str) -> dict[str, Any] | None:
    path = download_from_hub(repo_id, revision, filename, folder, token)
    return json.loads(path.read_text()) if path else None


def _remote_text(repo_id: str, revision: str, filename: str, folder: Path, token: str) -> str | None:
    path = download_from_hub(repo_id, revision, filename, folder, token)
    return path.read_text(encoding="utf-8") if path else None


def push(
    recipe: Recipe,
    version: str,
    private: bool | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> PushReport:
    """Push the export of `recipe` as version `version` (see the module docstring)."""
    out = recipe.export.out
    manifest = verify_export(out)
    if not recipe.hub.repo_id:
        raise ReleaseError(f"{recipe.path}: no hub.repo_id in the recipe (the dataset repository to push to)")
    repo_id, tag = recipe.hub.repo_id, tag_name(parse_version(version))
    want_private = recipe.hub.private if private is None else private
    report = PushReport(repo_id=repo_id, tag=tag, private=want_private, dry_run=dry_run)
    echo(f"export {out}: {len(manifest['files'])} files match manifest.json")
    token = get_token()
    if token is None:
        raise ReleaseError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    api = _api(token)
    with tempfile.TemporaryDirectory(prefix="rrd-push-") as tmp:
        _push(api, token, recipe, manifest, report, Path(tmp), echo)
    return report


def _push(
    api: HfApi,
    token: str,
    recipe: Recipe,
    manifest: dict[str, Any],
    report: PushReport,
    tmp: Path,
    echo: Callable[[str], None],
) -> None:
    repo_id, tag, out = report.repo_id, report.tag, recipe.export.out
    try:
        info = api.repo_info(repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        info = None
    if info is not None and not info.private and report.private:
        raise ReleaseError(
            f"{repo_id} is public on the Hub and this release is private (the default for medical data); "
            "pass --public to publish to a public repository"
        )
    if info is not None and info.private and not report.private:
        echo(f"note: {repo_id} exists and stays private; change its visibility on the Hub to publish it")
        report.private = True
    tags = _version_tags(api, repo_id) if info is not None else {}
    version = parse_version(tag)
    if version in tags:
        existing_tag, commit = tags[version]
        remote = _remote_json(repo_id, commit, MANIFEST, tmp, token) or {}
        if remote.get("content_key") == manifest["content_key"]:
            echo(f"{repo_id}@{existing_tag} already holds this export (content key {manifest['content_key']})")
            report.already_released, report.tagged, report.commit = True, True, commit
            return
        raise ReleaseError(f"{repo_id}: version {existing_tag} exists (commit {commit[:12]}); push a new version")
    newer = sorted(v for v in tags if v > version)
    if newer:
        raise ReleaseError(f"{repo_id}: {tag} is older than the latest version {tags[newer[-1]][0]}")
    previous = tags[max(tags)] if tags else None
    report.previous_tag = previous[0] if previous else None
    old_index = None
    if previous:
        old_path = download_from_hub(repo_id, previous[1], INDEX_PATH, tmp, token)
        old_index = read_index(old_path) if old_path else None
    report.diff = diff_indexes(old_index, read_index(out / INDEX_PATH), report.previous_tag or "(none)", tag)
    date = datetime.now(UTC).date().isoformat()
    changelog_entry = render_entry(tag, report.previous_tag, report.diff, manifest, date)
    head = api.repo_info(repo_id, repo_type="dataset").sha if info is not None else None
    old_changelog = _remote_text(repo_id, head, CHANGELOG, tmp, token) if head else None
    report.changelog = prepend(old_changelog, changelog_entry)
    remote_files = set(api.list_repo_files(repo_id, repo_type="dataset", revision=head)) if head else set()
    local_files = [entry["path"] for entry in manifest["files"]] + [MANIFEST]
    report.deleted = sorted(
        path
        for path in remote_files - set(local_files)
        if path not in KEPT_ON_HUB and not path.startswith("changelog/")
    )
    report.files = len(local_files) + 2
    report.bytes = sum(entry["bytes"] for entry in manifest["files"]) + (out / MANIFEST).stat().st_size
    echo(
        f"{repo_id}: {'exists' if info is not None else 'new'}, "
        f"{'private' if report.private else 'public'}; previous version {report.previous_tag or '(none)'}"
    )
    echo(changelog_entry)
    if report.dry_run:
        echo(
            f"dry run: would upload {report.files} files ({report.bytes / 1e6:.1f} MB), delete "
            f"{len(report.deleted)}, tag {tag}"
        )
        return
    if info is None:
        api.create_repo(repo_id, repo_type="dataset", private=report.private, exist_ok=True)
        report.created = True
        echo(f"created {repo_id} ({'private' if report.private else 'public'})")
        head = api.repo_info(repo_id, repo_type="dataset").sha
    assert head is not None
    remote_manifest = _remote_json(repo_id, head, MANIFEST, tmp, token) or {}
    released_here = download_from_hub(repo_id, head, f"changelog/{tag}.json", tmp, token) is not None
    if remote_manifest.get("content_key") == manifest["content_key"] and released_here:
        echo(f"the head of {repo_id} ({head[:12]}) already holds this export: not committing again")
        report.commit = head
    else:
        report.commit = _commit(api, recipe, manifest, report, head, echo)
        report.committed = True
    try:
        api.create_tag(
            repo_id, tag=tag, revision=report.commit, tag_message=f"{recipe.name} {tag}", repo_type="dataset"
        )
    except HfHubHTTPError as exc:
        raise ReleaseError(
            f"{repo_id}: committed {report.commit[:12]} but could not tag it ({_reason(exc)}); {RERUN}"
        ) from exc
    report.tagged = True
    echo(f"tagged {repo_id}@{tag} -> {report.commit[:12]}")


def _commit(
    api: HfApi,
    recipe: Recipe,
    manifest: dict[str, Any],
    report: PushReport,
    head: str,
    echo: Callable[[str], None],
) -> str:
    out = recipe.export.out
    assert report.diff is not None
    operations: list[CommitOperationAdd | CommitOperationDelete] = [
        CommitOperationAdd(path_in_repo=entry["path"], path_or_fileobj=out / entry["path"])
        for entry in manifest["files"]
    ]
    operations += [
        CommitOperationAdd(path_in_repo=MANIFEST, path_or_fileobj=out / MANIFEST),
        CommitOperationAdd(path_in_repo=CHANGELOG, path_or_fileobj=report.changelog.encode("utf-8")),
        CommitOperationAdd(
            path_in_repo=f"changelog/{report.tag}.json",
            path_or_fileobj=(report.diff.model_dump_json(indent=1) + "\n").encode("utf-8"),
        ),
    ]
    operations += [CommitOperationDelete(path_in_repo=path) for path in report.deleted]
    echo(f"uploading {report.files} files ({report.bytes / 1e6:.1f} MB) in one commit")
    try:
        info = api.create_commit(
            report.repo_id,
            operations,
            commit_message=f"Release {report.tag}",
            commit_description=(
                f"{recipe.name} {report.tag}: recipe hash {manifest['recipe_hash']}, content key "
                f"{manifest['content_key']}, retinal-reason-data {manifest['tool_version']}"
            ),
            repo_type="dataset",
            parent_commit=head,
        )
    except Exception as exc:  # HTTP errors, dropped connections, a failed object upload: all resumable
        raise ReleaseError(f"{report.repo_id}: the upload stopped ({_reason(exc)}); {RERUN}") from exc
    echo(f"committed {info.oid[:12]}")
    return info.oid
