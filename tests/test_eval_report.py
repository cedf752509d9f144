"""evaluation.report: report.md and its charts from hand-made rows whose numbers are known."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from retinal_reason_data.evaluation.charts import Bar, rate_chart
from retinal_reason_data.evaluation.metrics import summarise
from retinal_reason_data.evaluation.report import WEAKEST_MIN_COUNT, weakest_groups, write_report
from tests.helpers.eval_rows import row

META = {
    "model": "org/vision-model",
    "base_url": "http://127.0.0.1:8000/v1",
    "release": {"path": "/exports/demo", "content_key": "0123456789abcdef", "format": "rl"},
    "config": "rl",
    "split": "test",
    "attempts": 1,
    "params": {"temperature": 0.0, "max_tokens": 1024},
    "started": "2026-12-07T04:00:00+00:00",
    "finished": "2026-12-07T04:05:00+00:00",
}


def single_attempt_rows() -> list:
    """basic: 3 of 4 right (CFP); complex: 1 of 2 right (OCT), one of them a failed call."""
    return [
        row("b1", right=True),
        row("b2", right=True),
        row("b3", right=True),
        row("b4", right=False),
        row("c1", right=True, task="complex", modality="OCT"),
        row("c2", task="complex", modality="OCT", error="timeout"),
    ]


def report_of(folder: Path, rows: list, meta: dict = META) -> str:
    summary = {"model": meta["model"], **summarise(rows)}
    path = write_report(folder, meta, summary, rows)
    assert path == folder / "report.md"
    return path.read_text(encoding="utf-8")


def test_report_states_the_run_and_its_numbers(tmp_path: Path) -> None:
    text = report_of(tmp_path, single_attempt_rows())
    assert text.startswith("# Evaluation of org/vision-model\n")
    assert "| release | /exports/demo (0123456789ab) |" in text
    assert "| config / split | rl / test |" in text
    assert "| sampling | temperature 0.0, max_tokens 1024 |" in text
    assert "| started / finished | 2026-12-07T04:00:00+00:00 / 2026-12-07T04:05:00+00:00 |" in text
    assert "| samples | 6 | |" in text and "| responses | 6 (1 failed calls) | |" in text
    assert "| accuracy | 0.667 | [" in text
    assert "| basic | 4 | 0.750 | [" in text and "| complex | 2 | 0.500 | [" in text
    assert "| CFP | 4 | 0.750 |" in text and "| OCT | 2 | 0.500 |" in text
    assert "pass@" not in text and "majority vote |" not in text  # one attempt
    assert "1 calls got no reply after their retries (scored 0): timeout 1." in text
    assert "| c2 | 1 | timeout |" in text
    for name in ("task", "modality", "question_type", "source"):
        assert f"(charts/accuracy_by_{name}.png)" in text
        assert (tmp_path / "charts" / f"accuracy_by_{name}.png").is_file()
    assert not (tmp_path / "charts" / "attempts.png").exists()


def test_several_attempts_add_pass_at_k_majority_and_their_chart(tmp_path: Path) -> None:
    rows = [row("s1", 1, True), row("s1", 2, False), row("s2", 1, False), row("s2", 2, False)]
    text = report_of(tmp_path, rows, {**META, "attempts": 2})
    assert "| pass@1 | 0.250 | |" in text
    assert "| pass@2 | 0.500 | |" in text  # s1: 1 - C(1,2)/C(2,2) = 1; s2: 0
    assert "| majority vote | 0.000 |" in text  # s1 ties 1-1: wrong
    assert "(charts/attempts.png)" in text and (tmp_path / "charts" / "attempts.png").is_file()
    assert "None: every call got a reply." in text


def test_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    rows = single_attempt_rows()
    report_of(tmp_path / "one", rows)
    report_of(tmp_path / "two", list(reversed(rows)))
    files = sorted(path.relative_to(tmp_path / "one") for path in (tmp_path / "one").rglob("*") if path.is_file())
    assert len(files) == 5  # report.md and four charts
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def _blue_run(image: Image.Image, y: int) -> int:
    """Pixels of the bar colour along row y."""
    return sum(1 for x in range(image.width) if image.getpixel((x, y)) == (0x3B, 0x6E, 0xA8))


def test_bars_are_as_long_as_their_rates_with_a_row_each(tmp_path: Path) -> None:
    path = rate_chart(
        tmp_path / "chart.png",
        "rates",
        [Bar("quarter", 0.25, [0.2, 0.3], 10), Bar("whole", 1.0, None, 10), Bar("none", None, None, 0)],
    )
    image = Image.open(path).convert("RGB")
    assert image.width == 900
    top, height = 40, 22  # charts._TOP and charts._ROW: a bar spans rows top+4 .. top+17 of its row
    quarter, whole, none = (_blue_run(image, top + index * height + 5) for index in range(3))
    assert whole > 400 and quarter == pytest.approx(whole / 4, abs=2)
    assert none == 0
    taller = rate_chart(tmp_path / "taller.png", "rates", [Bar(f"g{i}", 0.5, None, 1) for i in range(6)])
    assert Image.open(taller).height - image.height == 3 * height


def test_weakest_groups_are_the_lowest_among_groups_large_enough(tmp_path: Path) -> None:
    rows = [
        *[row(f"a{i}", right=i < 4, source="big_good") for i in range(5)],  # 0.8, 5 samples
        *[row(f"b{i}", right=i < 2, source="big_poor") for i in range(6)],  # 0.33, 6 samples
        *[row(f"c{i}", right=False, source="tiny") for i in range(WEAKEST_MIN_COUNT - 1)],  # 0.0, too small
    ]
    summary = summarise(rows)
    weakest = weakest_groups(summary)
    # source: big_poor then big_good; task/modality/question type have one group each: not listed
    assert [(name, group) for name, group, _ in weakest] == [("source", "big_poor"), ("source", "big_good")]
    text = report_of(tmp_path, rows)
    assert "| source | big_poor | 6 | 0.333 |" in text
    assert "| source | tiny |" not in text
