"""PubMed Central Open Access case reports, read in place: one article's folder (`.nxml` beside its figure
files), its `.tar.gz` package, a folder of many of either, or bundles of many articles in one XML file
(Europe PMC `<articles>`, `<pmc-articleset>`, OAI-PMH responses; their figures in a folder named after the
PMCID or the file).

Packages are streamed member by member; their figure files are written once into the source's work folder
(the package itself is never changed). The recipe's options choose ophthalmic case reports; each case
section becomes a case with its figures, its vignette and its final diagnosis.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.casereports.articles import ArticleOptions, article_cases
from retinal_reason_data.ingest.casereports.jats import JatsError, read_articles
from retinal_reason_data.ingest.sources.base import IMAGE_SUFFIXES, Adapter, RawCase, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.folders import is_stray
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ontology import Ontology, default_ontology
from retinal_reason_data.schema import Quarantine
from retinal_reason_data.text import stable_hash

XML_SUFFIXES = (".nxml", ".xml")
PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """Every article under `root` (a folder, an `.nxml`/`.xml` file or a package), its cases or reasons."""
    settings = parse_options(ArticleOptions, options.values, source, "pmc_oa")
    ontology = default_ontology()
    files = list(article_files(root))
    if not files:
        yield quarantine(source, root, None, "labels_missing", f"{root}: no .nxml, .xml or .tar.gz article found")
        return
    for path in files:
        if path.name.lower().endswith(PACKAGE_SUFFIXES):
            yield from read_package(path, source, settings, ontology, options.work_dir)
        else:
            yield from read_xml(path, source, settings, ontology)


def article_files(root: Path) -> Iterator[Path]:
    """Article files under `root` in name order, past stray files (__MACOSX, '._' copies, hidden)."""
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(is_stray(Path(part)) for part in relative.parts) or not path.is_file():
            continue
        if path.name.lower().endswith(XML_SUFFIXES + PACKAGE_SUFFIXES):
            yield path


def read_xml(path: Path, source: str, settings: ArticleOptions, ontology: Ontology) -> Iterator[RawCase | Quarantine]:
    """The articles of one XML file; figures are looked up beside it, then in a folder named after the
    PMCID or after the file."""
    try:
        with path.open("rb") as handle:
            for article in read_articles(handle, str(path)):
                folders = [path.parent]
                if article.pmcid:
                    folders.append(path.parent / article.pmcid)
                folders.append(path.parent / path.name.split(".")[0])
                yield from article_cases(article, settings, ontology, source, str(path), folders)
    except JatsError as exc:
        yield quarantine(source, path, None, exc.reason, exc.detail)
    except OSError as exc:
        yield quarantine(source, path, None, "file_unreadable", f"{path}: {exc}")


def read_package(
    path: Path, source: str, settings: ArticleOptions, ontology: Ontology, work_dir: Path
) -> Iterator[RawCase | Quarantine]:
    """One PMC OA package: its XML read, its figure files found in the work folder (see `unpack_package`)."""
    try:
        target, documents = unpack_package(path, work_dir)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        yield quarantine(source, path, None, "package_unreadable", f"{path}: not a readable .tar.gz package ({exc})")
        return
    if not documents:
        yield quarantine(source, path, None, "labels_missing", f"{path}: the package holds no .nxml article")
        return
    for member_name, data in documents:
        try:
            for article in read_articles(io.BytesIO(data), f"{path}:{member_name}"):
                yield from article_cases(article, settings, ontology, source, str(path), [target])
        except JatsError as exc:
            yield quarantine(source, path, member_name, exc.reason, exc.detail)


def unpack_package(path: Path, work_dir: Path) -> tuple[Path, list[tuple[str, bytes]]]:
    """Stream a package member by member: its XML documents kept in memory, its figure files written once
    into a folder of the work folder (returned). Raises tarfile.TarError, EOFError or OSError."""
    target = work_dir / "packages" / f"{path.name.split('.')[0]}-{stable_hash(str(path.resolve()), length=8)}"
    documents: list[tuple[str, bytes]] = []
    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            name = Path(member.name)
            if not member.isfile() or any(is_stray(Path(part)) for part in name.parts):
                continue
            if name.name.lower().endswith(XML_SUFFIXES):
                handle = archive.extractfile(member)
                if handle is not None:
                    documents.append((member.name, handle.read()))
            elif name.suffix.lower() in IMAGE_SUFFIXES:
                _store(archive, member, target / name.name)
    return target, documents


def _store(archive: tarfile.TarFile, member: tarfile.TarInfo, destination: Path) -> None:
    """Write a package member once (same size on disk: kept, so its fingerprint stays cached)."""
    if destination.is_file() and destination.stat().st_size == member.size:
        return
    handle = archive.extractfile(member)
    if handle is None:
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    partial.write_bytes(handle.read())
    partial.replace(destination)


ADAPTER = Adapter(
    name="pmc_oa",
    title="PubMed Central Open Access case reports (JATS .nxml with figures)",
    layout="a folder of article folders ({PMCID}/*.nxml beside the figure files, hrefs with or without extensions), "
    "PMC OA packages ({PMCID}.tar.gz), or XML bundles (<pmc-articleset>, <articles>, OAI-PMH) with figures in "
    "{PMCID}/ beside them. options: case_reports_only, ophthalmic_only, extra_terms, cases (each|first), "
    "figures (cited|all), modalities, licences",
    licence="per article (PMC Open Access subset: CC BY, CC BY-NC, CC0 and others); each case carries its own",
    read=read,
)
