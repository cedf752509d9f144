"""A release split read into `Sample`s: a local export folder, or a Hub dataset repository at a revision.

`open_release(reference, config, split, revision)` finds the release (a folder on disk, else `owner/name` or
`owner/name@revision` on the Hub, whose `data/{config}/{split}-*` shards and `manifest.json` are downloaded with
`huggingface_hub` and read with `datasets`), says what it is (`ReleaseRef`, recorded in run.json) and yields its
samples. A folder's format is recognised in one place, `folder_format`; each format has a reader in `READERS`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from retinal_reason_data.evaluation.samples import Sample, SampleImage

ReleaseFormat = Literal["rl", "ophthareason-eval"]
REPO_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
RL_COLUMNS = ("id", "images", "case_id", "source", "task", "question_type", "modality", "question", "options")
RL_COLUMNS += ("answer", "ground_truth")


class ReleaseInputError(ValueError):
    """The release cannot be read: the message names the folder or repository, the file, the row and what is wrong."""


class ReleaseRef(BaseModel):
    """Which release a run evaluated (run.json's `release`): where it is and which content it held."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    content_key: str | None = None
    version: str | None = None
    format: ReleaseFormat = "rl"


@dataclass(frozen=True)
class Release:
    """An opened release split: what it is, the folder holding its files, and how to read its samples."""

    ref: ReleaseRef
    folder: Path
    config: str
    split: str
    read: Callable[[], Iterator[Sample]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, why): records read that give no sample

    def samples(self) -> Iterator[Sample]:
        return self.read()

    def key(self) -> str:
        """What identifies the content evaluated: the manifest's content key, else the Hub commit, else a hash of
        the split's files."""
        if self.ref.format == "ophthareason-eval":
            from retinal_reason_data.evaluation.ophthareason import files_key

            return files_key(self.folder)
        return self.ref.content_key or self.ref.commit or _files_key(self.folder, self.config, self.split)


# --- where a release is and what it holds --------------------------------------------------------------
def open_release(reference: str, config: str = "rl", split: str = "test", revision: str | None = None) -> Release:
    """The release at `reference`: an export folder, or a Hub dataset repository (`owner/name`, optionally
    `@revision`; `revision` overrides). Raises ReleaseInputError saying what is missing."""
    folder = Path(reference)
    if folder.is_dir():
        return _local_release(folder, config, split)
    if folder.exists():
        raise ReleaseInputError(f"{reference}: a file, not an export folder (give the folder that holds data/)")
    repo, _, pinned = reference.partition("@")
    if not REPO_PATTERN.match(repo):
        raise ReleaseInputError(
            f"{reference}: no such folder, and not a Hub repository name (owner/name, optionally @revision)"
        )
    return _hub_release(repo, revision or pinned or "main", config, split)


def folder_format(folder: Path) -> ReleaseFormat:
    """The format of a release folder on disk: the one place a folder's format is recognised.

    An export folder (or a Hub snapshot of one) is read through its `rl` config; a folder holding OphthaReason's
    files (an export's `ophthareason-eval/`: `evaluation.ophthareason.is_ophthareason_folder`) is read as them."""
    from retinal_reason_data.evaluation.ophthareason import is_ophthareason_folder

    return "ophthareason-eval" if is_ophthareason_folder(folder) else "rl"


def _local_release(folder: Path, config: str, split: str) -> Release:
    form = folder_format(folder)
    if form == "ophthareason-eval":
        return _ophthareason_release(folder)
    manifest = _manifest(folder / "manifest.json")
    ref = ReleaseRef(
        path=str(folder.resolve()),
        content_key=manifest.get("content_key"),
        version=manifest.get("recipe_version"),
        format=form,
    )
    return Release(ref, folder, config, split, READERS[form](folder, config, split))


def _hub_release(repo: str, revision: str, config: str, split: str) -> Release:
    snapshot = _download(repo, revision, config, split)
    manifest = _manifest(snapshot / "manifest.json")
    ref = ReleaseRef(
        repo=repo,
        revision=revision,
        commit=snapshot.name,  # snapshot_download's folder is named by the commit it resolved
        content_key=manifest.get("content_key"),
        version=manifest.get("recipe_version"),
        format="rl",
    )
    shards = _shards(snapshot, config, split, f"{repo}@{revision}")
    return Release(ref, snapshot, config, split, lambda: _hub_samples(shards))


def _download(repo: str, revision: str, config: str, split: str) -> Path:
    """The split's shards and the manifest of `repo` at `revision`, in huggingface_hub's cache (HF_ENDPOINT and
    HF_TOKEN are honoured as by every huggingface_hub call)."""
    import os

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        return Path(
            snapshot_download(
                repo,
                repo_type="dataset",
                revision=revision,
                allow_patterns=[f"data/{config}/{split}-*.parquet", "manifest.json"],
                endpoint=os.environ.get("HF_ENDPOINT") or None,
            )
        )
    except RepositoryNotFoundError:
        raise ReleaseInputError(
            f"{repo}: no such folder here, and no such dataset repository on the Hub (or no access with this token)"
        ) from None
    except RevisionNotFoundError:
        raise ReleaseInputError(f"{repo}: no revision {revision!r}") from None


def _manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReleaseInputError(f"{path}: not readable as JSON ({exc})") from None
    return manifest if isinstance(manifest, dict) else {}


def _shards(folder: Path, config: str, split: str, where: str) -> list[Path]:
    """The split's parquet shards, in order; a missing split names the splits there are."""
    from retinal_reason_data.release.reader import shard_paths

    shards = shard_paths(folder, config, split)
    if shards:
        return shards
    present = sorted({path.name.split("-")[0] for path in (folder / "data" / config).glob("*-*-of-*.parquet")})
    if present:
        raise ReleaseInputError(f"{where}: no split {split!r} in config {config!r}; it has: {', '.join(present)}")
    configs = sorted(path.name for path in (folder / "data").glob("*") if path.is_dir())
    hint = f"its configs: {', '.join(configs)}" if configs else "is it an export folder? (no data/ inside)"
    raise ReleaseInputError(f"{where}: no data/{config}/{split}-*.parquet; {hint}")


def _files_key(folder: Path, config: str, split: str) -> str:
    from retinal_reason_data.release.shards import file_sha256
    from retinal_reason_data.text import stable_hash

    return stable_hash(*(file_sha256(path) for path in _shards(folder, config, split, str(folder))), length=32)


# --- the rl config ---------------------------------------------------------------------------------------
def rl_sample(row: dict[str, Any]) -> Sample:
    """One `rl` row as the model is shown it: the release's own prompt (`release.prompting.prompt_text`), the
    images before it (as the `<image>` placeholders of the verl and EasyR1 formats put them), the reward's ground
    truth."""
    from retinal_reason_data.release.prompting import prompt_text

    images = tuple(SampleImage(cell["bytes"], cell.get("path") or "") for cell in row["images"] or ())
    return Sample(
        sample_id=row["id"],
        case_id=row["case_id"] or "",
        source=row["source"] or "",
        task=row["task"],
        question_type=row["question_type"],
        modality=row["modality"],
        prompt=prompt_text(row),
        images=images,
        answer=row["answer"],
        ground_truth=row["ground_truth"],
        scorer="reward",
    )


def _checked(rows: Iterator[dict[str, Any]], where: str) -> Iterator[Sample]:
    """Samples of `rows`; a row that cannot be read stops the run with a message naming the file, row and fault."""
    for index, row in enumerate(rows):
        try:
            yield rl_sample(row)
        except (KeyError, TypeError, ValueError) as exc:
            name = row.get("id") if isinstance(row, dict) else None
            what = f"missing column {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
            raise ReleaseInputError(f"{where}: row {index}{f' (id {name})' if name else ''}: {what}") from None


def _columns_checked(path: Path, names: list[str]) -> None:
    missing = [column for column in RL_COLUMNS if column not in names]
    if missing:
        raise ReleaseInputError(f"{path}: not an rl shard, it lacks the columns {', '.join(missing)}")


def _local_rl_samples(folder: Path, config: str, split: str) -> Callable[[], Iterator[Sample]]:
    shards = _shards(folder, config, split, str(folder))

    def read() -> Iterator[Sample]:
        import pyarrow.parquet as pq

        from retinal_reason_data.release.shards import READ_BATCH_ROWS

        for path in shards:
            with pq.ParquetFile(path, pre_buffer=False) as shard:
                _columns_checked(path, shard.schema_arrow.names)
                batches = shard.iter_batches(batch_size=READ_BATCH_ROWS, columns=list(RL_COLUMNS))
                yield from _checked((row for batch in batches for row in batch.to_pylist()), str(path))

    return read


def _hub_samples(shards: list[Path]) -> Iterator[Sample]:
    """The downloaded shards read with `datasets` (streamed: no second copy in its cache; images kept as bytes)."""
    import datasets
    import pyarrow.parquet as pq

    for path in shards:
        _columns_checked(path, pq.read_schema(path).names)
    stream = datasets.load_dataset("parquet", data_files=[str(path) for path in shards], split="train", streaming=True)
    stream = stream.cast_column("images", datasets.List(datasets.Image(decode=False)))
    yield from _checked(iter(stream), f"{shards[0].parent} ({len(shards)} shards)")


# --- OphthaReason's five files ----------------------------------------------------------------------------
def _ophthareason_release(folder: Path) -> Release:
    """OphthaReason's files (the export's `rl` test split as its eval.py reads it; --config and --split do not
    apply): config `ophthareason-eval`, split `test`; keyed by the files' hash; records that give no sample are
    named in `skipped`. Inside an export, the export's manifest says which release it is."""
    from retinal_reason_data.evaluation.ophthareason import SkippedRecord, ophthareason_samples
    from retinal_reason_data.release.ophthareason import NAME, SPLIT

    manifest = _manifest(folder.resolve().parent / "manifest.json") if folder.resolve().name == NAME else {}
    ref = ReleaseRef(
        path=str(folder.resolve()),
        content_key=manifest.get("content_key"),
        version=manifest.get("recipe_version"),
        format="ophthareason-eval",
    )
    skipped: list[tuple[str, str]] = []

    def read() -> Iterator[Sample]:
        records: list[SkippedRecord] = []
        skipped.clear()
        for sample in ophthareason_samples(folder, records):
            skipped.extend((record.sample_id or f"record {record.record}", record.message) for record in records)
            records.clear()
            yield sample
        skipped.extend((record.sample_id or f"record {record.record}", record.message) for record in records)

    return Release(ref, folder, NAME, SPLIT, read, skipped)


Reader = Callable[[Path, str, str], Callable[[], Iterator[Sample]]]
READERS: dict[str, Reader] = {"rl": _local_rl_samples}
