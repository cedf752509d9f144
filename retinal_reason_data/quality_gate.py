"""The quality gate: a logistic regression over the gradability measures (image_quality.py), fitted on EyeQ
graders' labels by `benchmarks/quality_gate_fit.py`; its coefficients live in `data/quality_gate.json`.

A photograph is refused when the model's probability that graders would reject it exceeds the threshold.
The refusal names the measure that weighed most: the largest term of the score relative to the photographs the
graders called Good; its family gives the reason code (blurred, hazy, unevenly lit)."""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

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
}
GATE_REASONS = ("image_blurred", "image_hazy", "image_uneven")


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

    def score(self, quality: ImageQuality) -> float | None:
        """The logit of rejection, or None where a measure is missing (no field canvas)."""
        values = [getattr(quality, name, None) for name in self.measures]
        if any(value is None for value in values):
            return None
        terms = (c * (v - m) / s for c, v, m, s in zip(self.coef, values, self.centre, self.scale, strict=True))
        return self.intercept + sum(terms)

    def probability(self, quality: ImageQuality) -> float | None:
        score = self.score(quality)
        return None if score is None else 1.0 / (1.0 + math.exp(-score))

    def heaviest(self, quality: ImageQuality) -> str:
        """The measure whose term pushes hardest towards refusal, relative to a typical Good photograph."""
        terms = {
            name: c * (getattr(quality, name) - g) / s
            for name, c, g, s in zip(self.measures, self.coef, self.good_reference, self.scale, strict=True)
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
