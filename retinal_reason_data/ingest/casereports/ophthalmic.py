"""Which articles are ophthalmic case reports: article type and subjects, journal, keywords, MeSH terms,
section titles and title."""

from __future__ import annotations

import re
from collections.abc import Iterable

from retinal_reason_data.ingest.casereports.jats import Article

CASE_REPORT_TYPES = {"case-report", "case-reports", "case-study", "case-series", "case report", "clinical-case"}
_CASE_SUBJECT = re.compile(r"\bcase\s+(?:reports?|stud(?:y|ies)|series)\b|\bclinical\s+case\b", re.I)
_JOURNAL = re.compile(
    r"ophthalm|retina|\beye\b|\bvision\b|optom|ocular|uveitis|glaucoma|cornea|strabismus|graefe|neuro-?ophthalm|"
    r"\boculi\b|\bophthalmic\b",
    re.I,
)
_TERMS = re.compile(
    r"ophthalm\w*|retin\w*|macul\w*|choroid\w*|chorioretin\w*|uveit\w*|fundus|optic\s+(?:disc|disk|nerve|neur\w*)|"
    r"vitre\w*|\beyes?\b|ocular|intraocular|\bvisual\s+(?:acuity|loss|field)|glaucom\w*|papill\w*|scler\w*|"
    r"\bvision\b|\bblind\w*|angiograph\w*|\bOCT\b|optical\s+coherence|endophthalm\w*|keratit\w*|cornea\w*",
    re.I,
)


def is_case_report(article: Article) -> bool:
    """`article-type` case-report / case-study, or a subject such as 'Clinical Case Report'."""
    if article.article_type in CASE_REPORT_TYPES:
        return True
    return any(_CASE_SUBJECT.search(subject) for subject in article.subjects)


def ophthalmic_evidence(article: Article, extra_terms: Iterable[str] = ()) -> list[str]:
    """Where the article shows it is ophthalmic: 'journal', 'keywords', 'mesh', 'title', 'sections'
    (empty when nowhere). `extra_terms` are more words (regular expressions) that count."""
    extra = [re.compile(term, re.I) for term in extra_terms]

    def hit(text: str) -> bool:
        return bool(_TERMS.search(text)) or any(pattern.search(text) for pattern in extra)

    found = []
    if _JOURNAL.search(article.journal) or any(pattern.search(article.journal) for pattern in extra):
        found.append("journal")
    if any(hit(keyword) for keyword in article.keywords):
        found.append("keywords")
    if any(hit(term) for term in article.mesh_terms):
        found.append("mesh")
    if hit(article.title):
        found.append("title")
    titles = [section.title for top in article.body for section in top.walk() if section.title]
    if any(hit(title) for title in titles):
        found.append("sections")
    return found


def text_is_ophthalmic(*texts: str, extra_terms: Iterable[str] = ()) -> bool:
    """Whether plain text (a title, a case note) names the eye, the retina or ophthalmic imaging."""
    extra = [re.compile(term, re.I) for term in extra_terms]
    return any(_TERMS.search(text) or any(p.search(text) for p in extra) for text in texts if text)
