"""PMC-Patients: patient summaries extracted from PMC case reports (`PMC-Patients.json`), text only.

Each note is a vignette; its images come from the article's PMC Open Access package when the user has
it: the `pmc_root` option names that folder (article folders `{PMCID}/`, packages `{PMCID}.tar.gz`, or
`.nxml` files named after the PMCID). Without it, or without the article, a patient is skipped with the
reason. The JSON is streamed (the full file has about 170,000 patients).
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson
from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.ingest.casereports.articles import (
    DEFAULT_MODALITIES,
    ArticleOptions,
    raw_case,
    resolve_figures,
)
from retinal_reason_data.ingest.casereports.clinical import extract
from retinal_reason_data.ingest.casereports.jats import Article, JatsError, Section, read_articles
from retinal_reason_data.ingest.casereports.ophthalmic import text_is_ophthalmic
from retinal_reason_data.ingest.sources.base import Adapter, RawCase, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.locate import option_dir
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ingest.sources.pmc_oa import PACKAGE_SUFFIXES, XML_SUFFIXES, article_files, unpack_package
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.schema import Modality, Quarantine

_PMCID = re.compile(r"PMC\d+", re.IGNORECASE)


class PatientsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pmc_root: str | None = Field(default=None, description="Your PMC Open Access folder (relative to the root).")
    ophthalmic_only: bool = Field(default=True, description="Keep notes whose title or text is ophthalmic.")
    extra_terms: list[str] = Field(default_factory=list, description="More words (regexes) that mark ophthalmic.")
    modalities: list[Modality] = Field(default_factory=lambda: list(DEFAULT_MODALITIES))


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per ophthalmic patient note whose article's figures are on disk."""
    settings = parse_options(PatientsOptions, options.values, source, "pmc_patients")
    path = root / "PMC-Patients.json" if root.is_dir() else root
    if not path.is_file():
        yield quarantine(source, path, None, "labels_missing", f"{path}: PMC-Patients.json not found")
        return
    pmc_root = option_dir(root if root.is_dir() else root.parent, settings.pmc_root)
    index = ArticleIndex(pmc_root) if pmc_root is not None else None
    article_options = ArticleOptions(figures="all", modalities=settings.modalities, case_reports_only=False)
    with path.open("rb") as handle:
        number = 0
        try:
            for number, record in enumerate(_records(handle), start=1):
                yield from _patient(record, number, path, source, settings, article_options, index, pmc_root, options)
        except ijson.JSONError as exc:
            yield quarantine(
                source, path, number + 1, "labels_unreadable", f"{path}: JSON broken after {number}: {exc}"
            )


def _records(handle: Any) -> Iterator[Any]:
    start = handle.read(3)
    if start != b"\xef\xbb\xbf":
        handle.seek(0)
    yield from ijson.items(handle, "item", use_float=True)


def _patient(
    record: Any,
    number: int,
    path: Path,
    source: str,
    settings: PatientsOptions,
    article_options: ArticleOptions,
    index: ArticleIndex | None,
    pmc_root: Path | None,
    options: SourceOptions,
) -> Iterator[RawCase | Quarantine]:
    if not isinstance(record, dict) or not isinstance(record.get("patient"), str):
        yield quarantine(source, path, number, "record_invalid", f"{path} record {number}: no 'patient' note")
        return
    uid = str(record.get("patient_uid") or record.get("patient_id") or number)
    title = str(record.get("title") or "")
    note = record["patient"]
    if settings.ophthalmic_only and not text_is_ophthalmic(title, note[:2000], extra_terms=settings.extra_terms):
        yield quarantine(
            source, path, uid, "not_ophthalmic", f"{path} patient {uid}: title and note are not ophthalmic"
        )
        return
    named = _PMCID.findall(str(record.get("file_path") or "")) or _PMCID.findall(str(record.get("pmcid") or ""))
    pmcid = named[-1].upper() if named else None  # 'comm/PMC002xxxxxx/PMC2802041.xml': the file name's
    if pmc_root is None or index is None:
        yield quarantine(
            source, path, uid, "images_unavailable",
            f"{path} patient {uid}: PMC-Patients is text only; set the source's option pmc_root to your PMC OA folder",
        )  # fmt: skip
        return
    article_path = index.find(pmcid) if pmcid else None
    if article_path is None:
        yield quarantine(
            source, path, uid, "images_unavailable", f"{path} patient {uid}: article {pmcid} not found in {pmc_root}"
        )
        return
    article, folders, problem = _load_article(article_path, pmcid or "", options)
    if article is None:
        yield quarantine(source, path, uid, problem[0], f"{path} patient {uid}: {problem[1]}")
        return
    case = Section(title="Case presentation", paragraphs=[line for line in note.splitlines() if line.strip()])
    figures, missing, left_out = resolve_figures(article, case, article_options, folders)
    if missing:
        yield quarantine(source, path, uid, "image_missing", f"{path} patient {uid}: figure files not found: {missing}")
        return
    if not figures:
        yield quarantine(source, path, uid, "no_retinal_figures", f"{path} patient {uid}: figures left out: {left_out}")
        return
    ontology = default_ontology()
    extracted = extract(article, case, ontology)
    age = _age(record.get("age"))
    sex = str(record.get("gender") or "").strip().upper()[:1]
    extracted = extracted.model_copy(
        update={"age": age if age is not None else extracted.age, "sex": sex if sex in ("F", "M") else extracted.sex}
    )
    yield raw_case(extracted, figures, article, uid, str(path), uid, source, ontology, article.licence, note)


