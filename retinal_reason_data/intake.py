"""Ingest: stream an adapter's raw cases, map labels, fingerprint images, store cases or quarantine them."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from retinal_reason_data.batches import batched
from retinal_reason_data.catalog import Catalog, SourceWriter
from retinal_reason_data.imaging import ImageError, fingerprint_task, keep_buffers_in_heap
from retinal_reason_data.ontology import Ontology, UnmappedLabel
from retinal_reason_data.privacy import pseudonymise
from retinal_reason_data.recipe import SourceSpec
from retinal_reason_data.schema import Case, Finding, ImageRef, Modality, Provenance, Quarantine
from retinal_reason_data.sources import get_adapter
from retinal_reason_data.sources.base import RawCase, SourceOptions, quarantine
from retinal_reason_data.sources.text_files import EncodingError, source_encoding

log = logging.getLogger(__name__)
BATCH = 256  # raw cases held at once: memory stays flat however large the collection
# A worker is one core: NumPy's BLAS would start a thread per core in each worker, and on 2 cores two workers'
# spinning BLAS threads spent ~20 ms of CPU an image where one thread spends ~6.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ImageTask = tuple[str, Modality]  # what a worker fingerprints: the file and the modality it is read as


@dataclass
class IngestReport:
    source: str
    cases: int = 0
    images_fingerprinted: int = 0
    images_cached: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class SourceContext:
    """What turning one source's raw cases into cases needs besides the raw case itself."""

    source: str
    patients: str  # namespace of patient ids (shared by collections over the same people)
    licence: str
    labels: Mapping[str, str]
    ontology: Ontology
    key: bytes


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
    adapter = get_adapter(spec.adapter)
    if adapter.write_phantom is None:
        raise ValueError(f"adapter {spec.adapter!r} has no phantom generator")
    adapter.write_phantom(spec.root, spec.phantom.cases, spec.phantom.seed)
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
    in `pool` a batch at a time, once: later runs reuse them while path, size and mtime stay the same."""
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
    options = SourceOptions(
        work_dir=catalog.path.parent / f"{catalog.path.stem}_work" / context.source, values=spec.options
    )
    records = _limited(
        _undecodable_as_quarantine(adapter.read(spec.root, context.source, options), context), spec.limit
    )
    progress = tqdm(desc=f"ingest {context.source}", unit="case", leave=False, disable=None)
    seen = SeenIds()
    with source_encoding(spec.encoding), catalog.source_writer(context.source) as writer:
        started = (_start_batch(batch, context, writer, pool, report, seen) for batch in batched(records, BATCH))
        for batch in _one_ahead(started):
            for result in _finish_batch(batch, context, writer, report):
                if isinstance(result, Quarantine):
                    writer.add_quarantine(result)
                    report.quarantined[result.reason] += 1
                else:
                    writer.add_case(result)
                    report.cases += 1
            progress.update(len(batch.prepared))
    progress.close()
    return report


def _one_ahead(items: Iterator[StartedBatch]) -> Iterator[StartedBatch]:
    """Each batch once the next one is started: the pool fingerprints a batch while this process reads the
    next rows and assembles and writes the batch before (two batches in flight, not one idle side)."""
    previous: list[StartedBatch] = []
    for item in items:  # taking the next item starts it
        yield from previous
        previous = [item]
    yield from previous


def _undecodable_as_quarantine(
    records: Iterator[RawCase | Quarantine], context: SourceContext
) -> Iterator[RawCase | Quarantine]:
    """The adapter's records; a label file in no single encoding ends the source with a quarantine record that
    names the file, the line and the bytes (its rows cannot be read without guessing characters)."""
    try:
        yield from records
    except EncodingError as exc:
        log.error("%s", exc)
        yield quarantine(context.source, exc.path, exc.line, "labels_undecodable", str(exc))


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
    results: Iterator[ImageRef | ImageError]  # the pool's answers for `wanted`, in its order


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
    for task, result in zip(batch.wanted, batch.results, strict=True):
        batch.known[task] = result
        if isinstance(result, ImageRef):
            writer.add_fingerprint(*batch.wanted[task], result)
            report.images_fingerprinted += 1
    for item in batch.prepared:
        yield item if isinstance(item, Quarantine) else _assemble(*item, context, batch.known)


def _stat_images(
    raws: Iterable[RawCase],
) -> tuple[dict[ImageTask, ImageRef | ImageError], dict[ImageTask, tuple[int, int]]]:
    """Each distinct image of `raws`: its (size, mtime_ns), or the error of a missing file."""
    missing: dict[ImageTask, ImageRef | ImageError] = {}
    stats: dict[ImageTask, tuple[int, int]] = {}
    for raw in raws:
        for image in raw.images:
            task = (str(image.path), image.modality)
            if task in stats or task in missing:
                continue
            try:
                stat = image.path.stat()
            except OSError:
                missing[task] = ImageError("image_missing", f"{image.path}: file named by the labels does not exist")
                continue
            stats[task] = (stat.st_size, stat.st_mtime_ns)
    return missing, stats


def _check_labels(raw: RawCase, context: SourceContext, seen: SeenIds) -> Quarantine | tuple[RawCase, list[Finding]]:
    where = raw.row
    if not seen.add(raw.local_id):
        return quarantine(
            context.source, raw.file, where, "duplicate_case_id",
            f"{raw.file} row {where}: case id {raw.local_id!r} appears more than once",
        )  # fmt: skip
    findings: list[Finding] = []
    modalities = {image.modality for image in raw.images}
    for label in raw.labels:
        try:
            finding = context.ontology.map_label(label, context.labels)
        except UnmappedLabel as exc:
            if label != raw.context.diagnosis:  # a free-text diagnosis stays as text, with its aliases
                return quarantine(context.source, raw.file, where, "unknown_label", f"{raw.file} row {where}: {exc}")
            continue
        entry = context.ontology.entry(finding.code)
        if raw.context.diagnosis is None and not modalities & set(entry.modalities):
            # a label that cannot be seen in these images would become a question about them ("this fluorescein
            # angiogram" of a red-free photograph mapped to a fundus finding): refused, not asked
            seen_in = "/".join(sorted(str(m) for m in entry.modalities))
            images = "/".join(sorted(str(m) for m in modalities))
            return quarantine(
                context.source, raw.file, where, "label_modality_mismatch",
                f"{raw.file} row {where}: label {label!r} maps to {finding.code} ({entry.name}), which the ontology "
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
            detail = f"{raw.file} row {raw.row}: {result.detail}"
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
