"""Image-quality measures per source for the curation report: fixed-bin histograms gathered while curation
streams the cases (memory does not grow with them), and one PNG with a panel per measure showing each source's
distribution and the threshold or decision boundary the filters hold it against. Drawn with Pillow like the card's
figures: fixed size and palette, built-in font, no text chunks, so identical counts give identical bytes."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from retinal_reason_data.curation.quality_gate import GateModel
from retinal_reason_data.recipe import ImageFilters
from retinal_reason_data.schema import ImageQuality

BINS = 48
# measure -> (low, high) of its histogram; values outside fall into the end bins
RANGES: dict[str, tuple[float, float]] = {
    "gate_probability": (0.0, 1.0),
    "brightness": (0.0, 1.0),
    "fov_fraction": (0.0, 1.0),
    "detail_fine": (-9.0, -4.0),
    "detail_vessel": (-8.0, -3.5),
    "detail_mid": (-7.5, -3.5),
    "detail_coarse": (-6.5, -2.5),
    "detail_fine_median": (-10.0, -4.0),
    "detail_fine_low": (-11.5, -5.0),
    "vessel_contrast": (0.0, 0.12),
    "vessel_contrast_low": (0.0, 0.06),
    "vesselless_share": (0.0, 1.0),
    "shadow_share": (0.0, 0.3),
    "centre_to_rim": (-1.5, 1.5),
    "colour_mottle": (-10.0, -2.5),
}
TITLES = {
    "gate_probability": "quality gate: probability that graders reject (refused above the line)",
    "brightness": "brightness: mean grey of the field (refused outside the lines)",
    "fov_fraction": "field fraction: lit share of the frame (no field below the line)",
}


class QualityDistributions:
    """Per source and measure, a histogram of BINS bins over RANGES[measure]."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {name: [0] * BINS for name in RANGES})

    def add(self, source: str, quality: ImageQuality, gate: GateModel | None) -> None:
        values = quality.model_dump()
        values["gate_probability"] = gate.probability(quality) if gate else None
        histograms = self.counts[source]
        for name, (low, high) in RANGES.items():
            value = values.get(name)
            if value is not None:
                index = min(BINS - 1, max(0, int((value - low) / (high - low) * BINS)))
                histograms[name][index] += 1

    def to_dict(self) -> dict[str, dict[str, list[int]]]:
        return {source: dict(histograms) for source, histograms in sorted(self.counts.items())}


def boundaries(spec: ImageFilters, gate: GateModel | None) -> dict[str, list[float]]:
    """The value(s) at which each measure alone refuses: the hard thresholds, the gate's threshold, and for each
    gradability measure the value at which the gate refuses a photograph that is otherwise typical of Good."""
    lines = {
        "brightness": [spec.min_brightness, spec.max_brightness],
        "fov_fraction": [spec.min_field_fraction],
    }
    if gate is None:
        return lines
    threshold = spec.gate_threshold or gate.threshold
    lines["gate_probability"] = [threshold]
    logit = math.log(threshold / (1 - threshold))
    reference = gate.intercept + sum(
        c * (g - m) / s for c, g, m, s in zip(gate.coef, gate.good_reference, gate.centre, gate.scale, strict=True)
    )
    for name, c, g, s in zip(gate.measures, gate.coef, gate.good_reference, gate.scale, strict=True):
        if abs(c) > 1e-9:
            lines[name] = [g + (logit - reference) * s / c]
    return lines


_WIDTH, _LEFT, _RIGHT = 900, 170, 20
_ROW, _TITLE, _AXIS = 14, 20, 16
_FONT_SIZE = 11


def render(path: Path, distributions: dict[str, dict[str, list[int]]], lines: dict[str, list[float]]) -> Path:
    """One PNG: a panel per measure, a row per source whose cells darken with the share of its photographs in
    that bin; red lines where the measure alone refuses."""
    font, title_font = ImageFont.load_default(size=_FONT_SIZE), ImageFont.load_default(size=13)
    sources = list(distributions)
    panel = _TITLE + _ROW * max(1, len(sources)) + _AXIS + 8
    image = Image.new("RGB", (_WIDTH, 10 + panel * len(RANGES)), "white")
    draw = ImageDraw.Draw(image)
    span = _WIDTH - _LEFT - _RIGHT
    cell = span / BINS
    for index, (name, (low, high)) in enumerate(RANGES.items()):
        top = 10 + index * panel
        title = TITLES.get(name, f"{name} (gate measure; line: refused alone, all else typical of Good)")
        draw.text((10, top), title, fill="black", font=title_font)
        for row, source in enumerate(sources):
            y = top + _TITLE + row * _ROW
            draw.text((10, y), _clip(source, 24), fill="black", font=font)
            counts = distributions[source][name]
            peak = max(counts) or 1
            for b, count in enumerate(counts):
                if count:
                    shade = 235 - round(200 * math.sqrt(count / peak))
                    x0 = _LEFT + round(b * cell)
                    draw.rectangle((x0, y + 1, _LEFT + round((b + 1) * cell) - 1, y + _ROW - 2), fill=(shade,) * 3)
        bottom = top + _TITLE + _ROW * len(sources)
        draw.line((_LEFT, bottom + 1, _LEFT + span, bottom + 1), fill="black")
        for tick in range(5):
            value = low + (high - low) * tick / 4
            x = _LEFT + round(span * tick / 4)
            draw.line((x, bottom + 1, x, bottom + 4), fill="black")
            draw.text((max(_LEFT, min(x - 14, _LEFT + span - 30)), bottom + 4), f"{value:.3g}", fill="black", font=font)
        for value in lines.get(name, []):
            if low <= value <= high:
                x = _LEFT + round(span * (value - low) / (high - low))
                draw.line((x, top + _TITLE - 2, x, bottom + 1), fill=(200, 30, 30), width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=False)
    return path


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "~"
