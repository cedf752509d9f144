"""From one parsed article to raw cases: the recipe's filter, the case sections, their figures (files found
on disk, panels classified) and the clinical context; every refusal is a quarantine record with its reason."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.ingest.casereports.clinical import Extracted, case_sections, extract, map_diagnosis
from retinal_reason_data.ingest.casereports.jats import Article, Figure, Section, normalise_characters
from retinal_reason_data.ingest.casereports.ophthalmic import is_case_report, ophthalmic_evidence
from retinal_reason_data.ingest.casereports.panels import RETINAL, figure_modality, split_panels
from retinal_reason_data.ingest.sources.base import RawCase, RawImage, find_image, image_listing, quarantine
from retinal_reason_data.ontology import Ontology
from retinal_reason_data.schema import ClinicalContext, Modality, Quarantine, Sex
from retinal_reason_data.text import stable_hash

DEFAULT_MODALITIES = sorted(RETINAL, key=str)


class ArticleOptions(BaseModel):
    """Recipe `options` of the PMC adapters: which articles, cases and figures to keep."""

    model_config = ConfigDict(extra="forbid")

    case_reports_only: bool = Field(
        default=True, description="Keep articles typed case-report/case-study or with a 'Case Report' subject."
    )
    ophthalmic_only: bool = Field(
        default=True, description="Keep articles whose journal, keywords, MeSH terms, title or sections are ophthalmic."
    )
    extra_terms: list[str] = Field(default_factory=list, description="More words (regexes) that mark ophthalmic.")
    cases: str = Field(default="each", pattern="^(each|first)$", description="'each' case section (Case 1, 2...).")
    figures: str = Field(
        default="cited", pattern="^(cited|all)$", description="Figures cited in the case section, or all of them."
    )
    modalities: list[Modality] = Field(
        default_factory=lambda: list(DEFAULT_MODALITIES), description="Figures of these modalities are kept."
    )
    licences: list[str] | None = Field(
        default=None, description="Keep only articles under these licences, e.g. ['CC BY 4.0', 'CC0']."
    )


class ResolvedFigure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    figure: Figure
    path: Path
    modality: Modality
    caption: str


def article_filter(article: Article, options: ArticleOptions, source: str, file: str, row: str) -> Quarantine | None:
    """The quarantine record of an article the recipe does not want, or None to keep it."""
    if options.case_reports_only and not is_case_report(article):
        detail = f"article-type {article.article_type or '(none)'!r}, subjects {article.subjects}"
        return quarantine(source, file, row, "not_case_report", f"{file} {row}: not a case report ({detail})")
    if options.ophthalmic_only and not ophthalmic_evidence(article, options.extra_terms):
        detail = f"journal {article.journal!r}, keywords {article.keywords[:5]}"
        return quarantine(
            source, file, row, "not_ophthalmic", f"{file} {row}: no ophthalmic journal or terms ({detail})"
        )
    if options.licences is not None:
        allowed = {name.strip().lower() for name in options.licences}
        if (article.licence or "").strip().lower() not in allowed:
            return quarantine(
                source,
                file,
                row,
                "licence_excluded",
                f"{file} {row}: licence {article.licence!r} not in {options.licences}",
            )
    return None


def resolve_figures(
    article: Article, section: Section, options: ArticleOptions, folders: Sequence[Path]
) -> tuple[list[ResolvedFigure], list[str], list[str]]:
    """The case's figures that show a wanted modality, in document order: (found, missing hrefs, modalities
    of the figures left out)."""
    cited = section.all_fig_refs()
    figures = [article.figure(ref) for ref in cited] if options.figures == "cited" and cited else article.figures
    wanted = set(options.modalities)
    listings = {folder: image_listing(folder) for folder in dict.fromkeys(folders)}
    found: list[ResolvedFigure] = []
    missing: list[str] = []
    left_out: list[str] = []
    for figure in sorted((f for f in figures if f is not None), key=lambda f: f.position):
        panels = split_panels(figure.caption)
        modality = figure_modality(panels)
        if modality not in wanted:
            left_out.append(f"{figure.label or figure.fig_id}: {modality}")
            continue
        hrefs = figure.hrefs
        several = len(hrefs) > 1 and len(hrefs) == len(panels)
        for index, href in enumerate(hrefs):
            path = _locate(href, listings)
            if path is None:
                missing.append(href)
                continue
            panel_modality = panels[index].modality if several else modality
            caption = panels[index].text if several else figure.caption
            if path not in {f.path for f in found}:
                found.append(ResolvedFigure(figure=figure, path=path, modality=panel_modality, caption=caption))
    return found, missing, left_out


def _locate(href: str, listings: dict[Path, dict[str, Path]]) -> Path | None:
    name = Path(href.replace("\\", "/")).name
    for folder, listing in listings.items():
        path = find_image(folder, name, listing)
        if path is not None:
            return path
    return None


def article_cases(
    article: Article,
    options: ArticleOptions,
    ontology: Ontology,
    source: str,
    file: str,
    folders: Sequence[Path],
    licence: str | None = None,
) -> Iterator[RawCase | Quarantine]:
    """The raw cases of one article (one per case section with 'each'), or the reasons it gives none."""
    name = article.pmcid or (f"doi:{article.doi}" if article.doi else f"article-{stable_hash(article.title)}")
    refused = article_filter(article, options, source, file, name)
    if refused is not None:
        yield refused
        return
    sections = case_sections(article, each_case=options.cases == "each")
    if not sections:
        titles = [s.title for top in article.body for s in top.walk() if s.title][:8]
        yield quarantine(source, file, name, "no_case_section", f"{file} {name}: no case section (sections: {titles})")
        return
    if options.cases == "first":
        sections = sections[:1]
    for number, section in enumerate(sections, start=1):
        row = f"{name} case {number}" if len(sections) > 1 else name
        local_id = f"{name}_{number:02d}"
        found, missing, left_out = resolve_figures(article, section, options, folders)
        if missing:
            where = ", ".join(str(folder) for folder in dict.fromkeys(folders))
            yield quarantine(
                source, file, row, "image_missing", f"{file} {row}: figure files not found in {where}: {missing}"
            )
            continue
        if not found:
            detail = f"figures left out: {left_out}" if left_out else "no figure with a graphic"
            yield quarantine(source, file, row, "no_retinal_figures", f"{file} {row}: {detail}")
            continue
        extracted = extract(article, section, ontology, several_cases=len(sections) > 1)
        yield raw_case(
            extracted, found, article, local_id, file, row, source, ontology, licence or article.licence, section.text()
        )


def raw_case(
    extracted: Extracted,
    figures: Sequence[ResolvedFigure],
    article: Article,
    local_id: str,
    file: str,
    row: str,
    source: str,
    ontology: Ontology,
    licence: str | None,
    case_text: str | None = None,
) -> RawCase | Quarantine:
    """A raw case from extracted fields and resolved figures; quarantined without a trustworthy diagnosis or a
    presentation, saying why."""
    if not extracted.final_diagnosis:
        why = extracted.diagnosis_refusal or "no final diagnosis found in the article"
        return quarantine(source, file, row, "no_diagnosis", f"{file} {row}: {why}")
    if not extracted.chief_complaint:
        return quarantine(
            source,
            file,
            row,
            "no_chief_complaint",
            f"{file} {row}: no sentence of the case text says how the patient presented ('presented with', "
            "'was referred for', 'complaining of', 'a 2-week history of') or introduces the patient by age",
        )
    phrase, entry = map_diagnosis(extracted.final_diagnosis, ontology)
    diagnosis = entry.name if entry else phrase
    aliases = [a for a in dict.fromkeys([phrase, *extracted.diagnosis_aliases]) if a != diagnosis]
    return RawCase(
        local_id=local_id,
        raw_patient_id=local_id,
        age=extracted.age,
        sex=Sex(extracted.sex) if extracted.sex in ("F", "M") else Sex.UNKNOWN,
        images=[RawImage(path=f.path, modality=f.modality, caption=f.caption or None) for f in figures],
        labels=[diagnosis],
        context=ClinicalContext(
            chief_complaint=extracted.chief_complaint,
            history=extracted.history_of_present_illness,
            past_history=extracted.past_history,
            exam=extracted.examination,
            diagnosis=diagnosis,
            diagnosis_aliases=aliases,
            title=article.title or None,
            pmcid=article.pmcid,
            case_text=normalise_characters(case_text) if case_text else None,  # as the rules read it
        ),
        file=file,
        row=row,
        licence=licence,
    )
