"""Ingest: stream an adapter's raw cases, map labels, fingerprint images, store cases or quarantine them."""

from __future__ import annotations

import errno
import hashlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import re
import stat as file_mode
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from retinal_reason_data.batches import batched
from retinal_reason_data.catalog import Catalog, SourceWriter
from retinal_reason_data.ingest.file_names import display, is_text, name_bytes
from retinal_reason_data.ingest.imaging import ImageError, fingerprint_task, keep_buffers_in_heap
from retinal_reason_data.ingest.privacy import pseudonymise
from retinal_reason_data.ingest.sources import get_adapter
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.scope import Scope, source_scope, take_notes
from retinal_reason_data.ingest.sources.tabular import LabelTableError
from retinal_reason_data.ingest.sources.text_files import EncodingError, source_encoding
from retinal_reason_data.ontology import Ontology, UnmappedLabel
from retinal_reason_data.recipe import SourceSpec
from retinal_reason_data.schema import Case, Finding, ImageRef, Modality, Provenance, Quarantine

log = logging.getLogger(__name__)
BATCH = 256  # raw cases held at once: memory stays flat however large the collection
# A worker is one core: NumPy's BLAS would start a thread per core in each worker, and on 2 cores two workers'
# spinning BLAS threads spent ~20 ms of CPU an image where one thread spends ~6.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ImageTask = tuple[str, Modality]  # what a worker fingerprints: the file and the modality it is read as
_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


@dataclass
class IngestReport:
    source: str
    cases: int = 0
    images_fingerprinted: int = 0
    images_cached: int = 0
    image_warnings: int = 0  # Pillow's warnings about files it decoded (logged with the file's name)
    quarantined: Counter[str] = field(default_factory=Counter)
    first_problems: dict[str, str] = field(default_factory=dict)  # reason -> the first record's detail


def no_case_warning(report: IngestReport) -> str | None:
    """What to say when a source gave no case at all (its label file empty, its header wrong, its folder empty),
    with the first record of each reason; None when it gave some."""
    if report.cases:
        return None
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(report.quarantined.items()))
    lines = [f"source {report.source!r} gave no case" + (f" (quarantined: {reasons})" if reasons else "")]
    lines += [f"  {detail}" for _, detail in sorted(report.first_problems.items())[:5]]
    return "\n".join(lines)


@dataclass(frozen=True)
class SourceContext:
    """What turning one source's raw cases into cases needs besides the raw case itself."""

    source: str
    patients: str  # namespace of patient ids (shared by collections over the same people)
    licence: str
    labels: Mapping[str, str]
    ontology: Ontology
    key: bytes
    aliases: dict[str, str] = field(default_factory=dict)  # link in the work folder -> the name it stands for


class SeenIds:
    """The case ids met so far in one source, held as 64-bit digests: 8 bytes an id in a sorted array, where a
    set of the strings took about 100. Two ids share a digest with odds of about n^2 / 2^65 (3e-10 at 100k)."""

    def __init__(self, merge_every: int = 4096) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._recent: set[int] = set()  # digests not yet merged into the array
        self._merge_every = merge_every

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def add(self, case_id: str) -> bool:
        """Remember `case_id`; False when it was met before."""
        digest = int.from_bytes(hashlib.blake2b(case_id.encode(), digest_size=8).digest(), "little")
        if digest in self._recent or self._holds(digest):
            return False
        self._recent.add(digest)
        if len(self._recent) >= self._merge_every:
            self._merge()
        return True

    def _holds(self, digest: int) -> bool:
        index = int(np.searchsorted(self._sorted, np.uint64(digest)))
        return index < len(self._sorted) and int(self._sorted[index]) == digest

    def _merge(self) -> None:
        recent = np.sort(np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent)))
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, recent), recent)
        self._recent.clear()


