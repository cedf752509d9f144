"""Reading JATS XML (PubMed Central `.nxml`, Europe PMC bundles, OAI-PMH responses) into plain models.

Real files vary, and this reader takes them as they come: a bare `<article>` with a DOCTYPE, articles
wrapped in `<pmc-articleset>`, `<articles>` or an OAI-PMH envelope, JATS elements in a default namespace
(elements are matched by local name), the xlink namespace declared on the root or on each element,
PMCIDs written as `pmc`, `pmcid`, `pmc-uid` or `pmcid-ver` with or without the `PMC` prefix, figures
inside `<p>`, directly under `<sec>` or in `<floats-group>`, hrefs without extensions and `<alternatives>`
with thumbnails, licences as `<license xlink:href>`, `<ali:license_ref>` or prose, HTML named entities
(`&nbsp;`, `&ndash;`) that only the external DTD defines.

The input is parsed as a stream (bundles of many articles are read one article at a time); entity
declarations inside the document are refused, so no document can expand itself or reach outside.
"""

from __future__ import annotations

import html.entities
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field

CHUNK = 1 << 16
_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_ENTITIES = {b"amp", b"lt", b"gt", b"quot", b"apos"}
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:)\]])")
_EMPTY_BRACKETS = re.compile(r"\s*[\[(][\s,;–-]*[\])]")
_PANEL_LETTERS = re.compile(r"^\(?([A-Ha-h](?:\s*(?:[-–—,]|and|&)\s*[A-Ha-h])*)\)?[.:]?$")
_SKIP_IN_TEXT = {
    "fig",
    "fig-group",
    "table-wrap",
    "table-wrap-group",
    "supplementary-material",
    "graphic",
    "media",
    "ref-list",
    "disp-formula",
    "alternatives",
}
_BLOCKS = {"p", "list", "disp-quote", "boxed-text", "def-list", "statement", "verse-group"}
_THUMBNAIL = re.compile(r"thumb|icon", re.IGNORECASE)
_CC = re.compile(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d\.\d)?", re.IGNORECASE)
# Typographic characters that publishers use where plain text has a hyphen or a space; rules that read
# '7-year-old' or 'non-specific' must not depend on which of them the typesetter chose.
_CHARACTERS = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2043\u2212\ufe63\uff0d", "-"),  # hyphens, en dash, minus
        **dict.fromkeys("\u2014\u2015", " - "),  # em dash, horizontal bar: a pause between words
        **dict.fromkeys("\u00a0\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B))), " "),  # nbsp, thin
        **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff", ""),  # soft hyphen, zero-width characters
        **dict.fromkeys("\u2018\u2019\u201a\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u2033", '"'),
    }
)


