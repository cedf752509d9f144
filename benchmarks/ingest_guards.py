"""What the ingest's guards against bad input cost: walking a folder, and checking each case's image files.

    .venv/bin/python benchmarks/ingest_guards.py --files 50000 --rounds 5

1. Listing a folder of N image files (`folders.listing`, as label-table adapters do): the walk now classifies
   every entry (links that loop or dangle, FIFOs, folders named like images) and keys names as bytes; the
   baseline is the walk it replaced (names from `os.scandir`, `is_file()`, sorted, the same compact listing).
2. Per case, what intake adds before fingerprinting: `_vetted` (names made storable, paths checked against the
   source's roots) and `image_file_stat` (lstat-level checks) against the plain `Path.stat()` it replaced.

The median of `--rounds` runs is printed, in microseconds per file or case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import IMAGE_SUFFIXES, RawCase, RawImage
from retinal_reason_data.ingest.sources.folders import ImageListing, _stray_name, listing
from retinal_reason_data.ingest.sources.scope import source_scope
from retinal_reason_data.ingest.stage import SourceContext, _vetted, image_file_stat
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.schema import Modality


def _baseline_names(folder: Path) -> Iterator[str]:
    """The walk before the guards (non-recursive): regular files with an image suffix, sorted by name."""
    files = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if _stray_name(entry.name):
                continue
            if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                files.append(entry.name)
    yield from sorted(files)


def _median_us(run: Callable[[], object], count: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        for index in range(args.files):
            (folder / f"{index:07d}_left.jpg").touch()
        walk_new = _median_us(lambda: listing(folder), args.files, args.rounds)
        walk_old = _median_us(lambda: ImageListing(folder, _baseline_names(folder)), args.files, args.rounds)
        paths = [folder / f"{index:07d}_left.jpg" for index in range(args.files)]
        raws = [
            RawCase(
                local_id=path.stem,
                images=[RawImage(path=path, modality=Modality.CFP)],
                labels=["0"],
                file="t.csv",
                row=i,
            )
            for i, path in enumerate(paths)
        ]
        context = SourceContext("bench", "bench", "", {}, default_ontology(), b"k")
        with source_scope([folder.parent]) as scope:

            def guarded() -> None:
                for raw in raws:
                    vetted = _vetted(raw, context, scope, Path(scratch) / "names")
                    for image in vetted.images:  # type: ignore[union-attr]
                        image_file_stat(image.path)

            check_new = _median_us(guarded, len(raws), args.rounds)
        check_old = _median_us(lambda: [raw.images[0].path.stat() for raw in raws], len(raws), args.rounds)
    print(f"listing {args.files} files: {walk_new:.2f} us a file (before the guards: {walk_old:.2f})")
    print(f"checking a case's image: {check_new:.2f} us a case (before the guards, Path.stat: {check_old:.2f})")


if __name__ == "__main__":
    main()
