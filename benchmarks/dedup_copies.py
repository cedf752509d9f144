"""Deduplication of real photographs and of their copies as re-releases make them, through the real intake
(`imaging.fingerprint`) and `curation.dedup.deduplicate`, with the aims of issue 18 marked met or not met.

    .venv/bin/python benchmarks/dedup_copies.py [--realdata ../shared/realdata] [--per-kind 300] [--workers 2]
        [--json out.json] [--only eyepacs256 fullsize pairs ffa]

- **EyePACS 256 px** (`EyePACS_256px_EyeQ_labelled`, 1,614 photographs): for each copy kind of
  `phantoms.copies.COPY_KINDS`, `--per-kind` photographs (a fixed random choice) get three copies of that kind
  (brightness +-15 % and JPEG 70-95 on top; saved as PNG, so the copy is exactly what `make_copy` made), each
  copy its own patient; one `deduplicate` run per kind over all 1,614 originals (with the pseudonyms and eyes the
  EyePACS adapter gives them) and that kind's copies. Pair recall: the share of true pairs (an original and its
  copy, two copies of one photograph) put in one cluster, as the issue measured it; false merges: pairs of
  different photographs in one cluster.
- **Full-size photographs** (EyePACS_kaggle_sample, IDRiD, APTOS, HRF, CHASE_DB1): one copy of each
  re-framing, crop and rotation kind per photograph (saved as JPEG quality 95, as a re-release would), one run
  per kind over the originals and that kind's copies.
- **Two eyes of one patient**: the EyePACS 256 px originals (497 patients with both eyes), the CHASE_DB1 and
  EyePACS_kaggle_sample pairs, with the pseudonyms and eyes their adapters give (the other-eye rule applies),
  and again each photograph as its own patient of unknown eye (nothing tells deduplication they are two eyes).
- **FFA frames** (`FFA_huapu4`, 180 frames at several phases, many of one eye): every frame its own patient;
  any merge of two different frames is a false merge (byte-identical files are one image, not a merge).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from retinal_reason_data.curation.dedup import DedupResult, deduplicate
from retinal_reason_data.ingest.imaging import fingerprint_task, keep_buffers_in_heap
from retinal_reason_data.ingest.privacy import DEVELOPMENT_KEY, pseudonymise
from retinal_reason_data.phantoms.copies import COPY_KINDS, make_copy
from retinal_reason_data.recipe import DedupSpec
from retinal_reason_data.schema import Case, Eye, ImageRef, Modality, Provenance

REPO = Path(__file__).resolve().parents[1]
FULL_KINDS = ("crop8", "crop10", "rot5", "rot10", "rot30", "pad_square", "bbox_crop")
FULL_FOLDERS = (
    "EyePACS_kaggle_sample",
    "IDRiD_segmentation_train",
    "APTOS2019",
    "HRF_fullres_VascX",
    "HRF_healthy_downscaled_milosz08",
    "CHASEDB1",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
# the aims of issue 18: (kinds, least pair recall)
AIMS = (
    (("crop8", "crop10"), 0.95, "crops up to 10 % a side"),
    (("rot5", "rot10"), 0.95, "rotations up to 10 degrees"),
    (("rot30",), 0.90, "rotations up to 30 degrees"),
    (("photometric", "resample"), 0.99, "photometric and resampling copies"),
    (("pad_square", "bbox_crop"), 0.95, "re-framing (padded to a square, cropped to the field's box): read as crops"),
)


@dataclass(frozen=True)
class Photo:
    """One original photograph: a key naming it, its file, and who it shows (`namespace`: whose patient ids;
    EyePACS's are one namespace whatever the folder, as its adapters give them)."""

    key: str
    path: Path
    source: str
    patient: str
    eye: Eye
    namespace: str = ""


# photographs that the real-data folder itself holds twice (found while building this benchmark and the
# verification's): one family each, their pair a true pair ("re-release")
RE_RELEASES = (
    ("eyepacs256/13_left.jpeg", "EyePACS_kaggle_sample/13_left.jpeg"),  # the 256 px EyeQ copy of a camera file
    ("eyepacs256/13_right.jpeg", "EyePACS_kaggle_sample/13_right.jpeg"),
    (  # one FFA frame in two folders of its repository
        "ffa/01.phase_identification/venous_phase/BRVO0594.jpg",
        "ffa/03.area_segmentation/voc_data/JPEGImages/11-3 _026.jpg",
    ),
)


@dataclass
class Family:
    """The images of one photograph: the original's sha256 and its copies' (with their kinds)."""

    photo: Photo
    original: str
    copies: dict[str, str] = field(default_factory=dict)  # sha256 -> kind


def eyepacs_256(realdata: Path) -> list[Photo]:
    folder = realdata / "EyePACS_256px_EyeQ_labelled"
    photos = []
    with open(folder / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            eye = Eye.LEFT if row["eye"] == "left" else Eye.RIGHT
            path = folder / "images" / row["image"]
            photos.append(Photo(f"eyepacs256/{row['image']}", path, "eyepacs", row["patient_id"], eye, "eyepacs"))
    return photos


def eyeq_originals(realdata: Path) -> list[Photo]:
    """The EyePACS camera originals of `EyeQ_EyePACS_originals` (116_right.jpeg ...)."""
    photos = []
    for path in sorted((realdata / "EyeQ_EyePACS_originals").glob("*.jpeg")):
        patient, side = path.stem.split("_")
        eye = Eye.LEFT if side == "left" else Eye.RIGHT
        photos.append(Photo(f"EyeQ_EyePACS_originals/{path.name}", path, "eyeq_originals", patient, eye, "eyepacs"))
    return photos


def full_size(realdata: Path) -> list[Photo]:
    photos = []
    for name in FULL_FOLDERS:
        for path in sorted((realdata / name).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            patient, eye = path.stem, Eye.UNKNOWN
            if name == "CHASEDB1":  # Image_01L.jpg: child 01, left eye
                patient, eye = path.stem[:-1], Eye.LEFT if path.stem.endswith("L") else Eye.RIGHT
            elif name == "EyePACS_kaggle_sample":  # 10_left.jpeg
                patient, side = path.stem.split("_")
                eye = Eye.LEFT if side == "left" else Eye.RIGHT
            namespace = "eyepacs" if name == "EyePACS_kaggle_sample" else name.lower()
            key = f"{name}/{path.relative_to(realdata / name)}"
            photos.append(Photo(key, path, name.lower(), patient, eye, namespace))
    return photos


def ffa_frames(realdata: Path) -> list[Photo]:
    folder = realdata / "FFA_huapu4" / "origin_data"
    paths = sorted(p for p in folder.rglob("*.jpg") if "SegmentationClass" not in str(p))
    return [
        Photo(f"ffa/{p.relative_to(folder)}", p, "ffa", str(p.relative_to(folder)), Eye.UNKNOWN, "ffa") for p in paths
    ]


def fingerprint_all(paths: Iterable[Path], modality: Modality, workers: int) -> dict[Path, ImageRef]:
    """ImageRefs by path, through the intake's own worker task."""
    paths = sorted(set(paths))
    tasks = [(str(p), modality) for p in paths]
    with ProcessPoolExecutor(workers, initializer=keep_buffers_in_heap) as pool:
        results = list(pool.map(fingerprint_task, tasks, chunksize=16))
    refs = {}
    for path, (ref, _) in zip(paths, results, strict=True):
        if isinstance(ref, ImageRef):
            refs[path] = ref
        else:
            print(f"  refused by intake: {path}: {ref}", file=sys.stderr)
    return refs


def _copy_task(task: tuple[str, str, str, str, str]) -> tuple[str, str, str]:
    source, kind, seed, out, image_format = task
    with Image.open(source) as image:
        copied, _ = make_copy(image.convert("RGB"), kind, random.Random(seed))
    if image_format == "PNG":
        copied.save(out, format="PNG", compress_level=1)
    else:
        copied.save(out, format="JPEG", quality=95)
    return source, kind, out


def make_copies(
    jobs: list[tuple[Photo, str, int]], folder: Path, image_format: str, workers: int
) -> list[tuple[Photo, str, Path]]:
    """(photo, kind, copy number) -> the copy's file, made by `make_copy` with a seed of its own."""
    suffix = ".png" if image_format == "PNG" else ".jpg"
    tasks, owners = [], []
    for photo, kind, number in jobs:
        name = photo.key.replace("/", "__")
        out = folder / f"{name}.{kind}.{number}{suffix}"
        tasks.append((str(photo.path), kind, f"issue18:{photo.key}:{kind}:{number}", str(out), image_format))
        owners.append((photo, kind, out))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_copy_task, tasks, chunksize=4))
    return owners


def _case(case_id: str, source: str, patient: str, eye: Eye, image: ImageRef) -> Case:
    return Case(
        case_id=case_id,
        source=source,
        patient_id=patient,
        eye=eye,
        images=[image],
        provenance=Provenance(file=image.path, row=1, licence="benchmark"),
    )


def original_cases(photos: list[Photo], refs: dict[Path, ImageRef], patients: str) -> list[Case]:
    """One case per original. `patients`: "adapter" (the pseudonym and eye the source's adapter gives), or
    "distinct" (each photograph its own patient, eye unknown)."""
    cases = []
    for photo in photos:
        if photo.path not in refs:
            continue
        if patients == "adapter":
            patient, eye = pseudonymise(photo.namespace or photo.source, photo.patient, DEVELOPMENT_KEY), photo.eye
        else:
            patient, eye = pseudonymise("distinct", photo.key, DEVELOPMENT_KEY), Eye.UNKNOWN
        cases.append(_case(f"{photo.source}:{photo.key}", photo.source, patient, eye, refs[photo.path]))
    return cases


def copy_cases(copies: list[tuple[Photo, str, Path]], refs: dict[Path, ImageRef]) -> list[Case]:
    """One case per copy, each its own patient of unknown eye, in a source of its own."""
    return [
        _case(
            f"copies:{path.name}", "copies", pseudonymise("copies", path.name, DEVELOPMENT_KEY), Eye.UNKNOWN, refs[path]
        )
        for _, _, path in copies
        if path in refs
    ]


@dataclass
class Outcome:
    """What one `deduplicate` run did to a labelled set of images."""

    true_pairs: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # kind -> pairs
    found_pairs: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # kind -> pairs in one cluster
    original_pairs: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # kind -> original-copy pairs
    found_original_pairs: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # ... in one cluster
    false_merges: list[tuple[str, str]] = field(default_factory=list)  # photo keys of families merged
    seconds: float = 0.0
    match_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # Match.kind -> count


def evaluate(result: DedupResult, families: list[Family], seconds: float) -> Outcome:
    """Pair recall per copy kind (true pairs in one cluster) and the false merges (pairs of families)."""
    cluster = {str(row["sha256"]): str(row["near_cluster"]) for row in result.image_rows}
    outcome = Outcome(seconds=seconds)
    outcome.match_kinds["checked"] = getattr(result, "copy_checks", 0)
    outcome.match_kinds["refused"] = getattr(result, "copies_refused", 0)
    family_of: dict[str, str] = {}
    for family in families:
        members = [(family.original, "original"), *family.copies.items()]
        for sha, _ in members:
            family_of[sha] = family.photo.key
        for index, (sha_a, kind_a) in enumerate(members):
            for sha_b, kind_b in members[index + 1 :]:
                if sha_a == sha_b:
                    continue  # a copy that came out byte-identical (none expected): not a pair of files
                kind = kind_b if kind_a == "original" else kind_a
                together = cluster.get(sha_a) == cluster.get(sha_b) is not None
                outcome.true_pairs[kind] += 1
                outcome.found_pairs[kind] += together
                if kind_a == "original":
                    outcome.original_pairs[kind] += 1
                    outcome.found_original_pairs[kind] += together
    by_cluster: dict[str, set[str]] = defaultdict(set)
    for sha, key in family_of.items():
        if sha in cluster:
            by_cluster[cluster[sha]].add(key)
    for keys in by_cluster.values():
        ordered = sorted(keys)
        outcome.false_merges += [(a, b) for n, a in enumerate(ordered) for b in ordered[n + 1 :]]
    for row in result.match_rows:
        outcome.match_kinds[str(row.get("kind"))] += 1
    return outcome


VERIFY_NEAR: list[bool] = [False]  # --verify-near: near matches too must pass copy verification


def run_dedup(cases: list[Case], spec: DedupSpec) -> tuple[DedupResult, float]:
    started = time.perf_counter()
    result = deduplicate(cases, spec, verify_near=True) if VERIFY_NEAR[0] else deduplicate(cases, spec)
    return result, time.perf_counter() - started


def _families(photos: list[Photo], refs: dict[Path, ImageRef], copies: list[tuple[Photo, str, Path]]) -> list[Family]:
    """One family per photograph and its copies; the folder's own re-releases (`RE_RELEASES`) join the family of
    the first of their group, as copies of kind "re-release"."""
    head = {key: group[0] for group in RE_RELEASES for key in group}
    present = {p.key for p in photos if p.path in refs}
    families: dict[str, Family] = {}
    for photo in photos:
        if photo.path not in refs:
            continue
        owner = head.get(photo.key, photo.key)
        owner = owner if owner in present else photo.key
        if owner == photo.key:
            families.setdefault(photo.key, Family(photo, refs[photo.path].sha256))
    for photo in photos:
        owner = head.get(photo.key, photo.key)
        if photo.path in refs and owner != photo.key and owner in families:
            families[owner].copies[refs[photo.path].sha256] = "re-release"
    for photo, kind, path in copies:
        if path in refs and photo.key in families:
            families[photo.key].copies[refs[path].sha256] = kind
    return list(families.values())


def _is_other_eye(a: str, b: str, photos: dict[str, Photo]) -> bool:
    first, second = photos.get(a), photos.get(b)
    same_patient = first and second and (first.namespace, first.patient) == (second.namespace, second.patient)
    return bool(same_patient and first.eye != second.eye)


def copies_section(
    name: str,
    photos: list[Photo],
    kinds: Iterable[str],
    copies_each: int,
    per_kind: int | None,
    image_format: str,
    folder: Path,
    spec: DedupSpec,
    workers: int,
) -> dict[str, dict[str, object]]:
    """One run per kind: every original and the copies of that kind of `per_kind` photographs (all if None)."""
    started = time.perf_counter()
    refs = fingerprint_all([p.path for p in photos], Modality.CFP, workers)
    print(f"\n## {name}: {len(refs)} originals fingerprinted in {time.perf_counter() - started:.1f} s")
    by_key = {p.key: p for p in photos}
    rows: dict[str, dict[str, object]] = {}
    for kind in kinds:
        chosen = photos if per_kind is None else random.Random(f"choice:{kind}").sample(photos, per_kind)
        jobs = [(photo, kind, number) for photo in chosen for number in range(copies_each)]
        started = time.perf_counter()
        copies = make_copies(jobs, folder, image_format, workers)
        made = time.perf_counter() - started
        started = time.perf_counter()
        refs.update(fingerprint_all([path for _, _, path in copies], Modality.CFP, workers))
        fingerprinted = time.perf_counter() - started
        cases = original_cases(photos, refs, "adapter") + copy_cases(copies, refs)
        result, seconds = run_dedup(cases, spec)
        outcome = evaluate(result, _families(photos, refs, copies), seconds)
        true, found = outcome.true_pairs[kind], outcome.found_pairs[kind]
        originals = outcome.original_pairs[kind]
        with_original = outcome.found_original_pairs[kind] / originals if originals else None
        other_eyes = sum(_is_other_eye(a, b, by_key) for a, b in outcome.false_merges)
        rows[kind] = {
            "photos": len(chosen),
            "copies": len(copies),
            "true_pairs": true,
            "pairs_in_one_cluster": found,
            "recall": found / true if true else None,
            "recall_original_copy": with_original,
            "false_merges": len(outcome.false_merges),
            "false_merges_other_eye": other_eyes,
            "false_merge_examples": outcome.false_merges[:5],
            "matches_by_kind": dict(outcome.match_kinds),
            "dedup_seconds": round(seconds, 2),
        }
        print(
            f"  {kind:12s} photos {len(chosen):4d} copies {len(copies):4d} pairs {true:5d} "
            f"recall {found / true if true else float('nan'):.3f} "
            f"(original-copy {with_original if with_original is not None else float('nan'):.3f}) "
            f"false merges {len(outcome.false_merges)} "
            f"(other eye {other_eyes}) matches {dict(outcome.match_kinds)} "
            f"[copies {made:.0f} s, intake {fingerprinted:.0f} s, dedup {seconds:.1f} s]"
        )
        for path in [p for _, _, p in copies]:
            path.unlink(missing_ok=True)
    return rows


def distinct_section(name: str, photos: list[Photo], spec: DedupSpec, workers: int, modality: Modality) -> dict:
    """Originals only, with the adapters' pseudonyms and eyes, then each its own patient: every merge of two
    different photographs is false; those of two eyes of one patient are counted apart."""
    refs = fingerprint_all([p.path for p in photos], modality, workers)
    by_key = {p.key: p for p in photos}
    pairs_both_eyes = len(
        {(q.patient, q.namespace) for q in photos if q.eye == Eye.RIGHT}
        & {(q.patient, q.namespace) for q in photos if q.eye == Eye.LEFT}
    )
    out: dict[str, object] = {"photos": len(refs), "left_right_pairs": pairs_both_eyes}
    print(f"\n## {name}: {len(refs)} photographs, {pairs_both_eyes} patients with both eyes")
    for patients in ("adapter", "distinct"):
        result, seconds = run_dedup(original_cases(photos, refs, patients), spec)
        outcome = evaluate(result, _families(photos, refs, []), seconds)
        identical = {ref.sha256 for ref in refs.values()}
        other_eyes = [(a, b) for a, b in outcome.false_merges if _is_other_eye(a, b, by_key)]
        out[patients] = {
            "re_releases": outcome.true_pairs.get("re-release", 0),
            "re_releases_found": outcome.found_pairs.get("re-release", 0),
            "false_merges": len(outcome.false_merges),
            "false_merges_other_eye": len(other_eyes),
            "examples": outcome.false_merges[:8],
            "distinct_files": len(identical),
            "matches_by_kind": dict(outcome.match_kinds),
            "dedup_seconds": round(seconds, 2),
        }
        print(
            f"  patients {patients:8s}: the folder's own re-releases found "
            f"{outcome.found_pairs.get('re-release', 0)} of {outcome.true_pairs.get('re-release', 0)}; false merges "
            f"{len(outcome.false_merges)} (two eyes of one patient {len(other_eyes)}), matches "
            f"{dict(outcome.match_kinds)}, dedup {seconds:.1f} s; examples {outcome.false_merges[:4]}"
        )
    return out


def aims_table(eyepacs: dict, fullsize: dict, distinct: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(aim, measured, met / not met) rows."""
    rows = []
    for kinds, least, words in AIMS:
        for label, section in (("EyePACS 256 px", eyepacs), ("full-size", fullsize)):
            measured = [(k, section[k]["recall"]) for k in kinds if k in section and section[k]["recall"] is not None]
            if not measured:
                continue
            worst = min(r for _, r in measured)
            shown = ", ".join(f"{k} {r:.3f}" for k, r in measured)
            rows.append((f"{words}, {label}: recall >= {least:.2f}", shown, "met" if worst >= least else "not met"))
    merges = sum(int(s["false_merges"]) for sec in (eyepacs, fullsize) for s in sec.values())
    for section in distinct.values():
        for patients in ("adapter", "distinct"):
            merges += int(section[patients]["false_merges"])
    other_eye = sum(
        int(section[p]["false_merges_other_eye"]) for section in distinct.values() for p in ("adapter", "distinct")
    ) + sum(int(s["false_merges_other_eye"]) for sec in (eyepacs, fullsize) for s in sec.values())
    rows.append(
        (
            "0 false merges among distinct photographs (copy runs, originals, FFA)",
            str(merges),
            "met" if merges == 0 else "not met",
        )
    )
    rows.append(
        (
            "0 merges of two eyes of one patient (with and without pseudonyms)",
            str(other_eye),
            "met" if other_eye == 0 else "not met",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--per-kind", type=int, default=300, help="EyePACS 256 px photographs copied per kind")
    parser.add_argument("--kinds", nargs="+", default=list(COPY_KINDS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", nargs="+", default=["eyepacs256", "fullsize", "pairs", "ffa"])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--verify-near", action="store_true", help="near matches too must pass copy verification")
    parser.add_argument("--full-copies", type=int, default=1, help="copies of each kind per full-size photograph")
    parser.add_argument("--copy-threshold", type=int, help="dedup.copy_threshold (default: the recipe's)")
    args = parser.parse_args()
    VERIFY_NEAR[0] = args.verify_near
    spec = DedupSpec() if args.copy_threshold is None else DedupSpec(copy_threshold=args.copy_threshold)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; dedup defaults {spec.model_dump()}")
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="dedup_copies_") as tmp:
        folder = Path(tmp)
        eyepacs = eyepacs_256(args.realdata)
        if "eyepacs256" in args.only:
            figures["eyepacs256"] = copies_section(
                "EyePACS 256 px, three copies each",
                eyepacs,
                args.kinds,
                3,
                args.per_kind,
                "PNG",
                folder,
                spec,
                args.workers,
            )
        fullsize = full_size(args.realdata)
        if "fullsize" in args.only:
            kinds = [k for k in FULL_KINDS if k in args.kinds]
            figures["fullsize"] = copies_section(
                f"Full-size photographs, {args.full_copies} copies each",
                fullsize,
                kinds,
                args.full_copies,
                None,
                "JPEG",
                folder,
                spec,
                args.workers,
            )
        distinct: dict[str, dict] = {}
        if "pairs" in args.only:
            everything = eyepacs + fullsize + eyeq_originals(args.realdata)
            distinct["cfp_originals"] = distinct_section(
                "Colour photographs: EyePACS 256 px, full-size, EyePACS camera originals",
                everything,
                spec,
                args.workers,
                Modality.CFP,
            )
        if "ffa" in args.only:
            distinct["ffa"] = distinct_section(
                "FFA frames", ffa_frames(args.realdata), spec, args.workers, Modality.FFA
            )
        figures["distinct"] = distinct
    if "eyepacs256" in figures and "fullsize" in figures and "pairs" in args.only:
        print("\n## Aims of issue 18\n\n| aim | measured | |\n|---|---|---|")
        for aim, measured, status in aims_table(figures["eyepacs256"], figures["fullsize"], distinct):
            print(f"| {aim} | {measured} | {status} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