class JatsError(ValueError):
    """A document that cannot be read as JATS: malformed XML, entity declarations, no article in it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Figure(BaseModel):
    """One `<fig>`: its id, label, caption text (panel letters written as '(A)') and graphic hrefs."""

    model_config = ConfigDict(extra="forbid")

    fig_id: str
    label: str = ""
    caption: str = ""
    hrefs: list[str] = Field(default_factory=list, description="Graphic hrefs as written (often no extension).")
    position: int = Field(description="Order of the figure in the document.")


class Section(BaseModel):
    """One `<sec>` (or the body's loose paragraphs), with its nested sections."""

    model_config = ConfigDict(extra="forbid")

    title: str = ""
    sec_type: str = ""
    paragraphs: list[str] = Field(default_factory=list)
    fig_refs: list[str] = Field(default_factory=list, description="Figure ids cited in the paragraphs, in order.")
    sections: list[Section] = Field(default_factory=list)

    def walk(self) -> Iterator[Section]:
        """This section and every section nested in it, in document order."""
        yield self
        for child in self.sections:
            yield from child.walk()

    def text(self) -> str:
        """Every paragraph of this section and its subsections, one paragraph per line."""
        return "\n".join(paragraph for section in self.walk() for paragraph in section.paragraphs)

    def all_fig_refs(self) -> list[str]:
        """Figure ids cited anywhere in this section, first citation first, each once."""
        return list(dict.fromkeys(ref for section in self.walk() for ref in section.fig_refs))


class Article(BaseModel):
    """What a case-report source needs from one JATS article."""

    model_config = ConfigDict(extra="forbid")

    pmcid: str | None = None
    pmid: str | None = None
    doi: str | None = None
    article_type: str = ""
    title: str = ""
    journal: str = ""
    subjects: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    mesh_terms: list[str] = Field(default_factory=list)
    licence: str | None = None
    abstract: list[Section] = Field(default_factory=list, description="Abstract sections (one untitled if plain).")
    body: list[Section] = Field(default_factory=list)
    back: list[Section] = Field(default_factory=list, description="Sections in <back> other than references.")
    figures: list[Figure] = Field(default_factory=list)

    def abstract_text(self) -> str:
        return "\n".join(section.text() for section in self.abstract)

    def figure(self, fig_id: str) -> Figure | None:
        return next((figure for figure in self.figures if figure.fig_id == fig_id), None)


# --- reading a stream ---------------------------------------------------------------------------------
def local(tag: object) -> str:
    """The local name of an element tag ('{ns}article' -> 'article'); '' for comments and PIs."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def attr(element: ET.Element, name: str) -> str | None:
    """An attribute by local name, whatever namespace (xlink or none) it was written in."""
    for key, value in element.attrib.items():
        if key == name or key.rsplit("}", 1)[-1] == name:
            return value
    return None


def numeric_entities(data: bytes) -> bytes:
    """HTML named entities (which only the JATS DTD defines) rewritten as character references."""

    def replace(match: re.Match[bytes]) -> bytes:
        name = match.group(1)
        if name in _XML_ENTITIES:
            return match.group(0)
        text = html.entities.html5.get(name.decode("ascii") + ";")
        if text is None:
            return match.group(0)
        return "".join(f"&#{ord(char)};" for char in text).encode("ascii")

    return _ENTITY.sub(replace, data)


def iter_article_elements(stream: BinaryIO | Iterable[bytes], name: str) -> Iterator[ET.Element]:
    """Each top-level `<article>` of a document (bare, in a set, in an OAI-PMH envelope), parsed as a
    stream; memory holds one article at a time. Raises JatsError (malformed_xml, xml_entities, not_jats)."""
    parser = ET.XMLPullParser(events=("start", "end"))
    chunks = iter(lambda: stream.read(CHUNK), b"") if hasattr(stream, "read") else iter(stream)  # type: ignore[union-attr]
    stack: list[ET.Element] = []
    depth = 0
    found = root_seen = False
    carry = tail = b""
    for chunk in _with_end(chunks):
        if chunk is None:
            data, carry = carry, b""
        else:
            data = carry + chunk
            cut = data.rfind(b"&")
            if cut >= 0 and b";" not in data[cut:] and len(data) - cut < 40:
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            if b"<!ENTITY" in tail + data:  # the tail: a declaration split between two chunks
                raise JatsError("xml_entities", f"{name}: declares its own entities (refused: not a PMC article)")
            tail = data[-8:]
        try:
            parser.feed(numeric_entities(data))
            if chunk is None:
                parser.close()
            events = list(parser.read_events())
        except ET.ParseError as exc:
            raise JatsError("malformed_xml", f"{name}: not well-formed XML ({exc})") from None
        for event, element in events:
            tag = local(element.tag)
            if event == "start":
                if not root_seen:
                    root_seen = True
                    if tag not in ("article", "pmc-articleset", "articles", "OAI-PMH", "record", "metadata"):
                        raise JatsError("not_jats", f"{name}: root element <{tag}> is not a JATS article or set")
                stack.append(element)
                if tag == "article":
                    depth += 1
                continue
            stack.pop()
            if tag == "article":
                depth -= 1
                if depth == 0:
                    found = True
                    yield element
                    if stack:
                        stack[-1].remove(element)
                    element.clear()
    if not found:
        raise JatsError("not_jats", f"{name}: no <article> element in the document")


def _with_end(chunks: Iterator[bytes]) -> Iterator[bytes | None]:
    yield from chunks
    yield None


def read_articles(stream: BinaryIO | Iterable[bytes], name: str) -> Iterator[Article]:
    """Every article of a JATS document as an Article (see `iter_article_elements` for errors)."""
    for element in iter_article_elements(stream, name):
        yield parse_article(element)


# --- one article ---------------------------------------------------------------------------------------
def children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if local(child.tag) == name]


def child(element: ET.Element | None, name: str) -> ET.Element | None:
    if element is None:
        return None
    return next((c for c in element if local(c.tag) == name), None)


def descendants(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (node for node in element.iter() if local(node.tag) == name)


def normalise_characters(text: str) -> str:
    """Typographic hyphens and dashes (U+2010-2015, minus), non-breaking, thin and other spaces, soft hyphens,
    zero-width characters and curly quotes as their plain forms: '7\u2010year\u2010old' reads '7-year-old'."""
    return text.translate(_CHARACTERS)


def clean(text: str) -> str:
    """Characters normalised, whitespace collapsed, no space before punctuation, no brackets emptied by dropped
    citations."""
    text = _SPACE.sub(" ", normalise_characters(text)).strip()
    text = _EMPTY_BRACKETS.sub("", text)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


def plain_text(element: ET.Element | None) -> str:
    """All text of an element, tags removed, whitespace collapsed."""
    return clean("".join(element.itertext())) if element is not None else ""


def prose(element: ET.Element, refs: list[str] | None = None, panels: bool = False) -> str:
    """Readable text of a paragraph: citations dropped, figures and tables left out, inline formulas as
    their text; figure ids cited are appended to `refs`; with `panels`, a bold panel letter becomes '(A)'."""
    parts: list[str] = []
    _prose(element, parts, refs, panels, top=True)
    return clean("".join(parts))


def _prose(element: ET.Element, parts: list[str], refs: list[str] | None, panels: bool, top: bool = False) -> None:
    tag = local(element.tag)
    if not top and tag in _SKIP_IN_TEXT:
        parts.append(" ")
        if element.tail:
            parts.append(element.tail)
        return
    if tag == "xref":
        kind = attr(element, "ref-type") or ""
        if kind == "fig" and refs is not None:
            refs.extend((attr(element, "rid") or "").split())
        if kind not in ("bibr", "fn", "table-fn"):
            parts.append(plain_text(element))
        if element.tail:
            parts.append(element.tail)
        return
    if tag == "inline-formula":
        parts.append(_formula_text(element))
        if element.tail:
            parts.append(element.tail)
        return
    if panels and tag == "bold":
        letters = _PANEL_LETTERS.match(plain_text(element))
        if letters:
            parts.append(f"({letters.group(1)})")
            if element.tail:
                parts.append(element.tail)
            return
    if tag in ("title", "label") and not top:
        parts.append(" ")
    if element.text:
        parts.append(element.text)
    for node in element:
        _prose(node, parts, refs, panels)
    if tag in _BLOCKS or tag in ("title", "list-item"):
        parts.append(" ")
    if not top and element.tail:
        parts.append(element.tail)


def _formula_text(element: ET.Element) -> str:
    """Inline formula as text: its MathML characters, else its TeX without backslashes and dollars."""
    math = next(descendants(element, "math"), None)
    if math is not None:
        return "".join(text.strip() for text in math.itertext())
    tex = next(descendants(element, "tex-math"), None)
    if tex is not None:
        return re.sub(r"[\\$]", "", "".join(tex.itertext())).strip()
    return plain_text(element)


def normalise_pmcid(value: str | None) -> str | None:
    """'PMC1234567', '1234567', 'PMC1234567.2' -> 'PMC1234567'; None for anything else."""
    if not value:
        return None
    match = re.fullmatch(r"\s*(?:PMC)?(\d+)(?:\.\d+)?\s*", value, re.IGNORECASE)
    return f"PMC{match.group(1)}" if match else None


def licence_name(permissions: ET.Element | None) -> str | None:
    """'CC BY 4.0' for a Creative Commons URL (href, ali:license_ref or prose); the prose otherwise."""
    if permissions is None:
        return None
    candidates: list[str] = []
    for licence in descendants(permissions, "license"):
        candidates += [attr(licence, "href") or "", *(plain_text(r) for r in descendants(licence, "license_ref"))]
        candidates.append(plain_text(licence))
    candidates += [plain_text(r) for r in descendants(permissions, "license_ref")]
    for text in candidates:
        match = _CC.search(text)
        if match:
            kind, version = match.group(2).lower(), match.group(3)
            name = "CC0" if kind == "zero" else "CC " + kind.upper()
            return f"{name} {version}" if version and kind != "zero" else name
    prose_text = next((text for text in candidates if text), "")
    return prose_text[:300] or None


def parse_article(element: ET.Element) -> Article:
    """An Article from one `<article>` element."""
    front = child(element, "front")
    meta = child(front, "article-meta")
    journal_meta = child(front, "journal-meta")
    ids: dict[str, str] = {}
    for node in children(meta, "article-id") if meta is not None else []:
        ids.setdefault((attr(node, "pub-id-type") or "").lower(), plain_text(node))
    pmcid = next(
        (normalise_pmcid(ids[k]) for k in ("pmcid", "pmc", "pmcid-ver", "pmc-uid") if normalise_pmcid(ids.get(k))),
        None,
    )
    journal = ""
    if journal_meta is not None:
        title = next(descendants(journal_meta, "journal-title"), None)
        journal = plain_text(title) or next(
            (plain_text(n) for n in descendants(journal_meta, "journal-id") if plain_text(n)), ""
        )
    keywords, mesh = [], []
    for group in descendants(meta, "kwd-group") if meta is not None else []:
        terms = [plain_text(k) for k in descendants(group, "kwd") if plain_text(k)]
        if "mesh" in (attr(group, "kwd-group-type") or "").lower():
            mesh += terms
        else:
            keywords += terms
    abstract_sections: list[Section] = []
    for abstract in children(meta, "abstract") if meta is not None else []:
        if (attr(abstract, "abstract-type") or "") in ("graphical", "teaser", "toc"):
            continue
        abstract_sections += _sections_of(abstract)
    body = child(element, "body")
    back = child(element, "back")
    back_sections = []
    if back is not None:
        for node in back:
            if local(node.tag) in ("sec", "ack", "app-group", "notes", "glossary"):
                back_sections += _sections_of(node) if local(node.tag) != "sec" else [_section(node)]
    return Article(
        pmcid=pmcid,
        pmid=ids.get("pmid") or None,
        doi=ids.get("doi") or None,
        article_type=(attr(element, "article-type") or "").strip().lower(),
        title=plain_text(next(descendants(meta, "article-title"), None)) if meta is not None else "",
        journal=journal,
        subjects=[plain_text(s) for s in descendants(meta, "subject")] if meta is not None else [],
        keywords=keywords,
        mesh_terms=mesh,
        licence=licence_name(child(meta, "permissions")),
        abstract=abstract_sections,
        body=_sections_of(body) if body is not None else [],
        back=back_sections,
        figures=_figures(element),
    )


def _sections_of(container: ET.Element) -> list[Section]:
    """The sections directly in a container; loose paragraphs before them become an untitled section."""
    loose = Section()
    sections: list[Section] = []
    for node in container:
        tag = local(node.tag)
        if tag == "sec":
            sections.append(_section(node))
        elif tag in _BLOCKS:
            text = prose(node, loose.fig_refs)
            if text:
                loose.paragraphs.append(text)
    return ([loose] if loose.paragraphs else []) + sections


def _section(element: ET.Element) -> Section:
    section = Section(title=plain_text(child(element, "title")), sec_type=(attr(element, "sec-type") or "").lower())
    for node in element:
        tag = local(node.tag)
        if tag == "sec":
            section.sections.append(_section(node))
        elif tag in _BLOCKS:
            text = prose(node, section.fig_refs)
            if text:
                section.paragraphs.append(text)
    return section


def _figures(article: ET.Element) -> list[Figure]:
    """Every `<fig>` of the article wherever it sits, in document order; a `<fig-group>` caption is
    prefixed to the captions of its figures."""
    group_caption: dict[int, str] = {}
    for group in descendants(article, "fig-group"):
        text = _caption(group)
        for fig in children(group, "fig"):
            group_caption[id(fig)] = text
    figures = []
    for position, fig in enumerate(descendants(article, "fig")):
        caption = " ".join(t for t in (group_caption.get(id(fig), ""), _caption(fig)) if t)
        figures.append(
            Figure(
                fig_id=attr(fig, "id") or f"fig-{position + 1}",
                label=plain_text(child(fig, "label")),
                caption=caption,
                hrefs=_graphic_hrefs(fig),
                position=position,
            )
        )
    return figures


def _caption(fig: ET.Element) -> str:
    caption = child(fig, "caption")
    if caption is None:
        return ""
    parts = [prose(node, panels=True) for node in caption if local(node.tag) in ("title", "p")]
    text = " ".join(part for part in parts if part)
    return clean(text)


def _graphic_hrefs(fig: ET.Element) -> list[str]:
    """The graphic files of a figure; of alternatives, the non-thumbnail one."""
    hrefs = []
    for graphic in descendants(fig, "graphic"):
        use = " ".join(filter(None, (attr(graphic, "specific-use"), attr(graphic, "content-type"))))
        href = attr(graphic, "href")
        if href and not _THUMBNAIL.search(use):
            hrefs.append(href.strip())
    return list(dict.fromkeys(hrefs))
