"""Quality filters: ungradable photographs, questions that give their answer away, and bad teacher traces.

Each check returns the first reason (a short code counted in `rrd stats --json` under `dropped_by_filter`)
or None. Reasons:

- images: `ungradable_label` (the collection says so); the hard refusals `image_blank`, `image_no_field`,
  `image_too_dark`, `image_overexposed`; the quality gate's `image_blurred`,
  `image_hazy`, `image_uneven`, `image_colour_patchy` (named after the family of the measure that weighed most,
  see quality_gate.py);
- items: `answer_in_question` (an open question whose text states its answer);
- traces: the checks registered in trace_checks.py, in their order (`TRACE_REASONS`).

What each reason means, for the curation report, is declared beside it.
"""

from __future__ import annotations

from typing import NamedTuple

from retinal_reason_data.curation.quality_gate import load_gate
from retinal_reason_data.curation.trace_checks import TRACE_CHECKS, first_problem
from retinal_reason_data.recipe import FiltersSpec, ImageFilters
from retinal_reason_data.schema import ImageRef, Item, QuestionType
from retinal_reason_data.text import normalise_term

IMAGE_DESCRIPTIONS = {
    "ungradable_label": "the collection itself marks the photograph ungradable",
    "image_blank": "the picture has no contrast (blank or uniform)",
    "image_no_field": "too little of the frame is lit: no fundus field",
    "image_too_dark": "mean brightness of the field below filters.images.min_brightness",
    "image_overexposed": "mean brightness of the field above filters.images.max_brightness",
    "image_blurred": "the quality gate refused it, mostly for lack of fine detail (or below the legacy min_sharpness)",
    "image_hazy": "the quality gate refused it mostly for faint or missing vessels (haze, or blur that hides them)",
    "image_uneven": "the quality gate refused it mostly for uneven light: a shadowed patch or a dark centre",
    "image_colour_patchy": "the quality gate refused it mostly for blotchy colour that the green channel does not "
    "share (flare, a patchy haze, colour noise)",
}
IMAGE_REASONS = tuple(IMAGE_DESCRIPTIONS)
ITEM_DESCRIPTIONS = {"answer_in_question": "an open question whose text states its own answer"}
TRACE_REASONS = tuple(check.reason for check in TRACE_CHECKS)


class ImageRefusal(NamedTuple):
    """Why a photograph is refused: the reason code, the measure that decided (or weighed most) and its value."""

    reason: str
    measure: str
    value: float | None


def image_problem(image: ImageRef, gradable: bool | None, spec: ImageFilters) -> str | None:
    """Why this photograph cannot be graded (a reason code), or None; see `image_refusal`."""
    refusal = image_refusal(image, gradable, spec)
    return refusal.reason if refusal else None


def image_refusal(image: ImageRef, gradable: bool | None, spec: ImageFilters) -> ImageRefusal | None:
    """Why this photograph cannot be graded, or None. A collection's own label decides when it has one (and
    `trust_source_labels` is on); otherwise the hard refusals (blank, no field, too dark, overexposed, and the
    legacy `min_sharpness` when set) come first, then the quality gate fitted on graders' labels."""
    if not spec.enabled or image.modality not in spec.modalities:
        return None
    if spec.trust_source_labels and gradable is not None:
        return None if gradable else ImageRefusal("ungradable_label", "source_label", None)
    quality = image.quality
    if quality is None:
        return None
    if quality.contrast < spec.min_contrast:
        return ImageRefusal("image_blank", "contrast", quality.contrast)
    if quality.fov_fraction < spec.min_field_fraction:
        return ImageRefusal("image_no_field", "fov_fraction", quality.fov_fraction)
    if quality.brightness < spec.min_brightness:
        return ImageRefusal("image_too_dark", "brightness", quality.brightness)
    if quality.brightness > spec.max_brightness:
        return ImageRefusal("image_overexposed", "brightness", quality.brightness)
    if spec.min_sharpness > 0 and normalised_sharpness(image) < spec.min_sharpness:
        return ImageRefusal("image_blurred", "sharpness_normalised", round(normalised_sharpness(image), 4))
    if spec.gate:
        gate = load_gate(str(spec.gate_model) if spec.gate_model else None)
        verdict = gate.verdict(quality, spec.gate_threshold)
        if verdict is not None:
            reason, measure = verdict
            return ImageRefusal(reason, measure, getattr(quality, measure))
    return None


def normalised_sharpness(image: ImageRef) -> float:
    """Laplacian variance over squared contrast: blur lowers it, exposure and contrast do not."""
    quality = image.quality
    if quality is None or quality.contrast <= 0:
        return 0.0
    return quality.sharpness / quality.contrast**2


def item_problem(item: Item, spec: FiltersSpec) -> str | None:
    """Why this question should not be asked at all, or None."""
    if spec.answer_in_question and item.question_type == QuestionType.OPEN:
        question = f" {normalise_term(item.question)} "
        for name in (item.answer.text, *item.answer.aliases):
            term = normalise_term(name)
            if len(term) >= 4 and f" {term} " in question:
                return "answer_in_question"
    return None


# --- traces ---------------------------------------------------------------------------------------


def trace_problem(response: str, spec: FiltersSpec, item: Item | None = None) -> str | None:
    """The first reason this trace should not be exported, or None when it passes (the checks and their order
    are registered in trace_checks.py)."""
    return first_problem(response, spec)