def ensure_phantom(spec: SourceSpec) -> bool:
    """Write the phantom copy of a source's layout when the recipe asks for one and it is absent."""
    if spec.phantom is None or spec.root.exists():
        return False
    # Phantom writers are demo and test material: imported here only, when a recipe asks for one.
    from retinal_reason_data.phantoms.registry import writer_for

    get_adapter(spec.adapter)  # an unknown adapter is named as such, with the known ones
    writer_for(spec.adapter)(spec.root, spec.phantom.cases, spec.phantom.seed)
    return True


@contextmanager
def fingerprint_pool(workers: int | None) -> Iterator[Executor | None]:
    """A process pool over `workers` cores (all by default); None (work in this process) for one."""
    count = workers or os.cpu_count() or 1
    if count <= 1:
        yield None
        return
    # forkserver: workers start from a clean process, not from this one with DuckDB's threads running
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with _environment(ONE_THREAD):  # read by the forkserver (started here) or by each spawned worker
        if method == "forkserver":
            multiprocessing.forkserver.ensure_running()
        with ProcessPoolExecutor(
            max_workers=count, mp_context=multiprocessing.get_context(method), initializer=keep_buffers_in_heap
        ) as pool:
            yield pool


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Environment variables set for a while, then as they were."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ingest_source(
    spec: SourceSpec, catalog: Catalog, ontology: Ontology, key: bytes, pool: Executor | None = None
) -> IngestReport:
    """Replace the catalog's view of one source with what its files hold now. Images are fingerprinted
    in `pool` a batch at a time, once: later runs reuse them while path, size and mtime stay the same.

    Files must lie inside the source's root (or its work folder, or a folder its options name) unless the recipe
    sets `allow_outside_root`; what the adapter cannot read (a label table without its columns, a link that
    loops, a folder that cannot be listed) is quarantined with the file and the reason, and the rest goes on."""
    adapter = get_adapter(spec.adapter)
    context = SourceContext(
        source=spec.source_name,
        patients=adapter.patient_namespace or spec.source_name,
        licence=spec.licence or adapter.licence,
        labels={**adapter.labels, **spec.labels},  # the recipe's mappings override the adapter's
        ontology=ontology,
        key=key,
    )
    report = IngestReport(source=context.source)
    work_dir = catalog.path.parent / f"{catalog.path.stem}_work" / context.source
    options = SourceOptions(work_dir=work_dir, values=spec.options, allow_outside_root=spec.allow_outside_root)
    roots = [spec.root.parent if spec.root.is_file() else spec.root, work_dir]
    progress = tqdm(desc=f"ingest {context.source}", unit="case", leave=False, disable=None)
    seen = SeenIds()
    with (
        source_encoding(spec.encoding),
        source_scope(roots, spec.allow_outside_root) as scope,
        catalog.source_writer(context.source) as writer,
    ):
        read = _guarded(adapter.read(spec.root, context.source, options), context)
        vetted = (_vetted(record, context, scope, work_dir / "names") for record in read)
        records = _limited(vetted, spec.limit)
        started = (_start_batch(batch, context, writer, pool, report, seen) for batch in batched(records, BATCH))
        for batch in _one_ahead(started):
            for result in _finish_batch(batch, context, writer, report):
                if isinstance(result, Quarantine):
                    writer.add_quarantine(result)
                    report.quarantined[result.reason] += 1
                    report.first_problems.setdefault(result.reason, result.detail)
                else:
                    writer.add_case(result)
                    report.cases += 1
            progress.update(len(batch.prepared))
    progress.close()
    warning = no_case_warning(report)
    if warning:
        log.warning("%s", warning)
    return report


def _one_ahead(items: Iterator[StartedBatch]) -> Iterator[StartedBatch]:
    """Each batch once the next one is started: the pool fingerprints a batch while this process reads the
    next rows and assembles and writes the batch before (two batches in flight, not one idle side)."""
    previous: list[StartedBatch] = []
    for item in items:  # taking the next item starts it
        yield from previous
        previous = [item]
    yield from previous


