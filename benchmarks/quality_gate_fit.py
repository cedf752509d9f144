"""Fit the quality gate on EyeQ graders' labels and measure it on every collection in ../shared/realdata.

Run:
    .venv/bin/python benchmarks/quality_gate_fit.py [--realdata ../shared/realdata] [--write]
Every photograph is measured through the intake's own `fingerprint` (the same reduced decode, work image and
field canvas as a build). The 1,614 EyePACS photographs with EyeQ labels (256 px copies) are split by patient: a
patient whose id hashes (SHA-256, mod 10) below HELD_OUT_TENTHS is held out, with both eyes, and never seen by
the fit. On the rest a logistic regression (NumPy, Newton steps, L2 penalty on standardised measures) learns
Reject against Good; the threshold is the (1 - GOOD_REFUSED) quantile of the Good photographs' out-of-fold
probabilities (5 patient-grouped folds). `--write` stores the model in retinal_reason_data/data/quality_gate.json
(its version bumped). Then it prints the held-out confusion table, a table cross-validated over all the
labelled photographs (CV_FOLDS patient-grouped folds, each judged by a gate fitted and thresholded as above on
the other folds), and the figures per collection, all with the filter as a build runs it
(`filters.image_problem` with the recipe defaults: hard refusals, then the gate).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from retinal_reason_data.curation.filters import image_problem, image_refusal
from retinal_reason_data.curation.quality_gate import GATE_FILE, GateModel, load_gate
from retinal_reason_data.ingest.image_quality import GRADABILITY_MEASURES
from retinal_reason_data.ingest.imaging import fingerprint
from retinal_reason_data.recipe import ImageFilters
from retinal_reason_data.schema import ImageRef, Modality

REPO = Path(__file__).resolve().parent.parent
GATE_PATH = REPO / "retinal_reason_data" / "data" / GATE_FILE
HELD_OUT_TENTHS = 3  # 30 % of patients held out
GOOD_REFUSED = 0.015  # share of the Good training photographs (out of fold) that the threshold refuses
PENALTY = 10.0  # L2 penalty on the standardised coefficients (10: fewer gradable camera originals refused than 1)
FOLDS = 5
CV_FOLDS = 5
QUALITY = {"0": "Good", "1": "Usable", "2": "Reject"}

FULL_SIZE = {  # collection folder -> file pattern; all are gradable but the KavithaG 'ungradable' example
    "CHASEDB1": "*.jpg",
    "IDRiD_segmentation_train": "*.jpg",
    "HRF_fullres_VascX": "*.jpg",
    "HRF_healthy_downscaled_milosz08": "*.jpg",
    "APTOS2019": "*/*.png",
    "EyePACS_kaggle_sample": "*.jpeg",
    "EyeQ_EyePACS_originals": "*.jpeg",
    "Quality_gradable_vs_ungradable_KavithaG": "*.jpg",
}
KNOWN_UNGRADABLE = {"IMG_00923.jpg", "6834_left.jpeg"}  # the source's README; EyeQ Reject


def held_out(patient: str) -> bool:
    return int(hashlib.sha256(patient.encode()).hexdigest(), 16) % 10 < HELD_OUT_TENTHS


def fold_of(patient: str) -> int:
    """The fold of a patient among FOLDS, for the threshold's out-of-fold probabilities."""
    return int(hashlib.sha256(f"fold:{patient}".encode()).hexdigest(), 16) % FOLDS


def cv_fold_of(patient: str) -> int:
    """The fold of a patient among CV_FOLDS, for the cross-validated table over all photographs."""
    return int(hashlib.sha256(f"cv:{patient}".encode()).hexdigest(), 16) % CV_FOLDS