def _age(value: Any) -> int | None:
    """Years from PMC-Patients' [[value, unit], ...] (months, weeks and days are under a year)."""
    if not isinstance(value, list) or not value:
        return None
    first = value[0]
    if not isinstance(first, list | tuple) or len(first) < 2:
        return None
    try:
        amount = float(first[0])
    except (TypeError, ValueError):
        return None
    return int(amount) if str(first[1]).lower().startswith("year") else 0


class ArticleIndex:
    """Where an article of the PMC OA folder is: `{PMCID}/`, `{PMCID}.tar.gz` or `{PMCID}.nxml` are looked up
    directly; anything else (e.g. the bulk `oa_package/08/e0/{PMCID}.tar.gz` layout) by an index of the
    folder's file names, built once, on the first article not found directly."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: dict[str, Path] | None = None

    def find(self, pmcid: str) -> Path | None:
        folder = self.root / pmcid
        if folder.is_dir():
            found = next(article_files(folder), None)
            if found is not None:
                return found
        for suffix in (".tar.gz", ".tgz", ".nxml", ".xml"):
            if (self.root / f"{pmcid}{suffix}").is_file():
                return self.root / f"{pmcid}{suffix}"
        if self._index is None:
            self._index = {}
            for path in article_files(self.root):
                for name in (path.name, *reversed(path.relative_to(self.root).parts[:-1])):
                    named = _PMCID.findall(name)
                    if named:
                        self._index.setdefault(named[-1].upper(), path)
                        break
        return self._index.get(pmcid)


def _load_article(path: Path, pmcid: str, options: SourceOptions) -> tuple[Article | None, list[Path], tuple[str, str]]:
    """The article with this PMCID from an XML file or a package, and the folders its figures are in."""
    try:
        if path.name.lower().endswith(PACKAGE_SUFFIXES):
            return _from_package(path, pmcid, options)
        if path.name.lower().endswith(XML_SUFFIXES):
            with path.open("rb") as handle:
                for article in read_articles(handle, str(path)):
                    if article.pmcid in (None, pmcid):
                        return article, [path.parent, path.parent / pmcid], ("", "")
    except JatsError as exc:
        return None, [], (exc.reason, exc.detail)
    return None, [], ("images_unavailable", f"{path} holds no article {pmcid}")


def _from_package(path: Path, pmcid: str, options: SourceOptions) -> tuple[Article | None, list[Path], tuple[str, str]]:
    """The article of a PMC OA package; its figures are unpacked into this source's work folder."""
    try:
        target, documents = unpack_package(path, options.work_dir)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        return None, [], ("package_unreadable", f"{path}: not a readable .tar.gz package ({exc})")
    for member_name, data in documents:
        for article in read_articles(io.BytesIO(data), f"{path}:{member_name}"):
            if article.pmcid in (None, pmcid):
                return article, [target], ("", "")
    return None, [], ("images_unavailable", f"{path} holds no article {pmcid}")


ADAPTER = Adapter(
    name="pmc_patients",
    title="PMC-Patients (patient notes from PMC case reports; images from your PMC OA folder)",
    layout="PMC-Patients.json: [{patient_uid, PMID, file_path, title, patient, age: [[value, unit]], gender}]. "
    "options: pmc_root (your PMC OA folder: {PMCID}/ folders, {PMCID}.tar.gz packages or {PMCID}.nxml), "
    "ophthalmic_only, extra_terms, modalities. Without pmc_root every patient is skipped (text only).",
    licence="PMC-Patients: CC BY-NC-SA 4.0; images keep each article's licence",
    read=read,
)