def _guarded(records: Iterator[RawCase | Quarantine], context: SourceContext) -> Iterator[RawCase | Quarantine]:
    """The adapter's records, with what its folder walks noted (links that loop, folders that cannot be listed)
    as quarantine records. A label file in no single encoding, a label table that cannot be read as the layout
    expects (empty, a column missing) or a file the system refuses to read ends the source with one quarantine
    record that names the file, the line and what is wrong (adapters that read several tables go on to the next
    one themselves: `tabular.guarded`)."""
    try:
        for record in records:
            yield from _notes_as_quarantine(context)
            yield record
    except EncodingError as exc:
        log.error("%s", exc)
        yield quarantine(context.source, exc.path, exc.line, "labels_undecodable", str(exc))
    except LabelTableError as exc:
        log.error("%s", exc)
        yield quarantine(context.source, exc.path, exc.line, exc.reason, str(exc))
    except OSError as exc:  # permissions, a label file that is a folder or a link that loops, an I/O error
        file = exc.filename if exc.filename is not None else "?"
        detail = f"{display(file)}: cannot read: {exc.strerror or exc}"
        log.error("%s", detail)
        yield quarantine(context.source, file, None, "file_unreadable", detail)
    yield from _notes_as_quarantine(context)


def _notes_as_quarantine(context: SourceContext) -> Iterator[Quarantine]:
    for noted in take_notes():
        yield quarantine(context.source, noted.path, None, noted.reason, noted.detail)


def _vetted(record: RawCase | Quarantine, context: SourceContext, scope: Scope, aliases: Path) -> RawCase | Quarantine:
    """A record made safe to store: text that came from file names that are not UTF-8 shown with `\\xNN`
    (`file_names.display`), no object reprs in messages; a case whose image lies outside the source's roots is
    refused (`outside_root`), and an image whose name is not UTF-8 is read through a link in the work folder
    whose name is (the catalog, logs and JSON hold UTF-8 only)."""
    if isinstance(record, Quarantine):
        return record.model_copy(
            update={
                "file": display(record.file),
                "row": display(record.row) if isinstance(record.row, str) else record.row,
                "detail": _REPR.sub("the data", display(record.detail)),
            }
        )
    images, renamed = list(record.images), False
    for index, image in enumerate(images):
        if scope.outside(image.path):
            return quarantine(
                context.source, display(record.file), record.row, "outside_root",
                f"{_where(display(record.file), record.row)}: image {display(image.path)} lies outside the source's "
                f"root {display(scope.roots[0])}; refused (set allow_outside_root: true on the source to read files "
                "outside it)",
            )  # fmt: skip
        if not is_text(image.path):
            try:
                alias = _utf8_alias(image.path, aliases)
            except OSError as exc:
                return quarantine(
                    context.source, display(record.file), record.row, "name_not_utf8",
                    f"{_where(display(record.file), record.row)}: image name {display(image.path)} is not UTF-8 and "
                    f"no link to it could be made in {aliases} ({exc.strerror}); rename the file",
                )  # fmt: skip
            context.aliases[str(alias)] = display(image.path)
            images[index], renamed = image.model_copy(update={"path": alias}), True
    changed: dict[str, object] = {"images": images} if renamed else {}
    for name in ("local_id", "file", "raw_patient_id"):
        value = getattr(record, name)
        if value and not is_text(value):
            changed[name] = display(value)
    if isinstance(record.row, str) and not is_text(record.row):
        changed["row"] = display(record.row)
    if not all(is_text(label) for label in record.labels):
        changed["labels"] = [display(label) for label in record.labels]
    return record.model_copy(update=changed) if changed else record


def _utf8_alias(path: Path, folder: Path) -> Path:
    """A link in `folder`, named by a hash of `path`, to the file `path` (whose name is not UTF-8)."""
    target = name_bytes(os.path.abspath(path))
    alias = folder / (hashlib.blake2b(target, digest_size=10).hexdigest() + _suffix(path))
    try:
        if os.readlink(alias) == os.fsdecode(target):
            return alias
        alias.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        alias.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(target, alias)
    return alias


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    return suffix if suffix.isascii() and is_text(suffix) else ""


