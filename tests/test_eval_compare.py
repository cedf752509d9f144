"""evaluation.compare: two run folders written here, matched by sample id, with differences known by hand."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retinal_reason_data.evaluation.compare import compare_markdown, compare_runs, mcnemar_exact
from tests.helpers.eval_rows import row, write_run

# s1 only in A, s9 only in B; of s2..s8 (7 matched): A right on s2, s3, s4; B right on s3..s8.
# Discordant: s2 right in A only (1); s5, s6, s7, s8 right in B only (4).
A_RIGHT = {"s1", "s2", "s3", "s4"}
B_RIGHT = {"s3", "s4", "s5", "s6", "s7", "s8", "s9"}


def _task(sample_id: str) -> str:
    return "complex" if sample_id in {"s6", "s7", "s8"} else "basic"


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    rows_a = [row(f"s{i}", right=f"s{i}" in A_RIGHT, task=_task(f"s{i}")) for i in range(1, 9)]
    rows_b = [row(f"s{i}", right=f"s{i}" in B_RIGHT, task=_task(f"s{i}")) for i in range(2, 10)]
    return write_run(tmp_path / "a", rows_a, "base-model"), write_run(tmp_path / "b", rows_b, "tuned-model")


def test_mcnemar_exact_against_hand_computation() -> None:
    assert mcnemar_exact(1, 4) == pytest.approx(2 * (1 + 5) / 32)  # P(X <= 1 | n=5) = 6/32, doubled
    assert mcnemar_exact(4, 1) == mcnemar_exact(1, 4)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(3, 3) == 1.0  # capped: the two tails overlap at the centre
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(2, 10) == pytest.approx(2 * (1 + 12 + 66) / 4096)


def exact_two_sided(a_only: int, b_only: int) -> float:
    """The same p-value in integer arithmetic: twice the sum of C(n, i) for i up to the smaller count, over 2^n."""
    n, term, total = a_only + b_only, 1, 0
    for i in range(min(a_only, b_only) + 1):
        total, term = total + term, term * (n - i) // (i + 1)
    return min(1.0, float(Fraction(2 * total, 2**n)))


@pytest.mark.parametrize(("a_only", "b_only"), [(137, 171), (900, 1000), (40, 400)])
def test_mcnemar_exact_on_many_discordant_pairs_matches_integer_arithmetic(a_only: int, b_only: int) -> None:
    assert mcnemar_exact(a_only, b_only) == pytest.approx(exact_two_sided(a_only, b_only), rel=1e-9)


def test_matched_samples_differences_and_mcnemar(two_runs: tuple[Path, Path]) -> None:
    result = compare_runs(*two_runs)
    assert result["matched"] == {"samples": 7, "only_a": 1, "only_b": 1, "answer_differs": 0}
    overall = result["overall"]
    assert overall["count"] == 7
    assert overall["accuracy_a"] == pytest.approx(3 / 7)
    assert overall["accuracy_b"] == pytest.approx(6 / 7)
    assert overall["difference"] == pytest.approx(3 / 7)
    low, high = overall["ci95"]["difference"]
    assert low <= 3 / 7 <= high and low < high
    assert result["mcnemar"]["right_in_a_only"] == 1 and result["mcnemar"]["right_in_b_only"] == 4
    assert result["mcnemar"]["p_value"] == pytest.approx(0.375)
    # basic: s2..s5 (A right on s2, s3, s4; B on s3, s4, s5); complex: s6..s8 (A none; B all)
    basic, complex_ = result["by_task"]["basic"], result["by_task"]["complex"]
    assert (basic["count"], basic["accuracy_a"], basic["accuracy_b"], basic["difference"]) == (4, 0.75, 0.75, 0.0)
    assert (complex_["count"], complex_["difference"]) == (3, 1.0)
    assert complex_["ci95"]["difference"] == [1.0, 1.0]  # every pair moved by +1
    assert list(result["by_modality"]) == ["CFP"]
    assert result["runs"]["a"]["model"] == "base-model" and result["runs"]["b"]["model"] == "tuned-model"
    assert result["runs"]["a"]["samples"] == 8 and result["runs"]["a"]["accuracy"] == pytest.approx(0.5)
    assert (result["runs"]["b"]["config"], result["runs"]["b"]["split"]) == ("rl", "test")


def test_changed_samples_are_listed_with_their_answers(two_runs: tuple[Path, Path]) -> None:
    changed = compare_runs(*two_runs)["changed"]
    assert [entry["sample_id"] for entry in changed["worse"]] == ["s2"]
    assert [entry["sample_id"] for entry in changed["better"]] == ["s5", "s6", "s7", "s8"]
    worse = changed["worse"][0]
    assert (worse["extracted_a"], worse["extracted_b"]) == (["B"], ["C"])
    assert (worse["answer_a"], worse["answer_b"], worse["task"]) == ("B", "B", "basic")
    assert (worse["accuracy_a"], worse["accuracy_b"]) == (1.0, 0.0)


def test_markdown_states_the_runs_numbers_and_changed_samples(two_runs: tuple[Path, Path]) -> None:
    result = compare_runs(*two_runs)
    markdown = compare_markdown(result)
    assert "| model | base-model | tuned-model |" in markdown
    assert "| release | /exports/v1 (abc123def456) | /exports/v1 (abc123def456) |" in markdown
    assert "7 samples in both; 1 only in A and 1 only in B" in markdown
    assert "| all matched samples | 7 | 0.429 | 0.857 | +0.429 |" in markdown
    assert "| complex | 3 | 0.000 | 1.000 | +1.000 | [+1.000, +1.000] |" in markdown
    assert "1 samples right in A only, 4 right in B only: p = 0.375." in markdown
    assert "### Right in A, wrong in B (1)" in markdown and "| s2 | basic | CFP | B | B | C |" in markdown
    assert "### Wrong in A, right in B (4)" in markdown and "| s8 | complex | CFP | B | C | B |" in markdown
    assert compare_markdown(compare_runs(*two_runs)) == markdown  # deterministic
    assert json.loads(json.dumps(result)) == result


def test_identical_runs_differ_by_nothing(tmp_path: Path) -> None:
    rows = [row(f"s{i}", right=i % 3 == 0) for i in range(30)]
    result = compare_runs(write_run(tmp_path / "a", rows, "m"), write_run(tmp_path / "b", rows, "m"))
    assert result["overall"]["difference"] == 0.0
    assert result["overall"]["ci95"]["difference"] == [0.0, 0.0]
    assert result["mcnemar"]["p_value"] == 1.0
    assert result["changed"] == {"worse": [], "better": []}


def test_several_attempts_compare_per_sample_accuracy_without_mcnemar(tmp_path: Path) -> None:
    rows_a = [row("s1", 1, True), row("s1", 2, False), row("s2", 1, True), row("s2", 2, True)]
    rows_b = [row("s1", 1, True), row("s1", 2, True), row("s2", 1, False), row("s2", 2, error="timeout")]
    result = compare_runs(write_run(tmp_path / "a", rows_a, "m"), write_run(tmp_path / "b", rows_b, "m"))
    assert result["overall"]["difference"] == pytest.approx(((1.0 - 0.5) + (0.0 - 1.0)) / 2)
    assert result["mcnemar"]["p_value"] is None and "one attempt" in result["mcnemar"]["reason"]
    assert [e["sample_id"] for e in result["changed"]["better"]] == ["s1"]
    assert result["changed"]["worse"][0]["extracted_b"] == ["C", None]
    markdown = compare_markdown(result)
    assert "### Worse in B (accuracy over the attempts fell) (1)" in markdown
    assert "McNemar's test: not computed" in markdown


def test_a_changed_answer_between_releases_is_counted(tmp_path: Path) -> None:
    rows_a = [row("s1"), row("s2")]
    rows_b = [row("s1"), row("s2", right=False).model_copy(update={"answer": "D"})]
    result = compare_runs(write_run(tmp_path / "a", rows_a, "m"), write_run(tmp_path / "b", rows_b, "m", "/v2"))
    assert result["matched"]["answer_differs"] == 1
    assert result["changed"]["worse"][0]["answer_b"] == "D"
    assert "| s2 | basic | CFP | B (A) / D (B) | B | C |" in compare_markdown(result)


def test_folders_that_are_not_runs_are_refused_saying_why(tmp_path: Path, two_runs: tuple[Path, Path]) -> None:
    run_a, _ = two_runs
    with pytest.raises(ValueError, match="not a folder"):
        compare_runs(tmp_path / "absent", run_a)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"empty: no run\.json and no responses\.parquet \(a run folder of"):
        compare_runs(run_a, empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json", encoding="utf-8")
    (broken / "responses.parquet").write_bytes(b"PAR1")
    with pytest.raises(ValueError, match=r"broken/run\.json: not JSON"):
        compare_runs(run_a, broken)
    (broken / "run.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken/responses\.parquet: not a parquet file"):
        compare_runs(run_a, broken)
    pq.write_table(pa.table({"sample_id": ["s1"]}), broken / "responses.parquet")
    with pytest.raises(ValueError, match=r"no column attempt, task"):
        compare_runs(run_a, broken)


def test_runs_without_a_common_sample_are_refused(tmp_path: Path) -> None:
    run_a = write_run(tmp_path / "a", [row("a1"), row("a2")], "m")
    run_b = write_run(tmp_path / "b", [row("b1")], "m")
    with pytest.raises(ValueError, match=r"share no sample .*A has 2 samples \(e\.g\. a1, a2\), B has 1 \(e\.g\. b1\)"):
        compare_runs(run_a, run_b)


def test_duplicate_rows_in_a_run_are_refused_naming_the_file(tmp_path: Path) -> None:
    run_a = write_run(tmp_path / "a", [row("s1")], "m")
    run_b = tmp_path / "b"
    run_b.mkdir()
    (run_b / "run.json").write_text("{}", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([row("s1").model_dump()] * 2), run_b / "responses.parquet")
    with pytest.raises(ValueError, match=r"b/responses\.parquet: sample 's1' has attempt 1 twice"):
        compare_runs(run_a, run_b)
