"""MultiCaRe (clinical cases, images, captions and labels from PMC case reports), read in place.

`metadata.parquet` (one row per article: flat columns, or MultiCaRe v2's `article_metadata` struct),
`cases.parquet` (per article a list `cases` of {case_id, case_text, age, gender}, or one case per row),
`captions_and_labels.csv` (one row per image or sub-image: file, patient_id = case id, caption, image_type,
image_subtype and label lists written as Python list literals) and the images under `{file[:4]}/{file[:5]}/`
(or an `images/` folder). Only cases with ophthalmic images are kept; MultiCaRe's own labels give each
image's modality (a caption names the kind of angiography when the label does not).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.ingest.casereports.articles import DEFAULT_MODALITIES, ResolvedFigure, raw_case
from retinal_reason_data.ingest.casereports.clinical import extract_from_text
from retinal_reason_data.ingest.casereports.jats import Article, Figure
from retinal_reason_data.ingest.casereports.panels import classify
from retinal_reason_data.ingest.sources.base import (
    Adapter,
    RawCase,
    SourceOptions,
    find_image,
    image_listing,
    quarantine,
)
from retinal_reason_data.ingest.sources.fields import parse_age, parse_sex
from retinal_reason_data.ingest.sources.locate import option_dir
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ingest.sources.tabular import read_csv_rows
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.schema import Modality, Quarantine

LABEL_MODALITY = {
    "fundus_photograph": Modality.CFP,
    "fundus_image": Modality.CFP,
    "oct": Modality.OCT,
    "spectral_domain": Modality.OCT,
    "fluorescein_angiography": Modality.FFA,
    "icga": Modality.ICGA,
    "indocyanine_green_angiography": Modality.ICGA,
    "autofluorescence": Modality.FAF,
    "slit_lamp_photograph": Modality.SLIT_LAMP,
    "anterior_segment_image": Modality.SLIT_LAMP,
    "ophthalmic_angiography": Modality.FFA,
    "ophtalmic_angiography": Modality.FFA,
}
SPECIFIC_FIRST = [
    "icga",
    "indocyanine_green_angiography",
    "fluorescein_angiography",
    "autofluorescence",
    "oct",
    "spectral_domain",
    "fundus_photograph",
    "fundus_image",
    "slit_lamp_photograph",
    "anterior_segment_image",
    "ophthalmic_angiography",
    "ophtalmic_angiography",
]


class MultiCareOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modalities: list[Modality] = Field(
        default_factory=lambda: list(DEFAULT_MODALITIES), description="Images of these modalities are kept."
    )
    images: str | None = Field(default=None, description="Image folder, if not the root (relative to the root).")


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per MultiCaRe case that has ophthalmic images; the others are reported as not ophthalmic."""
    settings = parse_options(MultiCareOptions, options.values, source, "multicare")
    needed = {name: root / name for name in ("metadata.parquet", "cases.parquet", "captions_and_labels.csv")}
    absent = [name for name, path in needed.items() if not path.is_file()]
    if absent:
        yield quarantine(source, root, None, "labels_missing", f"{root}: MultiCaRe files not found: {absent}")
        return
    images_root = option_dir(root, settings.images) or root
    wanted = set(settings.modalities)
    by_case: dict[str, list[tuple[int, dict[str, str], Modality]]] = defaultdict(list)
    labels_path = needed["captions_and_labels.csv"]
    for number, row in read_csv_rows(labels_path):
        modality = image_modality(row)
        if modality is not None and modality in wanted and row.get("patient_id"):
            by_case[row["patient_id"].strip()].append((number, row, modality))
    metadata = _metadata(needed["metadata.parquet"], {case_id.split("_")[0] for case_id in by_case})
    ontology = default_ontology()
    listings: dict[Path, dict[str, Path]] = {}
    for case in _cases(needed["cases.parquet"]):
        case_id = str(case.get("case_id") or "").strip()
        file = str(needed["cases.parquet"])
        if not case_id:
            yield quarantine(source, file, None, "record_invalid", f"{file}: a case without case_id")
            continue
        images = by_case.get(case_id)
        if not images:
            yield quarantine(source, file, case_id, "not_ophthalmic", f"{file} {case_id}: no ophthalmic image")
            continue
        figures, missing = [], []
        for number, row, modality in images:
            name = row.get("file", "").strip()
            folder = images_root / name[:4] / name[:5]
            if not folder.is_dir():
                folder = images_root / "images" / name[:4] / name[:5]
            listing = listings.setdefault(folder, image_listing(folder))
            path = find_image(folder, name, listing)
            if path is None:
                missing.append(f"{name} (row {number})")
                continue
            figure = Figure(fig_id=row.get("file_id", name), caption=row.get("caption", ""), position=number)
            figures.append(ResolvedFigure(figure=figure, path=path, modality=modality, caption=figure.caption))
        if missing:
            yield quarantine(
                source,
                labels_path,
                case_id,
                "image_missing",
                f"{labels_path} {case_id}: image files not found: {missing}",
            )
            continue
        article_meta = metadata.get(case_id.split("_")[0], {})
        title = str(article_meta.get("title") or "")
        extracted = extract_from_text(str(case.get("case_text") or ""), title, ontology)
        age = parse_age(case.get("age"))
        extracted = extracted.model_copy(
            update={
                "age": age if age is not None else extracted.age,
                "sex": {"F": "F", "M": "M"}.get(str(parse_sex(case.get("gender"))), extracted.sex),
            }
        )
        article = Article(pmcid=case_id.split("_")[0], title=title, doi=article_meta.get("doi"))
        licence = article_meta.get("license") or images[0][1].get("license") or None
        text = str(case.get("case_text") or "")
        yield raw_case(extracted, figures, article, case_id, file, case_id, source, ontology, licence, text)


