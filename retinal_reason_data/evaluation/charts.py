"""The evaluation report's charts: horizontal bars of a rate (0 to 1) with their 95 % interval as whiskers, drawn
with Pillow like the card's figures (`release/figures.py`): fixed size and palette, the built-in font, no text
chunks or timestamps, so identical figures give identical bytes."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageDraw, ImageFont

from retinal_reason_data.release.figures import clip_text, text_width

WIDTH = 900
_ROW = 22
_TOP = 40
_AXIS = 24
_LABEL_MAX = 260
_TEXT = 230  # room right of the scale for "0.700 [0.620, 0.780] n=40"
_BAR = "#3b6ea8"
_WHISKER = "#1a1a1a"
_GRID = "#dddddd"


class Bar(NamedTuple):
    """One bar: its label, the rate, its interval (or None) and the number of samples behind it."""

    label: str
    value: float | None
    interval: list[float] | None
    count: int | None = None


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _caption(bar: Bar) -> str:
    if bar.value is None:
        return "no samples"
    text = f"{bar.value:.3f}"
    if bar.interval:
        text += f" [{bar.interval[0]:.3f}, {bar.interval[1]:.3f}]"
    return text + (f" n={bar.count}" if bar.count is not None else "")


def rate_chart(path: Path, title: str, bars: list[Bar]) -> Path:
    """A PNG with one bar per entry on a 0-1 scale, the interval drawn as a whisker with end caps."""
    font, title_font = _font(13), _font(16)
    label_width = min(_LABEL_MAX, max([text_width(font, bar.label) for bar in bars] + [40]) + 16)
    left, span = label_width, WIDTH - label_width - _TEXT
    height = _TOP + _ROW * max(1, len(bars)) + _AXIS
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((12, 10), title, fill="black", font=title_font)
    bottom = _TOP + _ROW * len(bars)
    for tick in range(5):
        x = left + round(span * tick / 4)
        draw.line((x, _TOP - 4, x, bottom), fill=_GRID)
        draw.text((x - 10, bottom + 4), f"{tick / 4:.2f}", fill="black", font=font)
    for row, bar in enumerate(bars):
        y = _TOP + row * _ROW
        draw.text((12, y + 3), clip_text(font, bar.label, label_width - 16), fill="black", font=font)
        if bar.value is not None:
            length = round(span * min(max(bar.value, 0.0), 1.0))
            draw.rectangle((left, y + 4, left + max(length, 1), y + _ROW - 5), fill=_BAR)
        if bar.interval:
            low, high = (left + round(span * min(max(v, 0.0), 1.0)) for v in bar.interval)
            middle = y + _ROW // 2
            draw.line((low, middle, high, middle), fill=_WHISKER, width=2)
            draw.line((low, middle - 5, low, middle + 5), fill=_WHISKER, width=2)
            draw.line((high, middle - 5, high, middle + 5), fill=_WHISKER, width=2)
        draw.text((left + span + 10, y + 3), _caption(bar), fill="black", font=font)
    draw.line((left, bottom, left + span, bottom), fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=False)
    return path
