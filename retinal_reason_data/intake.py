"""Ingest: stream an adapter's raw cases, map labels, fingerprint images, store cases or quarantine them."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice

from tqdm import tqdm

from retinal_reason_data.catalog import Catalog, SourceWriter
from retinal_reason_data.imaging import ImageError, fingerprint_task
from retinal_reason_data.ontology import Ontology, UnmappedLabel
from retinal_reason_data.privacy import pseudonymise
from retinal_reason_data.recipe import SourceSpec
from retinal_reason_data.schema import Case, Finding, ImageRef, Modality, Provenance, Quarantine
from retinal_reason_data.sources import get_adapter
from retinal_reason_data.sources.base import RawCase, SourceOptions, quarantine

BATCH = 256  # raw cases held at once: memory stays flat however large the collection


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
    with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context(method)) as pool:
        yield pool


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
    records = _limited(adapter.read(spec.root, context.source, options), spec.limit)
    progress = tqdm(desc=f"ingest {context.source}", unit="case", leave=False, disable=None)
    seen: set[str] = set()
    with catalog.source_writer(context.source) as writer:
        while batch := list(islice(records, BATCH)):
            for result in _process_batch(batch, context, writer, pool, report, seen):
                if isinstance(result, Quarantine):
                    writer.add_quarantine(result)
                    report.quarantined[result.reason] += 1
                else:
                    writer.add_case(result)
                    report.cases += 1
            progress.update(len(batch))
    progress.close()
    return report


def _limited(records: Iterator[RawCase | Quarantine], limit: int | None) -> Iterator[RawCase | Quarantine]:
    taken = 0
    for record in records:
        if limit is not None and isinstance(record, RawCase):
            if taken >= limit:
                return
            taken += 1
        yield record


def _process_batch(
    batch: Sequence[RawCase | Quarantine],
    context: SourceContext,
    writer: SourceWriter,
    pool: Executor | None,
    report: IngestReport,
    seen: set[str],
) -> Iterator[Case | Quarantine]:
    """Map labels, fingerprint the batch's uncached images together, then assemble cases in input order."""
    prepared: list[Quarantine | tuple[RawCase, list[Finding]]] = []
    wanted: dict[tuple[str, Modality], tuple[int, int]] = {}
    known: dict[tuple[str, Modality], ImageRef | ImageError] = {}
    for record in batch:
        item = record if isinstance(record, Quarantine) else _check_labels(record, context, seen)
        prepared.append(item)
        if isinstance(item, Quarantine):
            continue
        for image in item[0].images:
            task = (str(image.path), image.modality)
            if task in wanted or task in known:
                continue
            try:
                stat = image.path.stat()
            except OSError:
                known[task] = ImageError("image_missing", f"{image.path}: file named by the labels does not exist")
                continue
            cached = writer.catalog.cached_image(task[0], stat.st_size, stat.st_mtime_ns, str(image.modality))
            if cached is not None:
                known[task] = cached
                report.images_cached += 1
            else:
                wanted[task] = (stat.st_size, stat.st_mtime_ns)
    tasks = list(wanted)
    results = pool.map(fingerprint_task, tasks, chunksize=4) if pool else map(fingerprint_task, tasks)
    for task, result in zip(tasks, results, strict=True):
        known[task] = result
        if isinstance(result, ImageRef):
            writer.add_fingerprint(*wanted[task], result)
            report.images_fingerprinted += 1
    for item in prepared:
        yield item if isinstance(item, Quarantine) else _assemble(*item, context, known)


def _check_labels(raw: RawCase, context: SourceContext, seen: set[str]) -> Quarantine | tuple[RawCase, list[Finding]]:
    where = raw.row
    if raw.local_id in seen:
        return quarantine(
            context.source, raw.file, where, "duplicate_case_id",
            f"{raw.file} row {where}: case id {raw.local_id!r} appears more than once",
        )  # fmt: skip
    seen.add(raw.local_id)
    findings: list[Finding] = []
    for label in raw.labels:
        try:
            findings.append(context.ontology.map_label(label, context.labels))
        except UnmappedLabel as exc:
            if label != raw.context.diagnosis:  # a free-text diagnosis stays as text, with its aliases
                return quarantine(context.source, raw.file, where, "unknown_label", f"{raw.file} row {where}: {exc}")
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
