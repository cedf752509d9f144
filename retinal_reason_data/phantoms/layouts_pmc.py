"""Phantom case-report collections in the real layouts: PMC Open Access articles (JATS in every wrapper and
namespace form real files use), MultiCaRe (parquet + CSV + image folders) and PMC-Patients (JSON).

The case texts are written for these phantoms from templates (no real article or patient is copied); the
figures are phantom images from `phantoms.images`, compound figures drawn as montages of their panels.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from retinal_reason_data.phantoms.images import ffa_frame, fundus_photo, oct_bscan

PANEL_SIDE = 224
DOCTYPE_ARTICLE = (
    '<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.2 20190208//EN" '
    '"JATS-archivearticle1.dtd">'
)
DOCTYPE_SET = (
    '<!DOCTYPE pmc-articleset PUBLIC "-//NLM//DTD ARTICLE SET 2.0//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pmc/articleset/nlm-articleset-2.0.dtd">'
)
XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'
MML = 'xmlns:mml="http://www.w3.org/1998/Math/MathML"'
ALI = 'xmlns:ali="http://www.niso.org/schemas/ali/1.0/"'
JATS_NS = "https://jats.nlm.nih.gov/ns/archiving/1.3/"
JOURNALS = [
    "Case Reports in Ophthalmology",
    "BMC Ophthalmology",
    "American Journal of Ophthalmology Case Reports",
    "Retinal Cases and Brief Reports",
]


@dataclass(frozen=True)
class PanelSpec:
    modality: str  # CFP, OCT, FFA, ICGA, FAF, OCTA, VF, US (ultrasound: not retinal imaging)
    text: str


@dataclass(frozen=True)
class Template:
    diagnosis: str
    abbreviation: str | None
    code: str | None  # what the phantom images draw
    complaint: str
    hpi: str
    past: str
    exam: tuple[str, ...]
    imaging: tuple[str, ...]  # one sentence per figure, citing it
    treatment: str
    figures: tuple[tuple[PanelSpec, ...], ...]
    caption_leak: bool = False  # the first caption names the diagnosis (the item builder must remove it)


TEMPLATES: tuple[Template, ...] = (
    Template(
        "central retinal artery occlusion",
        "CRAO",
        "vasc.crao",
        "sudden painless loss of vision in the {eye} eye two hours before presentation",
        "The loss was noticed on waking, without pain, redness or flashes.",
        "The medical history included hypertension and atrial fibrillation; warfarin had been stopped a week earlier.",
        (
            "On examination, best-corrected visual acuity was counting fingers in the {eye} eye and 20/20 in the "
            "fellow eye.",
            "A relative afferent pupillary defect was present.",
        ),
        (
            "Colour fundus photography showed retinal whitening with a cherry-red spot (Figure 1A).",
            "Fluorescein angiography showed delayed arterial filling (Figure 2).",
        ),
        "Ocular massage and anterior chamber paracentesis were performed.",
        (
            (
                PanelSpec(
                    "CFP", "Colour fundus photograph of the {eye} eye showing retinal whitening and a cherry-red spot"
                ),
                PanelSpec("OCT", "OCT showing hyperreflectivity and thickening of the inner retina"),
            ),
            (PanelSpec("FFA", "Fluorescein angiography at 40 seconds showing delayed arterial filling"),),
        ),
        caption_leak=True,
    ),
    Template(
        "central serous chorioretinopathy",
        "CSC",
        "csc",
        "distorted and dim central vision in the {eye} eye for three weeks",
        "The symptoms began during a period of work stress.",
        "A short course of oral corticosteroids had been taken for a skin rash one month earlier.",
        ("Best-corrected visual acuity was 20/40 in the {eye} eye.", "The anterior segment was unremarkable."),
        (
            "Fundus photography showed a round serous elevation at the macula (Figure 1).",
            "OCT showed subretinal fluid (Figure 2A) and angiography showed a leak (Figure 2B).",
        ),
        "The corticosteroid was stopped and the fluid was observed.",
        (
            (PanelSpec("CFP", "Fundus photograph with a round serous elevation at the macula"),),
            (
                PanelSpec("OCT", "SD-OCT showing subretinal fluid under the fovea"),
                PanelSpec("FFA", "Fluorescein angiography showing an expansile smokestack leak"),
            ),
        ),
    ),
    Template(
        "Vogt-Koyanagi-Harada disease",
        "VKH",
        "vkh",
        "bilateral blurred vision with headache and tinnitus for five days",
        "A flu-like illness had preceded the visual symptoms by two weeks.",
        "There was no previous ocular history.",
        ("Visual acuity was 20/200 in both eyes.", "Slit-lamp examination showed cells in the anterior chamber."),
        (
            "Fundus photographs showed multiple serous detachments in both eyes (Figure 1).",
            "OCT showed septate subretinal fluid and angiography showed dark dots (Figure 2).",
        ),
        "High-dose systemic corticosteroids were started.",
        (
            (
                PanelSpec(
                    "CFP", "Fundus photographs of the right (A) and left (B) eyes showing multiple serous detachments"
                ),
            ),
            (
                PanelSpec("OCT", "OCT showing septate subretinal fluid"),
                PanelSpec("ICGA", "Indocyanine green angiography showing hypofluorescent dark dots"),
            ),
        ),
        caption_leak=True,
    ),
    Template(
        "retinitis pigmentosa",
        "RP",
        "rp",
        "night blindness and a narrowing field of vision over several years",
        "The difficulty began in dim light and slowly worsened.",
        "The father had had similar symptoms.",
        ("Visual acuity was 20/30 in both eyes.",),
        (
            "Widefield imaging showed bone-spicule pigment (Figure 1A) and a ring on autofluorescence (Figure 1B).",
            "Perimetry showed marked constriction (Figure 2) and OCT showed outer retinal loss (Figure 3).",
        ),
        "Genetic counselling was offered.",
        (
            (
                PanelSpec(
                    "CFP", "Ultra-widefield fundus photograph showing bone-spicule pigment and attenuated vessels"
                ),
                PanelSpec("FAF", "Fundus autofluorescence showing a hyperautofluorescent parafoveal ring"),
            ),
            (PanelSpec("VF", "Humphrey visual field 30-2 showing marked concentric constriction"),),
            (PanelSpec("OCT", "OCT showing loss of the outer retinal layers outside the fovea"),),
        ),
    ),
    Template(
        "choroidal melanoma",
        None,
        "tumour.choroidal_melanoma",
        "a shadow in the upper field of the {eye} eye for two months",
        "The shadow had slowly grown larger.",
        "There was no relevant medical history.",
        ("Visual acuity was 20/25 in the {eye} eye.",),
        (
            "Fundus photography showed a pigmented mass (Figure 1) and ultrasonography showed low internal "
            "reflectivity (Figure 2).",
            "OCT showed subretinal fluid over the lesion (Figure 3).",
        ),
        "The patient was referred for plaque brachytherapy.",
        (
            (PanelSpec("CFP", "Fundus photograph of a grey-brown dome-shaped mass with orange pigment"),),
            (PanelSpec("US", "B-scan ultrasonography showing a dome-shaped mass with low internal reflectivity"),),
            (PanelSpec("OCT", "OCT over the lesion showing overlying subretinal fluid"),),
        ),
    ),
    Template(
        "full-thickness macular hole",
        "FTMH",
        "mh.full_thickness",
        "a dark spot in the centre of vision of the {eye} eye for one month",
        "Straight lines had looked bent before the spot appeared.",
        "There was no history of trauma or high myopia.",
        ("Visual acuity was 20/200 in the {eye} eye.", "The Watzke-Allen sign was positive."),
        ("Fundus photography showed a round red lesion at the fovea (Figure 1A) and OCT a defect (Figure 1B).",),
        "Pars plana vitrectomy with internal limiting membrane peeling was performed.",
        (
            (
                PanelSpec("CFP", "Fundus photograph with a small round red lesion at the fovea"),
                PanelSpec("OCT", "OCT showing a defect through all layers of the neurosensory retina at the fovea"),
            ),
        ),
    ),
    Template(
        "acute macular neuroretinopathy",
        "AMN",
        None,
        "paracentral scotomas in the {eye} eye for four days",
        "The scotomas appeared after a febrile illness.",
        "Oral contraceptives had been taken for two years.",
        ("Visual acuity was 20/25 in the {eye} eye.", "Pupils and anterior segments were normal."),
        ("Multimodal imaging showed parafoveal lesions (Figure 1).",),
        "The patient was observed without treatment.",
        (
            (
                PanelSpec("CFP", "Fundus photograph with subtle reddish-brown wedge-shaped parafoveal lesions"),
                PanelSpec("OCT", "OCT showing hyperreflectivity of the outer plexiform and outer nuclear layers"),
                PanelSpec("OCTA", "OCT angiography of the deep capillary plexus showing reduced flow"),
            ),
        ),
        caption_leak=True,
    ),
    Template(
        "polypoidal choroidal vasculopathy",
        "PCV",
        "pcv",
        "sudden blurred vision in the {eye} eye for one week",
        "There was no pain.",
        "The patient was a smoker with hypertension.",
        ("Visual acuity was 20/100 in the {eye} eye.",),
        (
            "Fundus photography showed an orange-red nodule (Figure 1) and indocyanine green angiography showed "
            "polypoidal lesions (Figure 2).",
        ),
        "Photodynamic therapy combined with intravitreal injections was given.",
        (
            (PanelSpec("CFP", "Fundus photograph with an orange-red subretinal nodule and haemorrhage"),),
            (
                PanelSpec("ICGA", "ICGA showing polypoidal lesions at the end of a branching vascular network"),
                PanelSpec("OCT", "OCT showing a sharply peaked pigment epithelial detachment"),
            ),
        ),
    ),
)
_DX_SENTENCES = (
    "A diagnosis of {dx}{abbr} was made.",
    "The patient was diagnosed with {dx}{abbr}.",
    "The final diagnosis was {dx}{abbr}.",
)


# --- images ------------------------------------------------------------------------------------------
def panel_image(modality: str, code: str | None, patient_seed: int, eye: str, number: int) -> Image.Image:
    """One phantom panel of a modality (ICGA, FAF, OCTA, visual field and ultrasound drawn simply)."""
    codes = [code] if code else []
    side = PANEL_SIDE
    if modality == "CFP":
        return fundus_photo(patient_seed, eye, codes, image_seed=number, size=side)
    if modality == "OCT":
        oct_codes = [c for c in codes if c in ("csc", "mh.full_thickness")] or (["oct.srf"] if code else [])
        return oct_bscan(patient_seed, eye, oct_codes, image_seed=number, size=(side, side * 3 // 4)).convert("RGB")
    if modality == "FFA":
        return ffa_frame(patient_seed, eye, codes, image_seed=number, size=side, phase=0.6).convert("RGB")
    if modality == "ICGA":
        frame = ffa_frame(patient_seed, eye, codes, image_seed=number, size=side, phase=0.95)
        return frame.point(lambda v: int(v * 0.7)).convert("RGB")
    if modality == "FAF":
        return ImageOps.grayscale(fundus_photo(patient_seed, eye, codes, image_seed=number, size=side)).convert("RGB")
    if modality == "OCTA":
        frame = ffa_frame(patient_seed, eye, codes, image_seed=number, size=side * 2, phase=0.3)
        return frame.crop((side // 2, side // 2, side * 3 // 2, side * 3 // 2)).convert("RGB")
    rng = np.random.default_rng([patient_seed, number])
    if modality == "VF":
        image = Image.new("RGB", (side, side), "white")
        draw = ImageDraw.Draw(image)
        draw.line((side // 2, 10, side // 2, side - 10), fill="black")
        draw.line((10, side // 2, side - 10, side // 2), fill="black")
        for _ in range(60):
            x, y = (int(v) for v in rng.integers(20, side - 20, 2))
            shade = 0 if np.hypot(x - side / 2, y - side / 2) > side / 5 else 200
            draw.rectangle((x, y, x + 5, y + 5), fill=(shade, shade, shade))
        return image
    noise = (rng.random((side, side)) * 120).astype("uint8")
    image = Image.fromarray(noise, "L").convert("RGB")
    ImageDraw.Draw(image).pieslice((0, -side // 2, side, side), 60, 120, outline="white")
    return image


def montage(panels: list[Image.Image]) -> Image.Image:
    """Panels side by side on black, as compound figures are published."""
    height = max(panel.height for panel in panels)
    image = Image.new("RGB", (sum(panel.width for panel in panels) + 8 * (len(panels) - 1), height), "black")
    x = 0
    for panel in panels:
        image.paste(panel, (x, 0))
        x += panel.width + 8
    return image


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _gif_thumbnail(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    thumb = image.copy()
    thumb.thumbnail((64, 64))
    thumb.convert("P").save(buffer, format="GIF")
    return buffer.getvalue()


# --- one phantom article -----------------------------------------------------------------------------
@dataclass
class PhantomCase:
    template: Template
    age: int
    woman: bool
    eye: str
    patient_seed: int
    dx_style: int

    @property
    def noun(self) -> str:
        return "woman" if self.woman else "man"

    def fill(self, text: str) -> str:
        return text.format(eye=self.eye)

    def sentences(self) -> dict[str, list[str]]:
        t = self.template
        abbr = f" ({t.abbreviation})" if t.abbreviation else ""
        dx = _DX_SENTENCES[self.dx_style % len(_DX_SENTENCES)].format(dx=t.diagnosis, abbr=abbr)
        # as typeset: one article in three writes the age with U+2010 hyphens and a non-breaking space, and one
        # in three tells of an earlier misdiagnosis (never the answer)
        age = f"{self.age}\u2010year\u2010old\u00a0" if self.dx_style == 1 else f"{self.age}-year-old "
        misdiagnosis = "The symptoms had initially been diagnosed as conjunctivitis elsewhere."
        earlier = [misdiagnosis] if self.dx_style == 2 else []
        return {
            "presentation": [
                f"A {age}{self.noun} presented with {self.fill(t.complaint)}.",
                t.hpi,
                *earlier,
                t.past,
            ],
            "exam": [self.fill(s) for s in t.exam],
            "imaging": list(t.imaging),
            "outcome": [dx, t.treatment],
        }

    def captions(self) -> list[list[str]]:
        t = self.template
        captions = []
        for index, figure in enumerate(t.figures):
            texts = [self.fill(panel.text) for panel in figure]
            if index == 0 and t.caption_leak:
                name = t.abbreviation or t.diagnosis
                texts[-1] += f". These findings are typical of {name}"
            captions.append(texts)
        return captions

    def figure_images(self) -> list[Image.Image]:
        images = []
        for number, figure in enumerate(self.template.figures, start=1):
            panels = [
                panel_image(p.modality, self.template.code, self.patient_seed, self.eye, number * 10 + i)
                for i, p in enumerate(figure)
            ]
            images.append(panels[0] if len(panels) == 1 else montage(panels))
        return images


def phantom_case(index: int, seed: int) -> PhantomCase:
    rng = np.random.default_rng([seed, index])
    return PhantomCase(
        template=TEMPLATES[index % len(TEMPLATES)],
        age=int(rng.integers(22, 84)),
        woman=bool(rng.random() < 0.5),
        eye="right" if rng.random() < 0.5 else "left",
        patient_seed=int(rng.integers(1 << 31)),
        dx_style=int(rng.integers(0, 3)),
    )


def _caption_xml(texts: list[str], style: str) -> str:
    if len(texts) == 1:
        return f"<caption><p>{escape(texts[0])}.</p></caption>"
    letters = "ABCDEFGH"
    if style == "bold":
        body = " ".join(f"<bold>{letters[i].lower()}</bold> {escape(text)}" for i, text in enumerate(texts))
        return f"<caption><title>Multimodal imaging.</title><p>{body}.</p></caption>"
    body = " ".join(f"({letters[i]}) {escape(text)}." for i, text in enumerate(texts))
    return f"<caption><p>{body}</p></caption>"


def _fig_xml(fig_id: str, label: str, caption: str, href: str, graphic: str) -> str:
    if graphic == "alternatives":
        g = (
            f'<alternatives><graphic xlink:href="{href}.jpg"/>'
            f'<graphic specific-use="thumbnail" xlink:href="{href}.gif"/></alternatives>'
        )
    elif graphic == "xlink-on-element":
        g = f'<graphic xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="{href}"/>'
    else:
        g = f'<graphic xlink:href="{href}"/>'
    return f'<fig id="{fig_id}" position="float"><label>{label}</label>{caption}{g}</fig>'


@dataclass(frozen=True)
class Form:
    """How one phantom article is written (wrapper, namespace, ids, where figures sit, ...)."""

    wrapper: str  # bare | set | oai | articles
    pmcid_type: str  # pmc | pmcid | pmc-uid | pmcid-ver
    pmcid_prefix: bool
    licence: str  # href | ali | prose
    article_type: str
    case_title: str
    case_sec_type: bool
    figures_at: str  # p | sec | floats
    graphic: str  # plain | alternatives | xlink-on-element
    caption_style: str  # paren | bold
    label: str  # "Figure {n}" ...
    extension_in_href: bool
    entities: bool
    formula_and_table: bool
    structured_abstract: bool


FORMS = (
    Form("bare", "pmc", False, "href", "case-report", "Case presentation", True, "p", "plain", "paren",
         "Figure {n}", False, False, False, False),
    Form("set", "pmcid", True, "ali", "case-report", "Case Report", False, "sec", "plain", "bold",
         "Fig. {n}", False, True, False, False),
    Form("oai", "pmc-uid", False, "prose", "research-article", "2. Case presentation", False, "p",
         "xlink-on-element", "paren", "Figure {n}.", False, False, True, False),
    Form("bare", "pmcid-ver", True, "ali", "case-study", "Case History", False, "floats", "alternatives", "paren",
         "FIGURE {n}", False, True, True, True),
    Form("bare", "pmc", False, "href", "case-report", "Case presentation", True, "floats", "plain", "paren",
         "Figure {n}", True, False, False, True),
)  # fmt: skip


def article_xml(
    pmcid_digits: str,
    cases: list[PhantomCase],
    form: Form,
    journal: str,
    href_stem: str,
    with_case_section: bool = True,
) -> str:
    """One JATS article for `cases` (two cases give 'Case 1' and 'Case 2' subsections)."""
    first = cases[0]
    t = first.template
    pmc_value = f"PMC{pmcid_digits}" if form.pmcid_prefix else pmcid_digits
    if form.pmcid_type == "pmcid-ver":
        pmc_value = f"PMC{pmcid_digits}.1"
    title = f"{t.diagnosis[0].upper() + t.diagnosis[1:]} presenting with {first.fill(t.complaint).split(' for ')[0]}"
    title += ": a case report"
    licence = {
        "href": '<license license-type="open-access" xlink:href="https://creativecommons.org/licenses/by/4.0/">'
        "<license-p>This article is distributed under the terms of the Creative Commons Attribution 4.0 "
        "International License.</license-p></license>",
        "ali": "<license><ali:license_ref>http://creativecommons.org/licenses/by-nc/4.0/</ali:license_ref>"
        "<license-p>Open access under CC BY-NC.</license-p></license>",
        "prose": "<license><license-p>This is an open access article; it may be reused for non-commercial "
        "research with attribution.</license-p></license>",
    }[form.licence]
    subject = "Clinical Case Report" if form.article_type == "research-article" else "Case Report"
    abstract = (
        "<abstract><sec><title>Background</title><p>We describe an unusual presentation.</p></sec>"
        "<sec><title>Case presentation</title><p>"
        f"A {first.age}-year-old {first.noun} presented with {escape(first.fill(t.complaint))}. "
        f"Multimodal imaging led to the diagnosis of {escape(t.diagnosis)}.</p></sec>"
        "<sec><title>Conclusions</title><p>Multimodal imaging helps.</p></sec></abstract>"
        if form.structured_abstract
        else f"<abstract><p>We report a case of {escape(t.diagnosis)} with multimodal imaging.</p></abstract>"
    )
    figures: list[str] = []
    fig_number = 0
    case_blocks: list[str] = []
    for case_index, case in enumerate(cases):
        parts = case.sentences()
        fig_ids = []
        for texts in case.captions():
            fig_number += 1
            fig_ids.append(f"F{fig_number}")
            href = f"{href_stem}-g{fig_number:03d}" + (".jpg" if form.extension_in_href else "")
            figures.append(
                _fig_xml(
                    f"F{fig_number}",
                    form.label.format(n=fig_number),
                    _caption_xml(texts, form.caption_style),
                    href,
                    form.graphic,
                )
            )
        offset = fig_number - len(fig_ids)

        def cite(sentence: str, offset: int = offset, fig_ids: list[str] = fig_ids) -> str:
            out = escape(sentence)
            for n in range(len(fig_ids), 0, -1):
                rid = f"F{offset + n}"
                out = out.replace(f"(Figure {n}", f'(<xref ref-type="fig" rid="{rid}">Figure {offset + n}</xref>')
            return out.replace("</xref>A)", "A</xref>)").replace("</xref>B)", "B</xref>)")

        exam = [escape(s) for s in parts["exam"]]
        if form.entities:
            exam = [s.replace("20/", "20&#x2009;/&#x2009;", 1).replace(" was ", "&nbsp;was ", 1) for s in exam]
            exam.append("Intraocular pressure was 15&ndash;16&nbsp;mmHg in both eyes at 20&deg;C room temperature.")
        if form.formula_and_table:
            exam.append(
                "The axial length was <inline-formula><mml:math><mml:mn>23.4</mml:mn><mml:mo>&#x2009;</mml:mo>"
                "<mml:mi>mm</mml:mi></mml:math></inline-formula> in both eyes."
            )
        presentation = (
            "<p>" + " ".join(escape(s) for s in parts["presentation"]) + ' <xref ref-type="bibr" rid="B1">1</xref></p>'
        )
        exam_p = "<p>" + " ".join(exam) + "</p>"
        table = (
            '<table-wrap id="T1"><label>Table 1</label><caption><p>Laboratory results.</p></caption>'
            "<table><tr><td>ESR</td><td>12 mm/h</td></tr></table></table-wrap>"
            if form.formula_and_table
            else ""
        )
        imaging = "<p>" + " ".join(cite(s) for s in parts["imaging"])
        case_figs = figures[-len(fig_ids) :]
        if form.figures_at == "p":
            imaging += " ".join(case_figs)
        imaging += "</p>" + (" ".join(case_figs) if form.figures_at == "sec" else "")
        outcome = "<p>" + " ".join(escape(s) for s in parts["outcome"]) + "</p>"
        block = presentation + exam_p + table + imaging + outcome
        if len(cases) > 1:
            block = f"<sec><title>2.{case_index + 1}. Case {case_index + 1}</title>{block}</sec>"
        case_blocks.append(block)
    sec_type = ' sec-type="cases"' if form.case_sec_type else ""
    case_section = f"<sec{sec_type}><title>{form.case_title}</title>{''.join(case_blocks)}</sec>"
    if not with_case_section:
        case_section = "<sec><title>Clinical findings and literature</title><p>Retinal imaging was obtained.</p></sec>"
    abbr = f" ({t.abbreviation})" if t.abbreviation else ""
    discussion = (
        f"<sec><title>Discussion</title><p>{escape(t.diagnosis.capitalize())}{abbr} is an important cause of visual "
        "loss; multimodal imaging supports the diagnosis.</p></sec>"
    )
    floats = f"<floats-group>{''.join(figures)}</floats-group>" if form.figures_at == "floats" else ""
    xlink = "" if form.graphic == "xlink-on-element" else f" {XLINK}"
    ns = f' xmlns="{JATS_NS}"' if form.wrapper == "oai" else ""
    keywords = "".join(f"<kwd>{escape(k)}</kwd>" for k in (t.diagnosis, "case report", "multimodal imaging"))
    return (
        f'<article{ns}{xlink} {MML} {ALI} article-type="{form.article_type}" xml:lang="en">'
        f'<front><journal-meta><journal-id journal-id-type="nlm-ta">{escape(journal)}</journal-id>'
        f"<journal-title-group><journal-title>{escape(journal)}</journal-title></journal-title-group></journal-meta>"
        f'<article-meta><article-id pub-id-type="{form.pmcid_type}">{pmc_value}</article-id>'
        f'<article-id pub-id-type="doi">10.0000/phantom.{pmcid_digits}</article-id>'
        f'<article-categories><subj-group subj-group-type="heading"><subject>{subject}</subject></subj-group>'
        "</article-categories>"
        f"<title-group><article-title>{escape(title)}</article-title></title-group>"
        f"<permissions>{licence}</permissions>{abstract}"
        f'<kwd-group kwd-group-type="author">{keywords}</kwd-group></article-meta></front>'
        "<body><sec><title>1. Introduction</title><p>Case reports teach by example.</p></sec>"
        f"{case_section}{discussion}</body>"
        '<back><ref-list><ref id="B1"><mixed-citation>Phantom reference.</mixed-citation></ref></ref-list></back>'
        f"{floats}</article>"
    )


def wrap(article: str, wrapper: str) -> str:
    """An article inside the wrapper real downloads use."""
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    if wrapper == "set":
        return f"{declaration}{DOCTYPE_SET}\n<pmc-articleset>{article}</pmc-articleset>\n"
    if wrapper == "oai":
        return (
            f'{declaration}<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><GetRecord><record><header>'
            "<identifier>oai:pubmedcentral.nih.gov:phantom</identifier></header><metadata>"
            f"{article}</metadata></record></GetRecord></OAI-PMH>\n"
        )
    if wrapper == "articles":
        return f"{declaration}<articles>{article}</articles>\n"
    return f"{declaration}{DOCTYPE_ARTICLE}\n{article}\n"


def _figure_files(cases: list[PhantomCase], stem: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    number = 0
    for case in cases:
        for image in case.figure_images():
            number += 1
            files[f"{stem}-g{number:03d}.jpg"] = _jpeg(image)
            files[f"{stem}-g{number:03d}.gif"] = _gif_thumbnail(image)
    return files


def _write_folder(folder: Path, name: str, xml: str, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(xml, encoding="utf-8")
    for file_name, data in files.items():
        (folder / file_name).write_bytes(data)


def _write_package(path: Path, pmcid: str, name: str, xml: str, files: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for file_name, data in [(name, xml.encode("utf-8")), *sorted(files.items())]:
            info = tarfile.TarInfo(f"{pmcid}/{file_name}")
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))


def write_pmc_oa(root: Path, cases: int, seed: int) -> None:
    """PMC OA articles in their real forms: a folder per article (bare `<article>` with a DOCTYPE), `.tar.gz`
    packages (`<pmc-articleset>`), an OAI-PMH response with JATS in a default namespace and xlink declared per
    element, figures in `<p>`, under `<sec>` or in `<floats-group>`, hrefs without extensions, thumbnails in
    `<alternatives>`, inline formulas and tables, HTML entities, and a two-case article.

    Quirks when cases >= 8: a malformed article, one whose figure file is missing, a case report without a
    case section, a non-ophthalmic case report, an ophthalmic research article (not a case report), a Europe
    PMC `<articles>` bundle of two articles with figures in folders named after their PMCIDs, stray files.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = 9_100_000 + int(rng.integers(0, 800_000))
    index = 0
    number = 0
    while index < cases:
        form = FORMS[number % len(FORMS)]
        two = number % 7 == 4 and index + 1 < cases
        group = [phantom_case(index + k, seed) for k in range(2 if two else 1)]
        digits = str(base + number)
        pmcid = f"PMC{digits}"
        stem = f"crop-{digits[-4:]}"
        journal = JOURNALS[number % len(JOURNALS)]
        xml = wrap(article_xml(digits, group, form, journal, stem), form.wrapper)
        files = _figure_files(group, stem)
        if form.extension_in_href:
            files = {k.replace(".jpg", ".JPG"): v for k, v in files.items()}  # labels and disks disagree on case
        if form.wrapper == "set":
            _write_package(root / f"{pmcid}.tar.gz", pmcid, f"{stem}.nxml", xml, files)
        else:
            _write_folder(root / pmcid, f"{stem}.nxml" if form.wrapper != "oai" else f"{pmcid}.xml", xml, files)
        index += len(group)
        number += 1
    if cases >= 8:
        _write_quirks(root, base + 900, seed)