def _where(file: str, row: int | str | None) -> str:
    """'file row N', or the file alone when the record has no row (a case that is one image file)."""
    return file if row is None or row == "" else f"{file} row {row}"


def _limited(records: Iterator[RawCase | Quarantine], limit: int | None) -> Iterator[RawCase | Quarantine]:
    taken = 0
    for record in records:
        if limit is not None and isinstance(record, RawCase):
            if taken >= limit:
                return
            taken += 1
        yield record


@dataclass
class StartedBatch:
    """A batch whose labels are mapped and whose uncached images are handed to the pool."""

    prepared: list[Quarantine | tuple[RawCase, list[Finding]]]
    known: dict[ImageTask, ImageRef | ImageError]  # cached fingerprints and missing files
    wanted: dict[ImageTask, tuple[int, int]]  # (size, mtime_ns) of the images being fingerprinted
    results: Iterator[tuple[ImageRef | ImageError, tuple[str, ...]]]  # the pool's answers and Pillow's warnings


def _start_batch(
    batch: Sequence[RawCase | Quarantine],
    context: SourceContext,
    writer: SourceWriter,
    pool: Executor | None,
    report: IngestReport,
    seen: SeenIds,
) -> StartedBatch:
    """Map labels, look the batch's images up in the cache in one query, hand the rest to the pool."""
    prepared = [record if isinstance(record, Quarantine) else _check_labels(record, context, seen) for record in batch]
    known, stats = _stat_images(item[0] for item in prepared if not isinstance(item, Quarantine))
    cached = writer.catalog.cached_images([(path, *stat, str(modality)) for (path, modality), stat in stats.items()])
    wanted: dict[ImageTask, tuple[int, int]] = {}
    for task, stat in stats.items():
        ref = cached.get((task[0], str(task[1])))
        if ref is None:
            wanted[task] = stat
        else:
            known[task] = ref
            report.images_cached += 1
    tasks = list(wanted)
    results = pool.map(fingerprint_task, tasks, chunksize=4) if pool else map(fingerprint_task, tasks)
    return StartedBatch(prepared, known, wanted, results)


def _finish_batch(
    batch: StartedBatch, context: SourceContext, writer: SourceWriter, report: IngestReport
) -> Iterator[Case | Quarantine]:
    """Collect the batch's fingerprints (new ones go to the cache), then assemble cases in input order."""
    for task, (result, notes) in zip(batch.wanted, batch.results, strict=True):
        batch.known[task] = result
        for text in notes:  # Pillow's warnings, with the file they are about
            log.warning("%s: %s", task[0], text)
            report.image_warnings += 1
        if isinstance(result, ImageRef):
            writer.add_fingerprint(*batch.wanted[task], result)
            report.images_fingerprinted += 1
    for item in batch.prepared:
        yield item if isinstance(item, Quarantine) else _assemble(*item, context, batch.known)


def _stat_images(
    raws: Iterable[RawCase],
) -> tuple[dict[ImageTask, ImageRef | ImageError], dict[ImageTask, tuple[int, int]]]:
    """Each distinct image of `raws`: its (size, mtime_ns), or the error that refuses it (missing, a link that
    dangles or loops, not a regular file)."""
    refused: dict[ImageTask, ImageRef | ImageError] = {}
    stats: dict[ImageTask, tuple[int, int]] = {}
    for raw in raws:
        for image in raw.images:
            task = (str(image.path), image.modality)
            if task in stats or task in refused:
                continue
            found = image_file_stat(image.path)
            if isinstance(found, ImageError):
                refused[task] = found
            else:
                stats[task] = found
    return refused, stats


