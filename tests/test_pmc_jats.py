"""The JATS reader on phantom articles written in every form real PMC files take."""

from __future__ import annotations

import io

import pytest

from retinal_reason_data.ingest.casereports.jats import JatsError, normalise_pmcid, read_articles
from retinal_reason_data.phantoms.layouts_pmc import FORMS, article_xml, phantom_case, wrap


def _read(xml: str) -> list:
    return list(read_articles(io.BytesIO(xml.encode("utf-8")), "test.nxml"))


@pytest.mark.parametrize("form_index", range(len(FORMS)))
def test_every_form_gives_ids_sections_figures_and_licence(form_index: int) -> None:
    form = FORMS[form_index]
    case = phantom_case(0, 1)
    (article,) = _read(wrap(article_xml("7654321", [case], form, "BMC Ophthalmology", "x-0001"), form.wrapper))
    assert article.pmcid == "PMC7654321"  # pmc, pmcid, pmc-uid or pmcid-ver, with or without the prefix
    assert article.doi == "10.0000/phantom.7654321"
    assert article.journal == "BMC Ophthalmology"
    assert article.title.startswith("Central retinal artery occlusion presenting with")
    assert article.licence in {"CC BY 4.0", "CC BY-NC 4.0"} or "open access" in (article.licence or "")
    assert [figure.fig_id for figure in article.figures] == ["F1", "F2"]
    first = article.figures[0]
    assert first.label.lower().startswith("fig")
    assert first.caption.startswith("(A)") or first.caption.startswith("Multimodal imaging. (a)")
    assert len(first.hrefs) == 1 and not first.hrefs[0].endswith(".gif")  # the thumbnail is not the figure
    case_section = next(s for top in article.body for s in top.walk() if "case" in s.title.lower())
    assert case_section.all_fig_refs() == ["F1", "F2"]
    text = case_section.text()
    assert "A " in text and "presented with" in text
    assert "Phantom reference" not in text and "ESR" not in text  # citations and tables stay out of the prose


def test_entities_formulas_and_floats_group() -> None:
    form = FORMS[3]  # floats-group, pmcid-ver, ali licence, entities, inline formula and table, thumbnails
    (article,) = _read(wrap(article_xml("1111", [phantom_case(1, 2)], form, "Retina", "y-0001"), "bare"))
    text = "\n".join(section.text() for section in article.body)
    assert "15-16 mmHg" in text and "20°C" in text  # &ndash; &nbsp; &deg; come from the DTD: read without it
    assert "–" not in text and "\u00a0" not in text and "\u2009" not in text  # typographic dashes and spaces plain
    assert "23.4" in text and "mm in both eyes" in text  # the inline formula as text
    assert "Laboratory results" not in text
    assert article.licence == "CC BY-NC 4.0"
    assert article.abstract[1].title == "Case presentation"  # the abstract's own case section is kept apart
    assert all(figure.hrefs[0].endswith(".jpg") for figure in article.figures)


def test_bundles_of_many_articles_are_read_one_by_one() -> None:
    articles = [article_xml(str(2000 + n), [phantom_case(n, 3)], FORMS[0], "Eye", f"z-{n}") for n in range(3)]
    found = _read(wrap("".join(articles), "articles"))
    assert [a.pmcid for a in found] == ["PMC2000", "PMC2001", "PMC2002"]
    assert [len(a.figures) for a in found] == [2, 2, 2]


def test_malformed_xml_and_entity_declarations_are_refused() -> None:
    good = wrap(article_xml("3000", [phantom_case(0, 1)], FORMS[0], "Eye", "w"), "bare")
    with pytest.raises(JatsError) as broken:
        _read(good[: len(good) // 2])
    assert broken.value.reason == "malformed_xml" and "test.nxml" in broken.value.detail
    bomb = '<?xml version="1.0"?><!DOCTYPE article [<!ENTITY a "aaaa">]><article>&a;</article>'
    with pytest.raises(JatsError) as declared:
        _read(bomb)
    assert declared.value.reason == "xml_entities"
    with pytest.raises(JatsError) as other:
        _read("<html><body/></html>")
    assert other.value.reason == "not_jats"


def test_pmcid_forms() -> None:
    assert normalise_pmcid("PMC123") == normalise_pmcid("123") == normalise_pmcid("PMC123.2") == "PMC123"
    assert normalise_pmcid("pmc-abc") is None and normalise_pmcid(None) is None
