"""Near-duplicate search time and memory: the exact multi-index Hamming search, every orientation in one pass
(`orbit_hamming`) against the seven searches it replaces, and imagededup's `find_duplicates`.

Run (imagededup needs torch; `make bench-env` makes .venv-bench with it; without it, `--skip-imagededup`):
    .venv/bin/python benchmarks/dedup_search.py --sizes 10000 100000 1000000 --skip-imagededup [--seven-up-to N]

The hashes must look like fundus hashes, or the benchmark flatters the index (fundus photographs share
their layout, so their hashes are far from uniform). So: phantom photographs are drawn and hashed as intake
does; the 16 x 16 DCT coefficients behind `near_hash` are fitted with a Gaussian (mean and shrunk
covariance), and N hashes are the signs of N draws from it; one in ten is then replaced by a copy of another
with 0-12 bits flipped (near duplicates to find), and one copy in three is also flipped or turned (a random
one of the seven other orientations). Distance percentiles of the phantoms and of the draws are printed side by
side. Every method gets the same hashes and the same threshold (`dedup.near_threshold`), and their pair sets are
compared.

Each of our searches runs in a child process (`--child`) that loads the hashes and searches them with its worker
processes; the parent samples the memory of that process tree every 20 ms: the sum of VmRSS over the child and
its workers (pages the workers share with their parent after the fork are counted in each), and the sum of
their proportional set sizes (Pss from /proc/PID/smaps_rollup: a shared page counted once, split between its
sharers). Both peaks are reported, RSS as the conservative one; the time is the search's own (after loading).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from retinal_reason_data.curation.copy_candidates import HALVES, copy_candidates
from retinal_reason_data.curation.hamming import brute_force_pairs, near_pairs, popcount_distance
from retinal_reason_data.curation.orbit_hamming import Group, orbit_pairs
from retinal_reason_data.ingest.fieldhash import HASH_SIDE, ORIENTATIONS, band_coefficients, orient, orientation_map
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.recipe import DedupSpec

DISEASES = [["dr.none"], ["dr.moderate"], ["dr.proliferative"], ["amd.wet"], ["glaucoma"], ["vasc.crvo"], ["rp"], []]


def phantom_coefficients(count: int, seed: int, side: int) -> np.ndarray:
    """(count, side * side) low DCT coefficients of phantom photographs, as fieldhash computes them."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        photo = fundus_photo(
            int(rng.integers(1 << 31)),
            "right" if index % 2 else "left",
            DISEASES[index % len(DISEASES)],
            image_seed=int(rng.integers(1 << 20)),
            size=256,
        )
        block = band_coefficients(photo.convert("L"))[0][:side, :side]
        rows.append(block.ravel())
    return np.array(rows)


def synthetic_hashes(coefficients: np.ndarray, n: int, seed: int, turned: bool = True) -> np.ndarray:
    """n fundus-like hashes (n, bits / 8) uint8, one in ten a near copy of another (0-12 bits flipped at 256),
    one copy in three of those also flipped or turned (256-bit hashes, `turned`)."""
    return synthetic_set(coefficients, n, seed, turned)[0]


