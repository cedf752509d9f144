"""What changed between two releases, by sample id: added, removed, changed (content or split), per config.

A release is an export folder or a revision (tag, branch, commit) of a dataset repository on the Hub; either
way only its `index/samples.parquet` is read (ids and content digests, no images).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
from huggingface_hub import get_token, hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from pydantic import BaseModel, Field

from retinal_reason_data.release.index import INDEX_PATH, INDEX_SCHEMA, read_index


class ReleaseError(RuntimeError):
    """A release that cannot be read, compared or pushed; the message says which and why."""


class ConfigDiff(BaseModel):
    """One config's change: rows per split before and after, and the ids that were added, removed or changed."""

    old_rows: dict[str, int] = Field(default_factory=dict)
    new_rows: dict[str, int] = Field(default_factory=dict)
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list, description="Same id, different content.")
    moved: list[str] = Field(default_factory=list, description="Same id, another split.")

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.changed or self.moved)


class ReleaseDiff(BaseModel):
    old: str
    new: str
    configs: dict[str, ConfigDiff] = Field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        return all(config.unchanged for config in self.configs.values())


def diff_indexes(old: pa.Table | None, new: pa.Table, old_label: str = "old", new_label: str = "new") -> ReleaseDiff:
    """Compare two sample indexes (None: an empty, first release)."""
    before = _by_config(old if old is not None else INDEX_SCHEMA.empty_table())
    after = _by_config(new)
    result = ReleaseDiff(old=old_label, new=new_label)
    for config in sorted(set(before) | set(after)):
        was, now = before.get(config, {}), after.get(config, {})
        change = ConfigDiff(old_rows=_rows_per_split(was), new_rows=_rows_per_split(now))
        change.added = sorted(set(now) - set(was))
        change.removed = sorted(set(was) - set(now))
        for sample_id in sorted(set(now) & set(was)):
            (old_split, old_digest), (new_split, new_digest) = was[sample_id], now[sample_id]
            if old_split != new_split:
                change.moved.append(sample_id)
            elif old_digest != new_digest:
                change.changed.append(sample_id)
        result.configs[config] = change
    return result


def _by_config(table: pa.Table) -> dict[str, dict[str, tuple[str, str]]]:
    columns = table.select(["config", "split", "id", "digest"]).to_pydict()
    grouped: dict[str, dict[str, tuple[str, str]]] = {}
    for config, split, sample_id, digest in zip(
        columns["config"], columns["split"], columns["id"], columns["digest"], strict=True
    ):
        grouped.setdefault(config, {})[sample_id] = (split, digest)
    return grouped


def _rows_per_split(samples: dict[str, tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for split, _ in samples.values():
        counts[split] = counts.get(split, 0) + 1
    return dict(sorted(counts.items()))


def hub_endpoint() -> str | None:
    """The Hub to talk to: HF_ENDPOINT when set (read at call time), else huggingface_hub's default."""
    return os.environ.get("HF_ENDPOINT") or None


def download_from_hub(repo_id: str, revision: str, filename: str, folder: Path, token: str | None) -> Path | None:
    """One file of a dataset repository at `revision`, into `folder`; None when the revision lacks it."""
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                repo_type="dataset",
                revision=revision,
                cache_dir=folder,
                token=token,
                endpoint=hub_endpoint(),
            )
        )
    except RemoteEntryNotFoundError:
        return None


def load_release_index(reference: str, repo_id: str | None = None) -> tuple[pa.Table, str]:
    """The sample index of an export folder, or of `REPO@REVISION` / `REVISION` (with `repo_id`) on the Hub."""
    folder = Path(reference)
    if folder.is_dir():
        path = folder / INDEX_PATH
        if not path.is_file():
            raise ReleaseError(f"{folder}: no {INDEX_PATH}; is it an export folder? (rerun `rrd export`)")
        return read_index(path), str(folder)
    if "@" in reference:
        repo, _, revision = reference.rpartition("@")
    else:
        repo, revision = repo_id, reference
    if not repo:
        raise ReleaseError(f"{reference}: neither an export folder nor REPO@REVISION (or give --repo)")
    with tempfile.TemporaryDirectory(prefix="rrd-diff-") as tmp:
        try:
            path = download_from_hub(repo, revision, INDEX_PATH, Path(tmp), get_token())
        except RepositoryNotFoundError:
            raise ReleaseError(f"{repo}: no such dataset repository (or no access with this token)") from None
        except RevisionNotFoundError:
            raise ReleaseError(f"{repo}: no revision {revision!r}") from None
        if path is None:
            raise ReleaseError(f"{repo}@{revision}: no {INDEX_PATH} (not a release of this tool)")
        return read_index(path), f"{repo}@{revision}"
