"""The quality gate: a logistic regression over the gradability measures (image_quality.py), fitted on EyeQ
graders' labels by `benchmarks/quality_gate_fit.py`; its coefficients live in `data/quality_gate.json`.

A photograph is refused when the model's probability that graders would reject it exceeds the threshold.
The refusal names the measure that weighed most: the largest term of the score relative to the photographs the
graders called Good; its family gives the reason code (blurred, hazy, unevenly lit, patchy colour). A grey-level
photograph has no colour measure: the gate reads it as that of a typical Good photograph (its term is 0)."""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from retinal_reason_data.ingest.image_quality import COLOUR_MEASURES
from retinal_reason_data.schema import ImageQuality

GATE_FILE = "quality_gate.json"
REASON_BY_MEASURE = {
    "detail_fine": "image_blurred",
    "detail_vessel": "image_blurred",
    "detail_mid": "image_blurred",
    "detail_coarse": "image_blurred",
    "detail_fine_median": "image_blurred",
    "detail_fine_low": "image_blurred",
    "vessel_contrast": "image_hazy",
    "vessel_contrast_low": "image_hazy",
    "vesselless_share": "image_hazy",
    "shadow_share": "image_uneven",
    "centre_to_rim": "image_uneven",
    "colour_mottle": "image_colour_patchy",
}
GATE_REASONS = ("image_blurred", "image_hazy", "image_uneven", "image_colour_patchy")


class GateModel(BaseModel):
    """A fitted gate: score = intercept + sum(coef * (measure - centre) / scale); refused when
    sigmoid(score) > threshold."""

    version: int = Field(description="Bumped whenever the file is refitted.")
    measures: list[str]
    centre: list[float] = Field(description="Training mean of each measure.")
    scale: list[float] = Field(description="Training standard deviation of each measure.")
    coef: list[float]
    intercept: float
    threshold: float = Field(gt=0.0, lt=1.0, description="Probability of rejection above which a photo is refused.")
    good_reference: list[float] = Field(description="Mean of each measure over the Good training photographs.")
    fitted_on: dict[str, object] = Field(default_factory=dict, description="Data, split and figures of the fit.")

    def values(self, quality: ImageQuality) -> list[float] | None:
        """The measures the gate reads, in its order (a missing colour measure as the Good reference's), or None
        where a grey-level measure is missing (no field canvas)."""
        values = []
        for name, reference in zip(self.measures, self.good_reference, strict=True):
            value = getattr(quality, name, None)
            if value is None and name in COLOUR_MEASURES and quality.detail_fine is not None:
                value = reference
            if value is None:
                return None
            values.append(value)
        return values

    def score(self, quality: ImageQuality) -> float | None:
        """The logit of rejection, or None where a measure is missing (no field canvas)."""
        values = self.values(quality)
        if values is None:
            return None
        terms = (c * (v - m) / s for c, v, m, s in zip(self.coef, values, self.centre, self.scale, strict=True))
        return self.intercept + sum(terms)

    def probability(self, quality: ImageQuality) -> float | None:
        score = self.score(quality)
        return None if score is None else 1.0 / (1.0 + math.exp(-score))

    def heaviest(self, quality: ImageQuality) -> str:
        """The measure whose term pushes hardest towards refusal, relative to a typical Good photograph."""
        values = self.values(quality) or self.good_reference
        terms = {
            name: c * (v - g) / s
            for name, c, v, g, s in zip(self.measures, self.coef, values, self.good_reference, self.scale, strict=True)
        }
        return max(sorted(terms), key=lambda name: terms[name])

    def verdict(self, quality: ImageQuality, threshold: float | None = None) -> tuple[str, str] | None:
        """(reason code, measure that weighed most) when the photograph is refused, else None."""
        probability = self.probability(quality)
        if probability is None or probability <= (self.threshold if threshold is None else threshold):
            return None
        measure = self.heaviest(quality)
        return REASON_BY_MEASURE.get(measure, "image_blurred"), measure


@cache
def load_gate(path: str | None = None) -> GateModel:
    """The gate shipped in the package (or the file at `path`)."""
    if path is None:
        text = resources.files("retinal_reason_data").joinpath("data", GATE_FILE).read_text(encoding="utf-8")
        return GateModel.model_validate(json.loads(text))
    return GateModel.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