def synthetic_set(coefficients: np.ndarray, n: int, seed: int, turned: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`synthetic_hashes` and the source row of each near copy (the last n // 10 rows)."""
    rng = np.random.default_rng(seed)
    mean = coefficients.mean(axis=0)
    sample = np.cov(coefficients, rowvar=False)
    covariance = 0.9 * sample + 0.1 * np.diag(np.diag(sample))  # shrinkage: fewer photographs than dimensions
    factor = np.linalg.cholesky(covariance + 1e-9 * np.eye(len(mean))).astype(np.float32)
    chunks = []
    for start in range(0, n, 100_000):
        draws = rng.standard_normal((min(100_000, n - start), len(mean)), dtype=np.float32) @ factor.T
        chunks.append(np.packbits(draws + mean.astype(np.float32) > 0, axis=1))
    hashes = np.concatenate(chunks)
    copies = n // 10
    sources = rng.integers(0, n - copies, copies)
    bits = len(mean)
    flips = np.zeros((copies, bits), dtype=bool)
    counts = rng.integers(0, 13 * bits // 256 + 1, copies)
    for row, count in enumerate(counts):
        flips[row, rng.choice(bits, count, replace=False)] = True
    hashes[n - copies :] = hashes[sources] ^ np.packbits(flips, axis=1)
    if turned and bits == 256:
        rows = np.arange(n - copies, n, 3)
        kinds = rng.integers(1, len(ORIENTATIONS), len(rows))
        for kind in range(1, len(ORIENTATIONS)):
            chosen = rows[kinds == kind]
            hashes[chosen] = orient(hashes[chosen], ORIENTATIONS[kind])
    return hashes, sources


def distance_percentiles(hashes: np.ndarray, pairs: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(hashes), pairs), rng.integers(0, len(hashes), pairs)
    keep = i != j
    d = popcount_distance(hashes[i[keep]], hashes[j[keep]])
    return [int(v) for v in np.percentile(d, [0.1, 1, 5, 50])]


def imagededup_child(hashes_path: Path, threshold: int, method: str, out_path: Path) -> None:
    """Run imagededup's find_duplicates on saved hashes and write the seconds and pairs (a child process)."""
    from imagededup.methods import PHash

    hashes = np.load(hashes_path)
    encodings = {f"{k:07d}": row.tobytes().hex() for k, row in enumerate(hashes)}
    started = time.perf_counter()
    try:
        found = PHash(verbose=False).find_duplicates(
            encoding_map=encodings,
            max_distance_threshold=threshold,
            scores=False,
            search_method=method,
            num_dist_workers=os.cpu_count() or 1,
        )
    except Exception as exc:  # why it cannot run, e.g. 256-bit hashes in its 64-bit brute force
        out_path.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return
    pairs = sorted({(min(int(a), int(b)), max(int(a), int(b))) for a, dups in found.items() for b in dups})
    out_path.write_text(json.dumps({"seconds": time.perf_counter() - started, "pairs": pairs}))


def run_imagededup(hashes: np.ndarray, threshold: int, method: str, limit: float) -> tuple[str, object]:
    """imagededup in a child process group (its own worker pool included), stopped after `limit` seconds."""
    with tempfile.TemporaryDirectory() as folder:
        hashes_path, out_path = Path(folder) / "hashes.npy", Path(folder) / "out.json"
        np.save(hashes_path, hashes)
        command = [sys.executable, __file__, "--imagededup-child", str(hashes_path), method, str(threshold)]
        child = subprocess.Popen(
            [*command, str(out_path)], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return "timeout", limit
        if not out_path.is_file():
            return "error", f"exit code {child.returncode}"
        result = json.loads(out_path.read_text())
    if "error" in result:
        return "error", result["error"]
    return "ok", (result["seconds"], {tuple(pair) for pair in result["pairs"]})


def search_child(method: str, hashes_path: Path, threshold: int, workers: int, out_path: Path) -> None:
    """One search in this process (and its workers): its seconds and pairs to `out_path` (a child process)."""
    hashes = np.load(hashes_path)
    started = time.perf_counter()
    if method == "identity":
        found = near_pairs(hashes, threshold, workers=workers)
        i, j, d = found.i, found.j, found.distance
    elif method == "one_pass":  # the group as `dedup.ORIENTATION_GROUP` (not imported: the search alone is measured)
        group = Group([orientation_map(name) for name in ORIENTATIONS])
        found = orbit_pairs(hashes, threshold, group, workers=workers)
        i, j, d = found.i, found.j, found.distance
    else:  # "seven": the identity and six turned copies, one two-set search each (dedup before issue 18)
        best: dict[int, int] = {}
        n = len(hashes)
        for orientation in ORIENTATIONS:
            if orientation == "rot270":  # rot270 pairs are rot90 pairs reversed
                continue
            other = None if orientation == "identity" else orient(hashes, orientation)
            found = near_pairs(hashes, threshold, other=other, workers=workers)
            del other
            keep = found.i != found.j
            low, high = np.minimum(found.i, found.j)[keep], np.maximum(found.i, found.j)[keep]
            for code, distance in zip((low * n + high).tolist(), found.distance[keep].tolist(), strict=True):
                best[code] = min(distance, best.get(code, distance))
        codes = np.array(sorted(best), dtype=np.int64)
        i, j = codes // max(n, 1), codes % max(n, 1)
        d = np.array([best[c] for c in codes.tolist()], dtype=np.int32)
    seconds = time.perf_counter() - started
    np.savez(out_path, i=i, j=j, d=d, seconds=seconds)


def pipeline_child(config_path: Path, out_path: Path) -> None:
    """The dedup stage's searches and verification at scale, timed stage by stage (a child process): every
    orientation of the field hashes in one pass, copy candidates, those no near match links, and the
    verification of each on real files (made when their number is known: not timed)."""
    config = json.loads(config_path.read_text())
    near, signatures = np.load(config["near"]), np.load(config["signatures"])
    family = np.load(config["family"])
    workers, stages, bounds = int(config["workers"]), {}, {}
    bounds["near_search"] = [time.time()]
    started = time.perf_counter()
    group = Group([orientation_map(name) for name in ORIENTATIONS])
    found = orbit_pairs(near, int(config["near_threshold"]), group, workers=workers)
    stages["near_search"] = time.perf_counter() - started
    bounds["near_search"].append(time.time())
    bounds["copy_search"] = [time.time()]
    started = time.perf_counter()
    candidates = copy_candidates(signatures, int(config["copy_threshold"]), workers=workers)
    stages["copy_search"] = time.perf_counter() - started
    bounds["copy_search"].append(time.time())
    started = time.perf_counter()
    root = _near_roots(len(near), found.i, found.j)
    open_pairs = root[candidates.i] != root[candidates.j]
    left, right = candidates.i[open_pairs], candidates.j[open_pairs]
    same = family[left] == family[right]
    stages["link_filter"] = time.perf_counter() - started
    making = time.perf_counter()
    from copy_scale_inputs import verification_pool

    # as `dedup._copy_matches`: OpenCV is loaded once the searches (and their forked workers) are done
    from retinal_reason_data.curation.copy_verification import DEFAULT_LIMITS
    from retinal_reason_data.curation.verify_pairs import verify_pairs

    photos = [Path(p) for p in config["photos"]]
    same_pairs, different_pairs = verification_pool(
        photos, int(same.sum()), int((~same).sum()), Path(config["pool"]), seed=7
    )
    made = time.perf_counter() - making
    paths, pairs = [], []
    same_iter, different_iter = iter(same_pairs), iter(different_pairs)
    for is_same in same.tolist():
        first, second = next(same_iter) if is_same else next(different_iter)
        pairs.append((len(paths), len(paths) + 1))
        paths += [first, second]
    bounds["verification"] = [time.time()]
    started = time.perf_counter()
    verdicts = verify_pairs(pairs, paths, DEFAULT_LIMITS, workers=workers)
    stages["verification"] = time.perf_counter() - started
    bounds["verification"].append(time.time())
    confirmed = np.array([v.is_copy for v in verdicts], dtype=bool)
    summary = {
        "near_pairs": len(found),
        "copy_candidates": len(candidates),
        "candidates_not_linked": len(left),
        "planted_pairs_to_verify": int(same.sum()),
        "other_pairs_to_verify": int((~same).sum()),
        "confirmed_of_planted": int((confirmed & same).sum()),
        "confirmed_of_other": int((confirmed & ~same).sum()),
        "stages": stages,
        "seconds": sum(stages.values()),
        "pool_seconds_not_counted": made,
        "bounds": bounds,
    }
    out_path.write_text(json.dumps(summary))


def _near_roots(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Per row, the smallest row it is linked to by near pairs (connected components, label propagation)."""
    root = np.arange(n)
    for _ in range(64):  # near clusters are small: a few rounds settle them
        low = np.minimum(root[i], root[j])
        changed = (root[i] != low) | (root[j] != low)
        if not changed.any():
            return root
        np.minimum.at(root, i, low)
        np.minimum.at(root, j, low)
        root = root[root]
    return root


def _descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) of one process in kB; zeros when it has just ended."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            rss = next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            pss = next((int(line.split()[1]) for line in handle if line.startswith("Pss:")), 0)
    except OSError:
        pass
    return rss, pss


def run_measured(
    command: list[str], interval: float = 0.02, series: list[tuple[float, float, float]] | None = None
) -> tuple[int, float, float, float]:
    """Run `command`; (exit code, peak summed RSS MB, peak summed Pss MB, CPU seconds) of its process tree;
    `series` gets every sample (time, RSS MB, Pss MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = subprocess.Popen(command)
    peak_rss = peak_pss = 0
    while child.poll() is None:
        samples = [_memory_kb(pid) for pid in _descendants(child.pid)]
        rss, pss = sum(s[0] for s in samples), sum(s[1] for s in samples)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        if series is not None:
            series.append((time.time(), rss / 1024, pss / 1024))
        time.sleep(interval)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and the workers it waited for
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return child.returncode, peak_rss / 1024, peak_pss / 1024, cpu


def measured_search(method: str, hashes: np.ndarray, threshold: int, workers: int) -> dict[str, object]:
    """A search in a child process: seconds, peak tree memory, and its pairs (as a set of (i, j, d))."""
    with tempfile.TemporaryDirectory() as folder:
        hashes_path, out_path = Path(folder) / "hashes.npy", Path(folder) / "out.npz"
        np.save(hashes_path, hashes)
        command = [sys.executable, __file__, "--child", method, str(hashes_path), str(threshold), str(workers)]
        code, rss, pss, cpu = run_measured([*command, str(out_path)])
        if code != 0:
            return {"error": f"exit code {code}"}
        out = np.load(out_path)
        pairs = set(zip(out["i"].tolist(), out["j"].tolist(), out["d"].tolist(), strict=True))
        return {"seconds": float(out["seconds"]), "rss_mb": rss, "pss_mb": pss, "cpu": cpu, "pairs": pairs}


def run_pipeline(args: argparse.Namespace, coefficients: np.ndarray) -> None:
    """`--pipeline`: the copy signatures modelled on real photographs, then per size the measured child."""
    from copy_scale_inputs import (
        REFRAMING,
        copy_distances,
        plant_copies,
        projections,
        synthetic_signatures,
    )
    from PIL import Image

    copy_threshold = DedupSpec().copy_threshold
    folder = args.realdata / "EyePACS_256px_EyeQ_labelled" / "images"
    photos = sorted(folder.glob("*.jpeg"))
    started = time.perf_counter()
    images = []
    for path in photos:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    real = projections(images)
    del images
    photometric = copy_distances(photos[:300], ("photometric", "resample"), seed=1)
    reframing = copy_distances(photos[300:1000], REFRAMING, seed=2)
    real_bits = np.packbits(real > 0, axis=1)
    print(f"\ncopy signatures of {len(photos)} EyePACS photographs in {time.perf_counter() - started:.0f} s")
    for name, half in zip(("whole", "inner"), HALVES, strict=True):
        percentiles = distance_percentiles(real_bits[:, half], 100_000, 4)
        print(f"  distance percentiles 0.1/1/5/50 %, real, {name} half: {percentiles}")
    for label, values in (("photometric/resample", photometric), ("re-framing kinds", reframing)):
        closer = np.array(values).min(axis=1)
        share = np.mean(closer <= copy_threshold)
        median = np.median(closer)
        print(f"  copies, {label}: closer half's distance median {median:.0f}, <= {copy_threshold}: {share:.3f}")
    for n in args.sizes:
        near, sources = synthetic_set(coefficients, n, seed=n)
        signatures = synthetic_signatures(real, n, seed=n + 1)
        distinct = signatures[: n - len(sources)]
        halves = [distance_percentiles(distinct[:, half], 100_000, 5) for half in HALVES]
        print(f"\nn = {n:,}: drawn signatures, whole / inner half {halves[0]} / {halves[1]}")
        family = plant_copies(near, signatures, sources, photometric, reframing, args.reframed, seed=n + 2)
        with tempfile.TemporaryDirectory() as tmp:
            folder_path = Path(tmp)
            for name, array in (("near", near), ("signatures", signatures), ("family", family)):
                np.save(folder_path / f"{name}.npy", array)
            config = {
                "near": str(folder_path / "near.npy"),
                "signatures": str(folder_path / "signatures.npy"),
                "family": str(folder_path / "family.npy"),
                "near_threshold": args.threshold,
                "copy_threshold": copy_threshold,
                "workers": args.workers,
                "photos": [str(p) for p in photos],
                "pool": str(folder_path / "pool"),
            }
            (folder_path / "config.json").write_text(json.dumps(config))
            out = folder_path / "out.json"
            command = [sys.executable, __file__, "--pipeline-child", str(folder_path / "config.json"), str(out)]
            series: list[tuple[float, float, float]] = []
            code, rss, pss, cpu = run_measured(command, series=series)
            if code != 0:
                print(f"  pipeline: exit code {code}")
                continue
            summary = json.loads(out.read_text())
        peaks = {}
        for stage, (begin, end) in summary.pop("bounds").items():
            inside = [(r, p) for t, r, p in series if begin <= t <= end]
            peaks[stage] = (max((r for r, _ in inside), default=0), max((p for _, p in inside), default=0))
        print("  peak RSS / Pss MB by stage: " + ", ".join(f"{k} {r:.0f} / {p:.0f}" for k, (r, p) in peaks.items()))
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in summary.pop("stages").items())
        print(
            f"  pipeline ({args.workers} processes): {summary['seconds']:.1f} s ({stages}); peak RSS {rss:.0f} MB, "
            f"Pss {pss:.0f} MB, CPU {cpu:.1f} s (tree, files for verification included), load "
            f"{os.getloadavg()[0]:.1f}"
        )
        print(f"  {summary}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--pipeline-child":
        pipeline_child(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        search_child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6]))
        return
    if len(sys.argv) == 6 and sys.argv[1] == "--imagededup-child":
        imagededup_child(Path(sys.argv[2]), int(sys.argv[4]), sys.argv[3], Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--threshold", type=int, default=DedupSpec().near_threshold)
    parser.add_argument("--bits", type=int, choices=[64, 256], default=256, help="64: imagededup's own hash size")
    parser.add_argument("--phantoms", type=int, default=600)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--imagededup-limit", type=float, default=600.0, help="seconds before it is stopped")
    parser.add_argument("--brute-force-up-to", type=int, default=10_000)
    parser.add_argument("--skip-imagededup", action="store_true", help="e.g. at sizes where it did not finish")
    parser.add_argument("--seven-up-to", type=int, default=100_000, help="largest size for the seven searches")
    parser.add_argument("--methods", nargs="+", default=["identity", "one_pass", "seven"])
    parser.add_argument(
        "--pipeline", action="store_true", help="the dedup stage at each size: one pass, copy candidates, verification"
    )
    parser.add_argument("--reframed", type=int, default=1000, help="re-framed copies planted (--pipeline)")
    parser.add_argument("--realdata", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realdata")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.2f}; threshold {args.threshold} on {args.bits}-bit hashes")
    started = time.perf_counter()
    coefficients = phantom_coefficients(args.phantoms, seed=1, side=HASH_SIDE if args.bits == 256 else 8)
    phantom_hashes = np.packbits(coefficients > 0, axis=1)
    print(f"{args.phantoms} phantom photographs hashed in {time.perf_counter() - started:.0f} s")
    print(f"  distance percentiles 0.1/1/5/50 %, phantoms: {distance_percentiles(phantom_hashes, 100_000, 2)}")
    if args.pipeline:
        run_pipeline(args, coefficients)
        return
    imagededup_gave_up = False
    for n in args.sizes:
        hashes = synthetic_hashes(coefficients, n, seed=n)
        print(f"\nn = {n:,}: draws {distance_percentiles(hashes[: n - n // 10], 100_000, 3)}")
        results: dict[str, dict[str, object]] = {}
        for method in args.methods:
            if method == "seven" and (n > args.seven_up_to or args.bits != 256):
                continue
            if method == "one_pass" and args.bits != 256:
                continue
            results[method] = result = measured_search(method, hashes, args.threshold, args.workers)
            if "error" in result:
                print(f"  {method}: {result['error']}")
                continue
            print(
                f"  {method} ({args.workers} processes): {result['seconds']:.2f} s, {len(result['pairs']):,} pairs, "
                f"peak RSS {result['rss_mb']:.0f} MB, Pss {result['pss_mb']:.0f} MB, CPU {result['cpu']:.1f} s "
                f"(process tree; CPU includes loading the hashes), load {os.getloadavg()[0]:.1f}"
            )
        if "seven" in results and "one_pass" in results and "pairs" in results["seven"]:
            same = results["seven"]["pairs"] == results["one_pass"].get("pairs")
            print(f"  one pass and seven searches: identical pairs and distances: {same}")
        found = {(i, j) for i, j, _ in results.get("identity", {}).get("pairs", set())}  # type: ignore[attr-defined]
        if n <= args.brute_force_up_to:
            started = time.perf_counter()
            reference = brute_force_pairs(hashes, args.threshold)
            brute = time.perf_counter() - started
            same = reference.as_set() == found
            print(f"  brute force (numpy, 1 process): {brute:.2f} s, identical pairs: {same}")
        if args.skip_imagededup:
            continue
        if imagededup_gave_up:
            print("  imagededup: not run (it did not finish at a smaller size)")
            continue
        for method in ("brute_force_cython", "bktree"):
            status, value = run_imagededup(hashes, args.threshold, method, args.imagededup_limit)
            if status == "ok":
                seconds, pairs = value  # type: ignore[misc]
                print(f"  imagededup {method}: {seconds:.1f} s, identical pairs: {pairs == found}")
            elif status == "timeout":
                print(f"  imagededup {method}: stopped after {args.imagededup_limit:.0f} s")
                imagededup_gave_up = method == "bktree"
            else:
                print(f"  imagededup {method}: cannot run: {value}")


if __name__ == "__main__":
    main()