def eyeq_photographs(realdata: Path) -> list[dict[str, object]]:
    """The labelled 256 px EyePACS photographs, each measured, with its label, patient and part."""
    folder = realdata / "EyePACS_256px_EyeQ_labelled"
    rows = []
    with (folder / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            image = fingerprint(folder / "images" / row["image"], Modality.CFP)
            rows.append(
                {
                    "image": image,
                    "quality": QUALITY[row["eyeq_quality"]],
                    "patient": row["patient_id"],
                    "held_out": held_out(row["patient_id"]),
                }
            )
    return rows


def matrix(images: list[ImageRef]) -> np.ndarray:
    return np.array([[getattr(i.quality, name) for name in GRADABILITY_MEASURES] for i in images], dtype=np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, penalty: float = PENALTY) -> tuple[np.ndarray, float]:
    """(coefficients, intercept) of an L2-penalised logistic regression on standardised x, by Newton steps."""
    design = np.hstack([np.ones((len(x), 1)), x])
    weights = np.zeros(design.shape[1])
    ridge = np.full(design.shape[1], penalty)
    ridge[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-design @ weights))
        gradient = design.T @ (p - y) + ridge * weights
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(ridge)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return weights[1:], float(weights[0])


def fit(rows: list[dict[str, object]]) -> GateModel:
    """The gate fitted on the training part (Reject against Good), its threshold from out-of-fold scores."""
    model = fit_on([r for r in rows if not r["held_out"]])
    previous = load_gate().version if GATE_PATH.exists() else 0
    return model.model_copy(update={"version": previous + 1})


def fit_on(rows: list[dict[str, object]]) -> GateModel:
    """A gate fitted on these photographs (their Good and Reject ones), its threshold the (1 - GOOD_REFUSED)
    quantile of the Good photographs' probabilities out of fold (FOLDS patient-grouped folds among them)."""
    train = [r for r in rows if r["quality"] != "Usable" and _measured(r["image"])]
    x = matrix([r["image"] for r in train])
    y = np.array([r["quality"] == "Reject" for r in train], dtype=np.float64)
    centre, scale = x.mean(axis=0), x.std(axis=0)
    z = (x - centre) / scale
    folds = np.array([fold_of(str(r["patient"])) for r in train])
    out_of_fold = np.zeros(len(train))
    for fold in range(FOLDS):
        coef, intercept = fit_logistic(z[folds != fold], y[folds != fold])
        out_of_fold[folds == fold] = 1 / (1 + np.exp(-(z[folds == fold] @ coef + intercept)))
    threshold = float(np.quantile(out_of_fold[y == 0], 1 - GOOD_REFUSED))
    coef, intercept = fit_logistic(z, y)
    return GateModel(
        version=0,
        measures=list(GRADABILITY_MEASURES),
        centre=[round(v, 6) for v in centre],
        scale=[round(v, 6) for v in scale],
        coef=[round(v, 6) for v in coef],
        intercept=round(intercept, 6),
        threshold=round(threshold, 6),
        good_reference=[round(v, 6) for v in x[y == 0].mean(axis=0)],
        fitted_on={
            "data": "EyePACS 256 px copies with EyeQ quality labels (../shared/realdata/EyePACS_256px_EyeQ_labelled)",
            "split": f"patients whose SHA-256(patient id) mod 10 < {HELD_OUT_TENTHS} held out (both eyes)",
            "target": "Reject (1) against Good (0); Usable not fitted",
            "train_photographs": {"Good": int((y == 0).sum()), "Reject": int((y == 1).sum())},
            "threshold": f"{1 - GOOD_REFUSED:.3f} quantile of the Good photographs' out-of-fold probabilities",
            "penalty": PENALTY,
        },
    )


def _measured(image: ImageRef) -> bool:
    return image.quality is not None and image.quality.detail_fine is not None


def confusion(rows: list[dict[str, object]], spec: ImageFilters) -> dict[str, Counter[str]]:
    """Held-out photographs per EyeQ label: passed, refused, and refusals by reason."""
    return _tally([r for r in rows if r["held_out"]], spec)