def image_file_stat(path: Path) -> tuple[int, int] | ImageError:
    """(size, mtime_ns) of an image file, or why it cannot be read: missing, a link that dangles or leads to
    itself, a folder, a FIFO or device (reading one would block or never end)."""
    try:
        found = os.stat(path)
    except OSError as exc:
        shown = display(path)
        if exc.errno == errno.ELOOP:
            return ImageError("link_loop", f"{shown}: symbolic link that leads back to itself (a loop)")
        if exc.errno == errno.ENOENT and os.path.islink(path):
            target = display(os.readlink(path))
            return ImageError("link_dangling", f"{shown}: symbolic link to {target}, which does not exist")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return ImageError("image_missing", f"{shown}: file named by the labels does not exist")
        return ImageError("image_unreadable", f"{shown}: cannot read file: {exc.strerror}")
    if file_mode.S_ISDIR(found.st_mode):
        return ImageError("image_not_a_file", f"{display(path)}: is a folder, not an image file")
    if not file_mode.S_ISREG(found.st_mode):
        return ImageError("image_not_a_file", f"{display(path)}: not a regular file (a FIFO, socket or device)")
    return found.st_size, found.st_mtime_ns


def _check_labels(raw: RawCase, context: SourceContext, seen: SeenIds) -> Quarantine | tuple[RawCase, list[Finding]]:
    where, row = _where(raw.file, raw.row), raw.row
    if not seen.add(raw.local_id):
        return quarantine(
            context.source, raw.file, row, "duplicate_case_id",
            f"{where}: case id {raw.local_id!r} appears more than once",
        )  # fmt: skip
    findings: list[Finding] = []
    modalities = {image.modality for image in raw.images}
    for label in raw.labels:
        try:
            finding = context.ontology.map_label(label, context.labels)
        except UnmappedLabel as exc:
            if label != raw.context.diagnosis:  # a free-text diagnosis stays as text, with its aliases
                return quarantine(context.source, raw.file, row, "unknown_label", f"{where}: {exc}")
            continue
        entry = context.ontology.entry(finding.code)
        if raw.context.diagnosis is None and not modalities & set(entry.modalities):
            # a label that cannot be seen in these images would become a question about them ("this fluorescein
            # angiogram" of a red-free photograph mapped to a fundus finding): refused, not asked
            seen_in = "/".join(sorted(str(m) for m in entry.modalities))
            images = "/".join(sorted(str(m) for m in modalities))
            return quarantine(
                context.source, raw.file, row, "label_modality_mismatch",
                f"{where}: label {label!r} maps to {finding.code} ({entry.name}), which the ontology "
                f"knows on {seen_in}, but the case's images are {images}; map it to a code of that modality",
            )  # fmt: skip
        findings.append(finding)
    return raw, findings


def _assemble(
    raw: RawCase,
    findings: list[Finding],
    context: SourceContext,
    known: Mapping[tuple[str, Modality], ImageRef | ImageError],
) -> Case | Quarantine:
    images: list[ImageRef] = []
    for image in raw.images:
        result = known[(str(image.path), image.modality)]
        if isinstance(result, ImageError):
            detail = result.detail
            for alias, original in context.aliases.items():  # name the file, not its link in the work folder
                detail = detail.replace(alias, original)
            where = _where(raw.file, raw.row)
            detail = detail if detail.startswith(f"{where}: ") else f"{where}: {detail}"
            return quarantine(context.source, raw.file, raw.row, result.reason, detail)
        images.append(result.model_copy(update={"caption": image.caption}))
    return Case(
        case_id=f"{context.source}:{raw.local_id}",
        source=context.source,
        patient_id=pseudonymise(context.patients, raw.raw_patient_id or raw.local_id, context.key),
        eye=raw.eye,
        age=raw.age,
        sex=raw.sex,
        images=images,
        findings=findings,
        gradable=raw.gradable,
        context=raw.context,
        provenance=Provenance(file=raw.file, row=raw.row, licence=raw.licence or context.licence),
    )