def image_modality(row: dict[str, str]) -> Modality | None:
    """The modality of a MultiCaRe image from its labels (the most specific one); the caption decides
    between fluorescein, ICG and OCT angiography when the label only says 'ophthalmic_angiography'."""
    labels: set[str] = set()
    for column in ("gt_labels_for_semisupervised_classification", "ml_labels_for_supervised_classification"):
        labels |= {label.strip().lower() for label in _list_cell(row.get(column, ""))}
    labels |= {row.get("image_subtype", "").strip().lower(), row.get("image_type", "").strip().lower()}
    for label in SPECIFIC_FIRST:
        if label in labels:
            modality = LABEL_MODALITY[label]
            if label in ("ophthalmic_angiography", "ophtalmic_angiography", "oct"):
                named = classify(row.get("caption", ""))
                if named in (Modality.ICGA, Modality.OCTA, Modality.FFA) and (label != "oct" or named is Modality.OCTA):
                    return named
            return modality
    return None


def _list_cell(value: str) -> list[str]:
    text = (value or "").strip()
    if not text:
        return []
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return [part.strip(" '\"") for part in text.strip("[]").split(",") if part.strip()]
    return [str(item) for item in parsed] if isinstance(parsed, list | tuple) else [str(parsed)]


def _metadata(path: Path, pmcids: set[str]) -> dict[str, dict[str, Any]]:
    """Article metadata of the wanted PMCIDs (flat columns, or v2's `article_metadata` struct column)."""
    import pyarrow.parquet as pq  # here, not at the top: `rrd sources` and `--help` need no pyarrow

    found: dict[str, dict[str, Any]] = {}
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            record = row.get("article_metadata") if isinstance(row.get("article_metadata"), dict) else row
            pmcid = str(record.get("pmcid") or "").strip()
            if pmcid in pmcids:
                found[pmcid] = record
    return found


def _cases(path: Path) -> Iterator[dict[str, Any]]:
    """Every case of cases.parquet, a batch at a time (nested `cases` lists or one case per row)."""
    import pyarrow.parquet as pq  # here, not at the top: `rrd sources` and `--help` need no pyarrow

    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            nested = row.get("cases")
            if isinstance(nested, list):
                yield from (case for case in nested if isinstance(case, dict))
            else:
                yield row


ADAPTER = Adapter(
    name="multicare",
    title="MultiCaRe (clinical cases with images from PMC case reports)",
    layout="metadata.parquet, cases.parquet (cases: [{case_id, case_text, age, gender}]), captions_and_labels.csv "
    "(file, patient_id, caption, image_type, image_subtype, label lists), images in {file[:4]}/{file[:5]}/{file}. "
    "Cases with fundus, OCT, angiography, autofluorescence or slit-lamp images are kept. options: modalities, images",
    licence="per article (CC BY and others, see metadata.parquet); MultiCaRe itself: CC BY 4.0",
    read=read,
)