def cross_validated(rows: list[dict[str, object]], spec: ImageFilters) -> dict[str, Counter[str]]:
    """All photographs per EyeQ label, each judged by a gate fitted (measures, coefficients and threshold) on the
    other CV_FOLDS - 1 patient-grouped folds: every photograph unseen by the fit that judges it."""
    table: dict[str, Counter[str]] = {name: Counter() for name in QUALITY.values()}
    folds = [cv_fold_of(str(r["patient"])) for r in rows]
    with tempfile.TemporaryDirectory() as folder:
        for fold in range(CV_FOLDS):
            path = Path(folder) / f"gate_fold{fold}.json"
            model = fit_on([r for r, f in zip(rows, folds, strict=True) if f != fold])
            path.write_text(model.model_dump_json(), encoding="utf-8")
            judged = _tally(
                [r for r, f in zip(rows, folds, strict=True) if f == fold], spec.model_copy(update={"gate_model": path})
            )
            for label, counts in judged.items():
                table[label].update(counts)
    return table


def _tally(rows: list[dict[str, object]], spec: ImageFilters) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = {name: Counter() for name in QUALITY.values()}
    for row in rows:
        reason = image_problem(row["image"], None, spec)
        table[str(row["quality"])]["refused" if reason else "passed"] += 1
        if reason:
            table[str(row["quality"])][reason] += 1
    return table


def collections(realdata: Path, spec: ImageFilters) -> dict[str, list[tuple[str, str | None, str]]]:
    """Per collection folder: (file, reason or None, measure that weighed most) for each photograph."""
    found = {}
    for folder, pattern in FULL_SIZE.items():
        entries = []
        for path in sorted((realdata / folder).glob(pattern)):
            refusal = image_refusal(fingerprint(path, Modality.CFP), None, spec)
            entries.append((path.name, refusal.reason if refusal else None, refusal.measure if refusal else "-"))
        found[folder] = entries
    return found


def print_table(table: dict[str, Counter[str]]) -> None:
    print("| EyeQ label | photographs | passed | refused | share refused | refusals by reason |")
    print("|---|---|---|---|---|---|")
    for label, counts in table.items():
        total = counts["passed"] + counts["refused"]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("passed", "refused"))
        print(
            f"| {label} | {total} | {counts['passed']} | {counts['refused']} | "
            f"{counts['refused'] / max(total, 1):.1%} | {reasons} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--write", action="store_true", help="refit and store the gate file")
    args = parser.parse_args()
    if not args.realdata.is_dir():
        sys.exit(f"{args.realdata}: real-data folder not found (pass --realdata)")
    rows = eyeq_photographs(args.realdata)
    if args.write:
        model = fit(rows)
        GATE_PATH.write_text(json.dumps(model.model_dump(), indent=1) + "\n", encoding="utf-8")
        load_gate.cache_clear()
        print(f"wrote {GATE_PATH.relative_to(REPO)} version {model.version}, threshold {model.threshold}")
    spec = ImageFilters()
    print("\nEyeQ held-out part (patients never seen by the fit):\n")
    print_table(confusion(rows, spec))
    print(f"\nEyeQ, all photographs, {CV_FOLDS}-fold cross-validated by patient (each fold judged by a gate fitted")
    print("on the other folds, threshold chosen out of fold inside them):\n")
    print_table(cross_validated(rows, spec))
    print("\nFull-size collections:\n")
    print("| collection | photographs | refused | refused files (reason, measure that weighed most) |")
    print("|---|---|---|---|")
    for folder, entries in collections(args.realdata, spec).items():
        refused = [(name, reason, measure) for name, reason, measure in entries if reason]
        listed = "; ".join(f"{name} ({reason}, {measure})" for name, reason, measure in refused) or "-"
        print(f"| {folder} | {len(entries)} | {len(refused)} | {listed} |")


if __name__ == "__main__":
    main()