def _write_quirks(root: Path, base: int, seed: int) -> None:
    form = FORMS[0]
    case = phantom_case(1, seed + 1)
    good = article_xml(str(base), [case], form, JOURNALS[0], "q-0001")
    (root / f"PMC{base}").mkdir(parents=True, exist_ok=True)
    (root / f"PMC{base}" / "broken.nxml").write_text(wrap(good, "bare")[: len(good) // 2], encoding="utf-8")
    missing = _figure_files([case], "q-0002")
    missing.pop("q-0002-g002.jpg")
    _write_folder(root / f"PMC{base + 1}", "q-0002.nxml", wrap(article_xml(str(base + 1), [case], form, JOURNALS[1],
                  "q-0002"), "bare"), missing)  # fmt: skip
    no_case = article_xml(str(base + 2), [case], form, JOURNALS[2], "q-0003", with_case_section=False)
    _write_folder(root / f"PMC{base + 2}", "q-0003.nxml", wrap(no_case, "bare"), _figure_files([case], "q-0003"))
    cardio = article_xml(str(base + 3), [case], form, "Journal of Cardiology Cases", "q-0004")
    cardio = cardio.replace(case.template.diagnosis, "coronary vasospasm")
    cardio = cardio.replace(case.template.diagnosis.capitalize(), "Coronary vasospasm")
    for word in ("retinal ", "fundus ", "Fundus ", "OCT ", "visual ", "eye", "vision", "macula", "angiography"):
        cardio = cardio.replace(word, "")
    _write_folder(root / f"PMC{base + 3}", "q-0004.nxml", wrap(cardio, "bare"), _figure_files([case], "q-0004"))
    research = (
        article_xml(str(base + 4), [case], form, JOURNALS[1], "q-0005")
        .replace('article-type="case-report"', 'article-type="research-article"')
        .replace("<subject>Case Report</subject>", "<subject>Original Article</subject>")
    )
    _write_folder(root / f"PMC{base + 4}", "q-0005.nxml", wrap(research, "bare"), _figure_files([case], "q-0005"))
    bundle_cases = [phantom_case(2, seed + 2), phantom_case(5, seed + 2)]
    articles = []
    for offset, bundle_case in enumerate(bundle_cases):
        digits = str(base + 10 + offset)
        stem = f"eu-{digits[-4:]}"
        articles.append(article_xml(digits, [bundle_case], FORMS[4], JOURNALS[3], stem))
        _write_folder(root / "europepmc" / f"PMC{digits}", ".keep", "", _figure_files([bundle_case], stem))
    (root / "europepmc" / "bundle.xml").write_text(wrap("".join(articles), "articles"), encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "__MACOSX").mkdir(exist_ok=True)
    (root / "__MACOSX" / "._q-0001.nxml").write_bytes(b"\x00\x05\x16\x07")


# --- MultiCaRe ----------------------------------------------------------------------------------------
MULTICARE_LABELS = {
    "CFP": ("fundus_photograph", ["ophthalmic_imaging", "fundus_photograph"]),
    "OCT": ("oct", ["ophthalmic_imaging", "oct"]),
    "FFA": ("ophthalmic_angiography", ["ophthalmic_imaging", "ophthalmic_angiography", "fluorescein_angiography"]),
    "ICGA": ("ophthalmic_angiography", ["ophthalmic_imaging", "ophthalmic_angiography", "icga"]),
    "FAF": ("autofluorescence", ["ophthalmic_imaging", "autofluorescence"]),
    "OCTA": ("oct", ["ophthalmic_imaging", "oct"]),
    "VF": ("chart", ["chart"]),
    "US": ("ultrasound", ["radiology", "ultrasound", "b_scan"]),
}


def case_text(case: PhantomCase) -> str:
    parts = case.sentences()
    return " ".join([*parts["presentation"], *parts["exam"], *parts["imaging"], *parts["outcome"]])


def write_multicare(root: Path, cases: int, seed: int) -> None:
    """MultiCaRe: metadata.parquet (one `article_metadata` struct per row), cases.parquet (per article a
    list of cases), captions_and_labels.csv (one row per sub-image: list literals, a BOM, CRLF, an unnamed
    index column, a header with a trailing space) and images in PMC1/PMC12/{file}.

    Quirks when cases >= 8: a CT case (not ophthalmic), a row whose image is missing, an upper-case
    extension on disk, a case text that never states its diagnosis, a Thumbs.db.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = 10_200_000 + int(rng.integers(0, 700_000))
    metadata, case_rows, image_rows = [], [], []
    for index in range(cases):
        case = phantom_case(index, seed)
        pmcid = f"PMC{base + index}"
        case_id = f"{pmcid}_01"
        t = case.template
        text = case_text(case)
        if cases >= 8 and index == 6:
            text = " ".join(s for s in text.split(". ") if "diagnos" not in s)  # quirk: no diagnosis stated
        ophthalmic = not (cases >= 8 and index == 2)
        title = f"{t.diagnosis.capitalize()}: a case report" if ophthalmic else "Aortic dissection: a case report"
        metadata.append(
            {
                "pmcid": pmcid,
                "pmid": str(30_000_000 + index),
                "doi": f"10.0000/phantom.mc.{index}",
                "title": title,
                "year": 2020 + index % 4,
                "journal": JOURNALS[index % len(JOURNALS)] if ophthalmic else "Journal of Vascular Surgery Cases",
                "license": "CC BY 4.0",
                "keywords": [t.diagnosis, "case report"] if ophthalmic else ["aorta"],
                "mesh_terms": ["Humans", "Eye Diseases"] if ophthalmic else ["Humans", "Aorta"],
            }
        )
        case_rows.append(
            {
                "pmcid": pmcid,
                "cases": [
                    {
                        "case_id": case_id,
                        "case_text": text if ophthalmic else "A 70-year-old man presented with chest pain.",
                        "age": case.age,
                        "gender": "Female" if case.woman else "Male",
                    }
                ],
            }
        )
        folder = root / pmcid[:4] / pmcid[:5]
        folder.mkdir(parents=True, exist_ok=True)
        for fig_number, (figure, texts) in enumerate(zip(t.figures, case.captions(), strict=True), start=1):
            for panel_index, (panel, caption) in enumerate(zip(figure, texts, strict=True)):
                letter = "abcdefgh"[panel_index] if len(figure) > 1 else "undivided"
                name = f"{pmcid}_g{fig_number:03d}_{letter}.jpg"
                modality = panel.modality if ophthalmic else "US"
                image_type, labels = MULTICARE_LABELS[modality]
                if not ophthalmic:
                    image_type, labels = "ct", ["radiology", "ct", "thorax"]
                quirk_missing = cases >= 8 and index == 4 and fig_number == 1
                quirk_upper = cases >= 8 and index == 5
                if not quirk_missing:
                    image = panel_image(modality, t.code, case.patient_seed, case.eye, fig_number * 10 + panel_index)
                    disk_name = name[:-4] + ".JPG" if quirk_upper else name
                    (folder / disk_name).write_bytes(_jpeg(image))
                image_rows.append(
                    {
                        "file_id": f"file_{len(image_rows):06d}",
                        "file": name,
                        "main_image": f"{pmcid}_g{fig_number:03d}.jpg",
                        "patient_id": case_id,
                        "license": "CC BY 4.0",
                        "file_size": 10000,
                        "caption": caption,
                        "case_substring": repr([f"Figure {fig_number}"]),
                        "image_type": "ophthalmic_imaging"
                        if ophthalmic and modality not in ("VF", "US")
                        else image_type,
                        "image_subtype": image_type,
                        "radiology_region": "",
                        "radiology_region_granular": "",
                        "radiology_view": "",
                        "ml_labels_for_supervised_classification": repr(labels),
                        "gt_labels_for_semisupervised_classification": repr(labels),
                    }
                )
    pq.write_table(pa.table({"article_metadata": metadata}), root / "metadata.parquet")
    pq.write_table(pa.Table.from_pylist(case_rows), root / "cases.parquet")
    columns = list(image_rows[0])
    header = ["", *[c + (" " if c == "caption" else "") for c in columns]]
    lines = [",".join(header)]
    for number, row in enumerate(image_rows):
        lines.append(",".join([str(number), *(_csv_cell(row[c]) for c in columns)]))
    (root / "captions_and_labels.csv").write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    if cases >= 8:
        (root / "Thumbs.db").write_bytes(b"\x00" * 32)


def _csv_cell(value: object) -> str:
    text = str(value)
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


# --- PMC-Patients -------------------------------------------------------------------------------------
def write_pmc_patients(root: Path, cases: int, seed: int) -> None:
    """PMC-Patients: PMC-Patients.json (patient notes: patient_uid, PMID, file_path, title, patient, age as
    [[value, unit]], gender M/F), and beside it a PMC OA folder `PMC_OA/` with the articles (folders and
    `.tar.gz` packages), which
    the adapter reads only when its `pmc_root` option points there.

    Quirks when cases >= 6: a non-ophthalmic patient, and a patient whose article is not in PMC_OA.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = 8_300_000 + int(rng.integers(0, 600_000))
    patients = []
    for index in range(cases):
        case = phantom_case(index, seed)
        digits = str(base + index)
        pmcid = f"PMC{digits}"
        t = case.template
        ophthalmic = not (cases >= 6 and index == 1)
        text = (
            case_text(case)
            if ophthalmic
            else "A 55-year-old man presented with abdominal pain. CT showed appendicitis."
        )
        patients.append(
            {
                "patient_id": index,
                "patient_uid": f"{30_000_000 + index}-1",
                "PMID": str(30_000_000 + index),
                "file_path": f"comm/PMC0{digits[:2]}xxxxxx/{pmcid}.xml",
                "title": f"{t.diagnosis.capitalize()}: a case report" if ophthalmic else "Appendicitis in an adult",
                "patient": text,
                "age": [[float(case.age), "year"]],
                "gender": "F" if case.woman else "M",
                "relevant_articles": {},
                "similar_patients": {},
            }
        )
        if ophthalmic and not (cases >= 6 and index == 3):
            stem = f"pp-{digits[-4:]}"
            xml = wrap(article_xml(digits, [case], FORMS[0], JOURNALS[index % len(JOURNALS)], stem), "bare")
            if index % 3 == 2:  # some articles as OA packages
                _write_package(
                    root / "PMC_OA" / f"{pmcid}.tar.gz", pmcid, f"{stem}.nxml", xml, _figure_files([case], stem)
                )
            else:
                _write_folder(root / "PMC_OA" / pmcid, f"{stem}.nxml", xml, _figure_files([case], stem))
    (root / "PMC-Patients.json").write_text(json.dumps(patients, indent=1), encoding="utf-8")
