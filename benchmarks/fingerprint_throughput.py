"""Fingerprinting throughput on large fundus JPEGs, against imagehash on a full decode and imagededup.

Run (imagededup needs torch; `make bench-env` makes .venv-bench with it):
    .venv-bench/bin/python benchmarks/fingerprint_throughput.py [--images 48]
Every method reads the same files in the same run, in one process ("per core"); the pool line uses
all cores.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from retinal_reason_data.imaging import HASH_DECODE_SIDE, HASH_SIDE, fingerprint, fingerprint_task
from retinal_reason_data.intake import fingerprint_pool
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.schema import Modality


def make_jpegs(folder: Path, count: int) -> list[Path]:
    """Fundus phantoms upscaled to 2000-3000 px with sensor noise, saved as camera-like JPEGs."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        width = int(rng.integers(2000, 3001))
        base = fundus_photo(index, "right" if index % 2 else "left", ["dr.moderate"], size=640)
        big = base.resize((width, int(width * 0.8)), Image.Resampling.BICUBIC)
        pixels = np.asarray(big, dtype=np.int16) + rng.integers(-3, 4, size=(big.height, big.width, 3))
        big = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        path = folder / f"fundus_{index:03d}.jpg"
        big.save(path, quality=95)
        paths.append(path)
    return paths


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (imagededup hashes in a worker pool)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def rate(label: str, paths: list[Path], work: Callable[[Path], object]) -> float:
    """Images per CPU-second (robust to other load on the machine, unlike wall time)."""
    started = cpu_seconds()
    for path in paths:
        work(path)
    per_second = len(paths) / (cpu_seconds() - started)
    print(f"  {label:<48} {per_second:7.1f} images per CPU-second")
    return per_second


def bare_reduced_decode(path: Path) -> None:
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        image.draft("RGB", (HASH_DECODE_SIDE, HASH_DECODE_SIDE))
        image.load()


def imagehash_full_decode(path: Path) -> str:
    with Image.open(path) as image:
        return str(imagehash.phash(image, hash_size=HASH_SIDE))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=48)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = make_jpegs(Path(folder), args.images)
        sizes = [Image.open(p).size for p in paths]
        megabytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        print(
            f"{len(paths)} JPEGs, {min(s[0] for s in sizes)}-{max(s[0] for s in sizes)} px wide, "
            f"{megabytes:.1f} MB each; load average {os.getloadavg()[0]:.1f}"
        )
        for path in paths:  # page cache warm for everyone
            path.read_bytes()
        ours = rate("rrd fingerprint (sha256, pHash-256, quality)", paths, lambda p: fingerprint(p, Modality.CFP))
        floor = rate("bare reduced decode (JPEG draft, same scale)", paths, bare_reduced_decode)
        full = rate("imagehash.phash(hash_size=16) on a full decode", paths, imagehash_full_decode)
        try:
            from imagededup.methods import PHash
        except ImportError as exc:
            print(f"  imagededup not importable here ({exc}); run in .venv-bench")
            dedup = None
        else:
            started = cpu_seconds()
            PHash(verbose=False).encode_images(image_dir=folder, num_enc_workers=1)
            dedup = len(paths) / (cpu_seconds() - started)
            print(f"  {'imagededup PHash().encode_images (1 worker)':<48} {dedup:7.1f} images per CPU-second")
        tasks = [(str(p), Modality.CFP) for p in paths]
        with fingerprint_pool(None) as pool:
            list(pool.map(fingerprint_task, tasks[:4])) if pool else None  # start the workers
            started = time.perf_counter()
            list(pool.map(fingerprint_task, tasks, chunksize=4)) if pool else [fingerprint_task(t) for t in tasks]
            pooled = len(paths) / (time.perf_counter() - started)
        print(f"  {'rrd fingerprint, process pool on all cores':<48} {pooled:7.1f} images/s (wall clock)")
        print(f"ours / imagehash full decode: {ours / full:.1f}x per core")
        if dedup:
            print(f"ours / imagededup: {ours / dedup:.1f}x per core")
        print(f"ours / bare reduced decode: {ours / floor:.2f} (1.0 = no overhead beyond decoding)")


if __name__ == "__main__":
    main()
