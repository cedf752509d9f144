"""The card's figures: plain PNG bar charts drawn with Pillow, byte-identical for identical counts (fixed
size, fixed palette, Pillow's built-in font, no timestamps or text chunks)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from retinal_reason_data.release.summary import ReleaseSummary

WIDTH = 900
_BAR = 16
_GAP = 10
_PALETTE = ["#3b6ea8", "#d98c2b", "#4f9a5f", "#a44a61", "#7a5ca8"]
_FONT_SIZE = 13


def _font(size: int = _FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def bar_chart(path: Path, title: str, labels: list[str], series: dict[str, list[int]]) -> Path:
    """Horizontal bars, one group per label and one bar per series, with the counts written at the bars."""
    font, title_font = _font(), _font(16)
    names = list(series)
    label_width = min(320, max([text_width(font, label) for label in labels] + [40]) + 16)
    group = _BAR * len(names) + _GAP
    legend = 26 if len(names) > 1 else 0
    height = 44 + legend + group * max(1, len(labels)) + 12
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((12, 10), title, fill="black", font=title_font)
    for index, name in enumerate(names if legend else []):
        x = 12 + index * 170
        draw.rectangle((x, 44, x + 12, 56), fill=_PALETTE[index % len(_PALETTE)])
        draw.text((x + 18, 42), name, fill="black", font=font)
    top = 44 + legend
    peak = max([max(values, default=0) for values in series.values()] + [1])
    span = WIDTH - label_width - 80
    for row, label in enumerate(labels):
        y = top + row * group
        draw.text((12, y + (group - _GAP) // 2 - 7), clip_text(font, label, label_width - 16), fill="black", font=font)
        for index, name in enumerate(names):
            value = series[name][row]
            bar_top = y + index * _BAR
            length = round(span * value / peak)
            colour = _PALETTE[index % len(_PALETTE)]
            draw.rectangle((label_width, bar_top + 1, label_width + max(length, 1), bar_top + _BAR - 2), fill=colour)
            draw.text((label_width + length + 6, bar_top), str(value), fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=False)
    return path


def text_width(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str) -> int:
    """Width in pixels of `text` drawn in `font`."""
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def clip_text(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str, width: int) -> str:
    """`text`, shortened with an ellipsis to fit `width` pixels."""
    if text_width(font, text) <= width:
        return text
    while text and text_width(font, text + "...") > width:
        text = text[:-1]
    return text + "..."


FIGURES = {
    "rows_by_split": "Rows per config and split",
    "rows_by_source": "Rows per source",
    "rows_by_modality": "Rows per modality",
    "rows_by_task": "Rows per task",
    "rows_by_question_type": "Rows per question type",
    "trace_length": "Length of the verified traces (words of think, sft rows)",
    "pass_at_k": "Teacher pass rate (pass@k) per row",
}


def render_figures(out: Path, summary: ReleaseSummary) -> dict[str, Path]:
    """Write figures/*.png for the card; returns name -> path."""
    folder = out / "figures"
    configs = list(summary.rows)
    written = {}
    split_labels = [f"{config}/{split}" for config in configs for split in summary.rows[config]]
    written["rows_by_split"] = bar_chart(
        folder / "rows_by_split.png",
        FIGURES["rows_by_split"],
        split_labels,
        {"rows": [summary.rows[key.split("/")[0]][key.split("/")[1]] for key in split_labels]},
    )
    for name in ("source", "modality", "task", "question_type"):
        labels = [value for value, _ in summary.totals(name)]
        series = {config: [dict(summary.totals(name, config)).get(label, 0) for label in labels] for config in configs}
        written[f"rows_by_{name}"] = bar_chart(
            folder / f"rows_by_{name}.png", FIGURES[f"rows_by_{name}"], labels, series
        )
    histogram = summary.trace_histogram()
    written["trace_length"] = bar_chart(
        folder / "trace_length.png",
        FIGURES["trace_length"],
        [label for label, _ in histogram],
        {"sft rows": [count for _, count in histogram]},
    )
    values = sorted({value for counts in summary.pass_at_k.values() for value in counts})
    written["pass_at_k"] = bar_chart(
        folder / "pass_at_k.png",
        FIGURES["pass_at_k"],
        values,
        {config: [summary.pass_at_k.get(config, {}).get(value, 0) for value in values] for config in configs},
    )
    return written
