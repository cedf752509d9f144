"""`rrd eval compare RUN_A RUN_B`: two run folders side by side, matched by sample id.

Two models on one release, or one model on two releases: the samples both runs hold are compared pair by pair
(samples in one run only are counted and left out). For each, the accuracy in A and in B (the mean over its
attempts); the difference B - A overall and per task, modality, question type and source (groups as run A
labels them) with a paired-bootstrap 95 % interval (resampling samples, each with its A and B values: the mean of
the per-sample differences, drawn as `metrics.resampled_means` draws); with one attempt per sample in both runs,
McNemar's exact test (two-sided binomial on the discordant pairs); and the samples that changed, with the
answers each run read.
"""

from __future__ import annotations

import json
from math import exp, lgamma, log
from pathlib import Path
from typing import Any

import numpy as np

from retinal_reason_data.evaluation.metrics import COLUMNS, GROUPINGS, PerSample, interval, per_sample
from retinal_reason_data.evaluation.report import cell, rate, release_label

RUN_JSON = "run.json"
RESPONSES = "responses.parquet"
MARKDOWN_CHANGED = 50  # changed samples listed per direction in the markdown (the JSON lists all)


def read_run(folder: Path) -> tuple[dict[str, Any], PerSample, dict[str, str]]:
    """(run.json, the responses folded per sample, sample id -> answer) of a run folder; ValueError saying what
    is missing or wrong when it is not one."""
    hint = "a run folder of `rrd eval` holds run.json and responses.parquet"
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder ({hint})")
    missing = [name for name in (RUN_JSON, RESPONSES) if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder}: no {' and no '.join(missing)} ({hint})")
    try:
        meta = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{folder / RUN_JSON}: not JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{folder / RUN_JSON}: holds a {type(meta).__name__}, not the run's JSON object")
    columns = _read_columns(folder / RESPONSES)
    try:
        samples = per_sample(columns)
    except ValueError as exc:
        raise ValueError(f"{folder / RESPONSES}: {exc}") from exc
    answers = dict(zip(columns["sample_id"], columns["answer"], strict=True))
    return meta, samples, answers


