"""Fingerprinting throughput on large fundus JPEGs, against imagehash on a full decode and imagededup.

Run (imagededup needs torch; `make bench-env` makes .venv-bench with it):
    .venv-bench/bin/python benchmarks/fingerprint_throughput.py [--images 32] [--rounds 5]
Every method reads the same files in the same run, in one process on one BLAS thread ("per core"); the pool
line uses all cores. The phantoms are drawn, and imagededup (which imports torch) is run, by child processes,
so that the measuring process holds neither: drawing left a heap that slowed the NumPy steps measured after
it, and a loaded torch slowed every method.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from retinal_reason_data.ingest.imaging import (
    DRAFT_MIN_SIDE,
    draft_size,
    fingerprint,
    fingerprint_task,
    keep_buffers_in_heap,
)
from retinal_reason_data.ingest.perceptual_hash import HASH_SIDE
from retinal_reason_data.ingest.stage import ONE_THREAD, fingerprint_pool
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.schema import Modality


def camera_jpegs(folder: Path, count: int) -> list[Path]:
    """Camera-like fundus JPEGs: 3:2 frames 2000-3000 px high (EyePACS's 3888 x 2592, IDRiD's 4288 x 2848),
    the round field on black, fine correlated sensor grain in the field only, quality 94 with 4:2:0 chroma:
    about 1 MB per file, the mean of EyePACS's training download (34.99 GB for 35,126 photographs)."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        height = int(rng.integers(2000, 3001))
        width = height * 3 // 2
        disc = fundus_photo(index, "right" if index % 2 else "left", ["dr.moderate"], size=1024)
        frame = Image.new("RGB", (width, height))
        frame.paste(disc.resize((height, height), Image.Resampling.BICUBIC), ((width - height) // 2, 0))
        pixels = np.asarray(frame, dtype=np.float32)
        grain = rng.normal(0.0, 2.5, (height // 2 + 1, width // 2 + 1)).astype(np.float32)
        grain = np.asarray(Image.fromarray(grain, mode="F").resize((width, height), Image.Resampling.BILINEAR))
        lit = pixels.mean(axis=2, keepdims=True) > 12
        pixels += grain[..., None] * np.where(lit, 1.0, 0.15)
        path = folder / f"camera_{index:03d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=94)
        paths.append(path)
    return paths


def noisy_jpegs(folder: Path, count: int) -> list[Path]:
    """A harder set: 2000-3000 px wide phantoms with uniform per-pixel noise over the whole frame (black border
    included), quality 95: about 0.9 MB for half the pixels, so entropy decoding weighs twice as much."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        width = int(rng.integers(2000, 3001))
        base = fundus_photo(index, "right" if index % 2 else "left", ["dr.moderate"], size=640)
        big = base.resize((width, int(width * 0.8)), Image.Resampling.BICUBIC)
        pixels = np.asarray(big, dtype=np.int16) + rng.integers(-3, 4, size=(big.height, big.width, 3))
        big = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        path = folder / f"noisy_{index:03d}.jpg"
        big.save(path, quality=95)
        paths.append(path)
    return paths


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (imagededup hashes in a worker pool)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def bare_reduced_decode(path: Path) -> None:
    """The decode `fingerprint` does (luma only, same DCT scale) and nothing else."""
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        image.draft("L", draft_size(image.size, DRAFT_MIN_SIDE))
        image.load()


def read_alone(path: Path) -> bytes:
    """Reading the file (every method does; subtracted from "sha256" to give the hashing alone)."""
    return path.read_bytes()


def sha256_of_bytes(path: Path) -> str:
    """Reading and hashing the bytes: the hashing is the part of a fingerprint that no decoder can avoid."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def imagehash_full_decode(path: Path) -> str:
    with Image.open(path) as image:
        return str(imagehash.phash(image, hash_size=HASH_SIDE))


def imagededup_rounds(folder: Path, rounds: int) -> list[float]:
    """CPU milliseconds per image of imagededup's `PHash().encode_images` over `folder` (one worker), one figure
    a round, measured in a child process: imagededup imports torch, which slowed every method measured in a
    process that had loaded it (the bare decode by 15-20 %). Empty where imagededup is not installed."""
    command = [sys.executable, __file__, "--imagededup-in", str(folder), "--rounds", str(rounds)]
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    if child.returncode:
        print(f"  imagededup not measured: {child.stderr.strip().splitlines()[-1]}; run in .venv-bench")
        return []
    return [float(value) for value in child.stdout.split()]


def imagededup_child(folder: Path, rounds: int) -> None:
    """The child's side of `imagededup_rounds`: prints one figure a round."""
    from imagededup.methods import PHash

    logging.getLogger("imagededup.methods.hashing").setLevel(logging.WARNING)  # its INFO lines each call
    count = len(list(folder.glob("*.jpg")))
    for _ in range(rounds):
        started = cpu_seconds()
        PHash(verbose=False).encode_images(image_dir=folder, num_enc_workers=1)
        print(1000 * (cpu_seconds() - started) / count)


OURS, BARE, READ, SHA, IMAGEHASH, IMAGEDEDUP = (
    "rrd fingerprint (sha256, 3 hashes, quality)",
    "bare reduced decode (same draft, luma)",
    "reading the file alone",
    "reading the file and its sha256",
    "imagehash.phash(hash_size=16), full decode",
    "imagededup PHash().encode_images, 1 worker",
)


def measure_set(label: str, paths: list[Path], rounds: int) -> dict[str, float]:
    """Milliseconds of CPU per image, the median of `rounds` rounds. Within a round the methods take turns
    file by file (the order rotating), so that a slow moment of the machine weighs on all of them alike and
    every method meets the caches as a stream of new files leaves them; imagededup, which takes a folder,
    runs in a child process after them."""
    sizes = [Image.open(p).size for p in paths]
    megabytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    print(
        f"{label}: {len(paths)} JPEGs, {min(s[0] for s in sizes)}-{max(s[0] for s in sizes)} x "
        f"{min(s[1] for s in sizes)}-{max(s[1] for s in sizes)} px, {megabytes:.2f} MB each; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    methods: dict[str, Callable[[Path], object]] = {
        OURS: lambda p: fingerprint(p, Modality.CFP),
        BARE: bare_reduced_decode,
        READ: read_alone,
        SHA: sha256_of_bytes,
        IMAGEHASH: imagehash_full_decode,
    }
    for path in paths:  # page cache warm, and each image size's pHash maps built, for everyone
        fingerprint(path, Modality.CFP)
    per_round: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for _ in range(rounds):
        spent = dict.fromkeys(names, 0.0)
        for index, path in enumerate(paths):
            turn = index % len(names)
            for name in names[turn:] + names[:turn]:
                started = time.process_time()
                methods[name](path)
                spent[name] += time.process_time() - started
        for name in names:
            per_round[name].append(1000 * spent[name] / len(paths))
    dedup_rounds = imagededup_rounds(paths[0].parent, rounds)
    if dedup_rounds:
        per_round[IMAGEDEDUP] = dedup_rounds
    ms = {name: statistics.median(values) for name, values in per_round.items()}
    for name, each in ms.items():
        spread = f"{min(per_round[name]):.1f}-{max(per_round[name]):.1f}"
        print(f"  {name:<46} {1000 / each:6.1f} images per CPU-second ({each:5.1f} ms each; rounds {spread})")
    print(f"  ours / imagehash on a full decode: {ms[IMAGEHASH] / ms[OURS]:.2f}x per core")
    if dedup_rounds:
        print(f"  ours / imagededup: {ms[IMAGEDEDUP] / ms[OURS]:.2f}x per core")
    print(f"  ours / bare reduced decode: {ms[BARE] / ms[OURS]:.3f} (1.0 = no work beyond decoding)")
    sha = ms[SHA] - ms[READ]
    ceiling = ms[IMAGEHASH] / (ms[BARE] + sha)
    print(f"  ceiling, imagehash / (bare decode + sha256): {ceiling:.2f}x (what no perceptual hash or measure costs)")
    print(f"  work beyond the decode: {ms[OURS] - ms[BARE]:.2f} ms, of which sha256 {sha:.2f} ms")
    return ms


def pool_rate(paths: list[Path]) -> float:
    """Fingerprints per second of wall clock with the intake's process pool on every core."""
    tasks = [(str(p), Modality.CFP) for p in paths]
    with fingerprint_pool(None) as pool:
        if pool is None:
            started = time.perf_counter()
            for task in tasks:
                fingerprint_task(task)
            return len(tasks) / (time.perf_counter() - started)
        list(pool.map(fingerprint_task, tasks[:4]))  # start the workers
        started = time.perf_counter()
        list(pool.map(fingerprint_task, tasks, chunksize=4))
        return len(tasks) / (time.perf_counter() - started)


def draw(folder: Path, images: int) -> None:
    """Draw both phantom sets into `folder` (run in a child process: see the module docstring)."""
    for label, make in (("camera-like", camera_jpegs), ("noisy", noisy_jpegs)):
        (folder / label).mkdir()
        make(folder / label, images)


def main() -> None:
    if any(os.environ.get(name) != value for name, value in ONE_THREAD.items()):
        # one BLAS thread, as in the intake's pool workers: "per core" is one thread's CPU time
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ONE_THREAD})
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--draw-into", type=Path, help=argparse.SUPPRESS)  # the child that draws the phantoms
    parser.add_argument("--imagededup-in", type=Path, help=argparse.SUPPRESS)  # the child that runs imagededup
    args = parser.parse_args()
    if args.draw_into:
        draw(args.draw_into, args.images)
        return
    if args.imagededup_in:
        imagededup_child(args.imagededup_in, args.rounds)
        return
    keep_buffers_in_heap()  # as every intake worker does
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, __file__, "--images", str(args.images), "--draw-into", folder]
        subprocess.run(command, check=True)
        for label in ("camera-like", "noisy"):
            paths = sorted((Path(folder) / label).glob("*.jpg"))
            measure_set(label, paths, args.rounds)
            print(f"  rrd fingerprint, process pool on {os.cpu_count()} cores: {pool_rate(paths):.1f} images/s (wall)")


if __name__ == "__main__":
    main()
