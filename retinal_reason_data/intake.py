"""Ingest: stream an adapter's raw cases, map labels, fingerprint images, store cases or quarantine them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tqdm import tqdm

from retinal_reason_data.catalog import Catalog, SourceWriter
from retinal_reason_data.imaging import ImageError, fingerprint
from retinal_reason_data.ontology import Ontology, UnmappedLabel
from retinal_reason_data.privacy import pseudonymise
from retinal_reason_data.recipe import SourceSpec
from retinal_reason_data.schema import Case, Finding, ImageRef, Provenance, Quarantine
from retinal_reason_data.sources import get_adapter
from retinal_reason_data.sources.base import RawCase, RawImage, SourceOptions, quarantine


@dataclass
class IngestReport:
    source: str
    cases: int = 0
    images_fingerprinted: int = 0
    images_cached: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)


def ensure_phantom(spec: SourceSpec) -> bool:
    """Write the phantom copy of a source's layout when the recipe asks for one and it is absent."""
    if spec.phantom is None or spec.root.exists():
        return False
    adapter = get_adapter(spec.adapter)
    if adapter.write_phantom is None:
        raise ValueError(f"adapter {spec.adapter!r} has no phantom generator")
    adapter.write_phantom(spec.root, spec.phantom.cases, spec.phantom.seed)
    return True


def ingest_source(spec: SourceSpec, catalog: Catalog, ontology: Ontology, key: bytes) -> IngestReport:
    """Replace the catalog's view of one source with what its files hold now; images are fingerprinted
    once and reused from the cache while their path, size and mtime stay the same."""
    adapter = get_adapter(spec.adapter)
    source = spec.source_name
    report = IngestReport(source=source)
    licence = spec.licence or adapter.licence
    labels = {**adapter.labels, **spec.labels}  # the recipe's mappings override the adapter's
    options = SourceOptions(work_dir=catalog.path.parent / f"{catalog.path.stem}_work" / source, values=spec.options)
    seen: set[str] = set()
    with catalog.source_writer(source) as writer:
        for record in tqdm(
            _limited(adapter.read(spec.root, source, options), spec.limit),
            desc=f"ingest {source}",
            unit="case",
            leave=False,
            disable=None,
        ):
            result = (
                record
                if isinstance(record, Quarantine)
                else _to_case(record, labels, source, licence, ontology, key, writer, report, seen)
            )
            if isinstance(result, Quarantine):
                writer.add_quarantine(result)
                report.quarantined[result.reason] += 1
            else:
                writer.add_case(result)
                report.cases += 1
    return report


def _limited(records: Iterator[RawCase | Quarantine], limit: int | None) -> Iterator[RawCase | Quarantine]:
    taken = 0
    for record in records:
        if limit is not None and isinstance(record, RawCase):
            if taken >= limit:
                return
            taken += 1
        yield record


def _to_case(
    raw: RawCase,
    labels: Mapping[str, str],
    source: str,
    licence: str,
    ontology: Ontology,
    key: bytes,
    writer: SourceWriter,
    report: IngestReport,
    seen: set[str],
) -> Case | Quarantine:
    where = raw.row if raw.row is not None else None
    if raw.local_id in seen:
        return quarantine(
            source,
            raw.file,
            where,
            "duplicate_case_id",
            f"{raw.file} row {where}: case id {raw.local_id!r} appears more than once",
        )
    seen.add(raw.local_id)
    findings: list[Finding] = []
    for label in raw.labels:
        try:
            findings.append(ontology.map_label(label, labels))
        except UnmappedLabel as exc:
            if label != raw.context.diagnosis:  # a free-text diagnosis stays as text, with its aliases
                return quarantine(source, raw.file, where, "unknown_label", f"{raw.file} row {where}: {exc}")
    images: list[ImageRef] = []
    for image in raw.images:
        try:
            images.append(_fingerprint_cached(image, writer, report))
        except ImageError as exc:
            return quarantine(source, raw.file, where, exc.reason, f"{raw.file} row {where}: {exc.detail}")
    return Case(
        case_id=f"{source}:{raw.local_id}",
        source=source,
        patient_id=pseudonymise(source, raw.raw_patient_id or raw.local_id, key),
        eye=raw.eye,
        age=raw.age,
        sex=raw.sex,
        images=images,
        findings=findings,
        gradable=raw.gradable,
        context=raw.context,
        provenance=Provenance(file=raw.file, row=raw.row, licence=licence),
    )


def _fingerprint_cached(image: RawImage, writer: SourceWriter, report: IngestReport) -> ImageRef:
    """The image's fingerprint, from the cache while its path, size and mtime are unchanged."""
    try:
        stat = image.path.stat()
    except FileNotFoundError as exc:
        raise ImageError("image_missing", f"{image.path}: file named by the labels does not exist") from exc
    cached = writer.catalog.cached_image(str(image.path), stat.st_size, stat.st_mtime_ns, str(image.modality))
    if cached is not None:
        report.images_cached += 1
        return cached.model_copy(update={"caption": image.caption})
    ref = fingerprint(image.path, image.modality, image.caption)
    writer.add_fingerprint(stat.st_size, stat.st_mtime_ns, ref.model_copy(update={"caption": None}))
    report.images_fingerprinted += 1
    return ref