def _read_columns(path: Path) -> dict[str, list[Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = [*COLUMNS, "answer"]
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: not a parquet file ({exc})") from exc
    absent = [name for name in wanted if name not in schema.names]
    if absent:
        raise ValueError(f"{path}: no column {', '.join(absent)} (the columns of evaluation.samples.ScoredResponse)")
    return pq.read_table(path, columns=wanted).to_pydict()


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the binomial(n, 1/2) probability of a split of the n = a_only + b_only
    discordant pairs at least as uneven as the one seen (1.0 when there is none). The binomial terms are summed
    in log space (`lgamma`): 100,000 discordant pairs take milliseconds; about 10 significant digits are kept."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    smaller = np.arange(min(a_only, b_only) + 1, dtype=np.float64)
    log_terms = lgamma(n + 1) - np.array([lgamma(i + 1) + lgamma(n - i + 1) for i in smaller]) - n * log(2.0)
    peak = float(log_terms.max())
    tail = exp(peak) * float(np.exp(log_terms - peak).sum())
    return min(1.0, 2 * tail)


def _describe(folder: Path, meta: dict[str, Any], samples: PerSample) -> dict[str, Any]:
    summary = meta.get("summary") or {}
    return {
        "folder": str(folder),
        "model": meta.get("model"),
        "release": meta.get("release"),
        "config": meta.get("config"),
        "split": meta.get("split"),
        "attempts": meta.get("attempts", int(samples.attempts.max()) if len(samples) else 0),
        "params": meta.get("params"),
        "samples": len(samples),
        "accuracy": summary.get("accuracy", float(samples.accuracy.mean()) if len(samples) else None),
    }


def _difference(a: np.ndarray, b: np.ndarray, label: str, resamples: int, seed: int) -> dict[str, Any]:
    return {
        "count": len(a),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "difference": float((b - a).mean()),
        "ci95": {"difference": interval(b - a, resamples=resamples, seed=seed, label=f"{label}difference")},
    }


def _changed(
    ids: list[str],
    a: PerSample,
    b: PerSample,
    at_a: np.ndarray,
    at_b: np.ndarray,
    answers: tuple[dict[str, str], dict[str, str]],
) -> dict[str, list[dict[str, Any]]]:
    lists: dict[str, list[dict[str, Any]]] = {"worse": [], "better": []}
    for position, sample_id in enumerate(ids):
        i, j = at_a[position], at_b[position]
        if a.accuracy[i] == b.accuracy[j]:
            continue
        entry = {
            "sample_id": sample_id,
            **{name: str(a.groups[name][i]) for name in GROUPINGS},
            "answer_a": answers[0].get(sample_id),
            "answer_b": answers[1].get(sample_id),
            "accuracy_a": float(a.accuracy[i]),
            "accuracy_b": float(b.accuracy[j]),
            "extracted_a": list(a.extracted[i]),
            "extracted_b": list(b.extracted[j]),
        }
        lists["worse" if b.accuracy[j] < a.accuracy[i] else "better"].append(entry)
    return lists


def compare_runs(run_a: Path, run_b: Path, *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Run B against run A on the samples both hold. Keys: `runs` (what each is: folder, model, release,
    config, split, attempts, params, samples, its own accuracy); `matched` (samples in both; `only_a`, `only_b`:
    counted, not used; `answer_differs`: matched samples whose answer differs); `overall` and `by_task`,
    `by_modality`, `by_question_type`, `by_source` (groups as A labels them; each {count, accuracy_a,
    accuracy_b, difference (B - A), ci95: {difference: [low, high]}}); `mcnemar` (single-attempt runs: the
    discordant counts and the exact p-value, else p_value None and the reason); `changed` ({worse, better}: the
    samples whose accuracy fell or rose, i.e. right -> wrong and wrong -> right with one attempt each, with their
    groups, the answer in each run and the answers each run read); `bootstrap`.

    ValueError, saying what is wrong, when a folder is not a run folder or the runs share no sample."""
    meta_a, a, answers_a = read_run(Path(run_a))
    meta_b, b, answers_b = read_run(Path(run_b))
    index_a = {sample_id: i for i, sample_id in enumerate(a.sample_ids)}
    index_b = {sample_id: j for j, sample_id in enumerate(b.sample_ids)}
    common = sorted(index_a.keys() & index_b.keys())
    if not common:
        raise ValueError(
            f"{run_a} and {run_b} share no sample (runs are matched by sample id): A has {len(a)} samples"
            f"{_examples(a.sample_ids)}, B has {len(b)}{_examples(b.sample_ids)}"
        )
    at_a = np.array([index_a[sample_id] for sample_id in common])
    at_b = np.array([index_b[sample_id] for sample_id in common])
    acc_a, acc_b = a.accuracy[at_a], b.accuracy[at_b]
    result: dict[str, Any] = {
        "runs": {"a": _describe(Path(run_a), meta_a, a), "b": _describe(Path(run_b), meta_b, b)},
        "matched": {
            "samples": len(common),
            "only_a": len(a) - len(common),
            "only_b": len(b) - len(common),
            "answer_differs": sum(answers_a[sample_id] != answers_b[sample_id] for sample_id in common),
        },
        "overall": _difference(acc_a, acc_b, "", resamples, seed),
    }
    for name in GROUPINGS:
        labels = a.groups[name][at_a]
        result[f"by_{name}"] = {
            str(group): _difference(
                acc_a[labels == group], acc_b[labels == group], f"by_{name}/{group}/", resamples, seed
            )
            for group in np.unique(labels)
        }
    result["mcnemar"] = _mcnemar(a, b, at_a, at_b)
    result["changed"] = _changed(common, a, b, at_a, at_b, (answers_a, answers_b))
    result["bootstrap"] = {"resamples": resamples, "seed": seed, "unit": "paired sample", "interval": "percentile 95 %"}
    return result


def _examples(sample_ids: list[str]) -> str:
    return f" (e.g. {', '.join(sample_ids[:3])})" if sample_ids else ""


def _mcnemar(a: PerSample, b: PerSample, at_a: np.ndarray, at_b: np.ndarray) -> dict[str, Any]:
    if (a.attempts[at_a] != 1).any() or (b.attempts[at_b] != 1).any():
        return {"p_value": None, "reason": "McNemar's test needs one attempt per sample in both runs"}
    right_a, right_b = a.accuracy[at_a] >= 1.0, b.accuracy[at_b] >= 1.0
    a_only, b_only = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    return {
        "right_in_a_only": a_only,
        "right_in_b_only": b_only,
        "p_value": mcnemar_exact(a_only, b_only),
        "test": "exact, two-sided binomial on the discordant pairs",
    }


# --- markdown --------------------------------------------------------------------------------------------
def _p_value(value: float) -> str:
    return f"{value:.4g}" if value > 0 else "< 1e-300"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def _ci(bounds: list[float] | None) -> str:
    return "" if not bounds else f"[{bounds[0]:+.3f}, {bounds[1]:+.3f}]"


def _runs_table(result: dict[str, Any]) -> list[str]:
    a, b = result["runs"]["a"], result["runs"]["b"]
    lines = ["| | A | B |", "|---|---|---|"]
    for label, key in (("folder", "folder"), ("model", "model"), ("config", "config"), ("split", "split")):
        lines.append(f"| {label} | {cell(a[key], 120)} | {cell(b[key], 120)} |")
    lines.append(f"| release | {release_label(a['release'])} | {release_label(b['release'])} |")
    lines.append(f"| attempts per sample | {a['attempts']} | {b['attempts']} |")
    lines.append(f"| samples | {a['samples']} | {b['samples']} |")
    lines.append(f"| accuracy (all its samples) | {rate(a['accuracy'])} | {rate(b['accuracy'])} |")
    return lines


def _difference_rows(groups: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| group | n | A | B | B - A | 95 % CI |", "|---|---:|---:|---:|---:|---|"]
    for group, d in groups.items():
        lines.append(
            f"| {cell(group) or '(none)'} | {d['count']} | {rate(d['accuracy_a'])} | {rate(d['accuracy_b'])} "
            f"| {_signed(d['difference'])} | {_ci(d['ci95']['difference'])} |"
        )
    return lines


def _changed_section(title: str, entries: list[dict[str, Any]], single: bool) -> list[str]:
    lines = [f"### {title} ({len(entries)})", ""]
    if not entries:
        return [*lines, "None.", ""]
    lines += ["| sample | task | modality | answer | A read | B read |", "|---|---|---|---|---|---|"]
    for entry in entries[:MARKDOWN_CHANGED]:
        read_a = entry["extracted_a"][0] if single else "; ".join(str(x) for x in entry["extracted_a"])
        read_b = entry["extracted_b"][0] if single else "; ".join(str(x) for x in entry["extracted_b"])
        lines.append(
            f"| {cell(entry['sample_id'])} | {cell(entry['task'])} | {cell(entry['modality'])} "
            f"| {_answer(entry)} | {cell(read_a, 40) or '(none)'} | {cell(read_b, 40) or '(none)'} |"
        )
    if len(entries) > MARKDOWN_CHANGED:
        lines.append(f"\n... and {len(entries) - MARKDOWN_CHANGED} more (all are in `--json`).")
    return [*lines, ""]


def _answer(entry: dict[str, Any]) -> str:
    a, b = cell(entry["answer_a"], 40), cell(entry["answer_b"], 40)
    return a if a == b else f"{a} (A) / {b} (B)"


def compare_markdown(result: dict[str, Any]) -> str:
    """The comparison as markdown: the two runs, matched samples, overall and per-group differences with their
    intervals, McNemar's test, and the changed samples (the first MARKDOWN_CHANGED of each direction)."""
    matched, overall, test = result["matched"], result["overall"], result["mcnemar"]
    lines = ["# rrd eval compare: B against A", "", *_runs_table(result), ""]
    lines.append(
        f"Matched by sample id: {matched['samples']} samples in both; {matched['only_a']} only in A and "
        f"{matched['only_b']} only in B (counted, not compared); {matched['answer_differs']} matched samples have "
        "another answer in B than in A. Accuracy of a sample: the mean over its attempts; "
        "intervals: paired bootstrap over samples, 95 % percentile."
    )
    lines += ["", "## Overall", "", *_difference_rows({"all matched samples": overall}), ""]
    if test.get("p_value") is not None and "right_in_a_only" in test:
        lines.append(
            f"McNemar's exact test: {test['right_in_a_only']} samples right in A only, {test['right_in_b_only']} "
            f"right in B only: p = {_p_value(test['p_value'])}."
        )
    else:
        lines.append(f"McNemar's test: not computed ({test.get('reason', 'no reason given')}).")
    for name in GROUPINGS:
        lines += ["", f"## By {name.replace('_', ' ')}", "", *_difference_rows(result[f"by_{name}"])]
    single = result["runs"]["a"]["attempts"] == 1 and result["runs"]["b"]["attempts"] == 1
    worse = "Right in A, wrong in B" if single else "Worse in B (accuracy over the attempts fell)"
    better = "Wrong in A, right in B" if single else "Better in B (accuracy over the attempts rose)"
    lines += ["", "## Samples that changed", ""]
    lines += _changed_section(worse, result["changed"]["worse"], single)
    lines += _changed_section(better, result["changed"]["better"], single)
    return "\n".join(lines).rstrip() + "\n"
