"""Intake that holds a batch, not the collection: duplicate ids, the compact folder listing, the image cache
read a batch at a time, DuckDB's memory bounded only while a source is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retinal_reason_data.catalog import INGEST_MEMORY_LIMIT, Catalog
from retinal_reason_data.ingest import stage as intake
from retinal_reason_data.ingest.privacy import DEVELOPMENT_KEY
from retinal_reason_data.ingest.sources.base import find_image
from retinal_reason_data.ingest.sources.folders import iter_images, listing
from retinal_reason_data.ingest.stage import IngestReport, SeenIds, ensure_phantom, fingerprint_pool, ingest_source
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.recipe import PhantomSpec, SourceSpec


def _aptos(tmp_path: Path, cases: int = 12) -> SourceSpec:
    spec = SourceSpec(adapter="aptos2019", root=tmp_path / "aptos", phantom=PhantomSpec(cases=cases, seed=5))
    ensure_phantom(spec)
    return spec


def _ingest(spec: SourceSpec, catalog: Catalog) -> IngestReport:
    return ingest_source(spec, catalog, default_ontology(), DEVELOPMENT_KEY, pool=None)


def test_seen_ids_tell_repeats_across_merges() -> None:
    seen = SeenIds(merge_every=3)
    ids = [f"id{index}" for index in range(10)]
    assert all(seen.add(case_id) for case_id in ids)
    assert not any(seen.add(case_id) for case_id in ids)
    assert seen.add("id10") and not seen.add("id10") and len(seen) == 11


@pytest.mark.slow
def test_a_repeated_case_id_is_quarantined_even_when_its_first_row_was_refused(tmp_path: Path) -> None:
    spec = _aptos(tmp_path)
    table = spec.root / "train.csv"
    rows = [line.split(",") for line in table.read_text(encoding="utf-8-sig").splitlines()[1:]]
    first = rows[0][0]
    refused = next(name for name, label in rows if label == "5")  # the phantom's label outside 0-4
    with table.open("a", encoding="utf-8", newline="") as out:
        out.write(f"{first},2\r\n{refused},1\r\n")
    catalog = Catalog(tmp_path / "c.duckdb")
    report = _ingest(spec, catalog)
    quarantined = catalog.query("SELECT reason, detail FROM quarantine WHERE reason = 'duplicate_case_id'")
    assert report.quarantined["duplicate_case_id"] == 2 and len(quarantined) == 2
    assert {first, refused} == {detail.split("'")[1] for _, detail in quarantined}
    kept = catalog.get_case(f"aptos2019:{first}")
    assert kept is not None and kept.provenance.row == 2  # the first row wins
    assert catalog.get_case(f"aptos2019:{refused}") is None


@pytest.mark.slow
def test_small_batches_in_flight_two_at_a_time_give_what_one_batch_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _aptos(tmp_path, cases=16)
    with (spec.root / "train.csv").open("a", encoding="utf-8", newline="") as out:
        out.write(f"{(spec.root / 'train.csv').read_text(encoding='utf-8-sig').splitlines()[1]}\r\n")  # a repeat
    results = []
    for batch, workers in ((256, 1), (3, 2)):
        monkeypatch.setattr(intake, "BATCH", batch)
        catalog = Catalog(tmp_path / f"b{batch}.duckdb")
        with fingerprint_pool(workers) as pool:
            report = ingest_source(spec, catalog, default_ontology(), DEVELOPMENT_KEY, pool)
        quarantined = catalog.query("SELECT file, row_ref, reason, detail FROM quarantine ORDER BY row_ref")
        results.append(([case.model_dump() for case in catalog.iter_cases()], quarantined, report))
    assert results[0] == results[1] and results[0][2].quarantined["duplicate_case_id"] == 1


@pytest.mark.slow
def test_a_second_ingest_reads_fingerprints_from_the_cache_unless_the_file_changed(tmp_path: Path) -> None:
    spec = _aptos(tmp_path)
    catalog = Catalog(tmp_path / "c.duckdb")
    first = _ingest(spec, catalog)
    cases = [case.model_dump() for case in catalog.iter_cases()]
    again = _ingest(spec, catalog)
    assert again.images_fingerprinted == 0 and again.images_cached == first.images_fingerprinted == first.cases
    assert [case.model_dump() for case in catalog.iter_cases()] == cases
    touched = Path(cases[0]["images"][0]["path"])
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    third = _ingest(spec, catalog)
    assert third.images_fingerprinted == 1 and third.images_cached == first.cases - 1
    assert catalog.cached_image(str(touched), touched.stat().st_size, touched.stat().st_mtime_ns, "CFP") is not None


def test_fingerprints_of_another_hashing_version_are_not_reused(tmp_path: Path) -> None:
    spec = _aptos(tmp_path)
    path = tmp_path / "c.duckdb"
    catalog = Catalog(path)
    first = _ingest(spec, catalog)
    catalog.set_meta("fingerprint_version", "1")  # as a catalog written by an older intake
    catalog.close()
    reopened = Catalog(path)
    assert reopened.count("image_cache") == 0
    again = _ingest(spec, reopened)
    assert again.images_cached == 0 and again.images_fingerprinted == first.images_fingerprinted
    reopened.close()
    assert Catalog(path).count("image_cache") == first.images_fingerprinted  # the current version is kept


def test_duckdb_memory_is_bounded_while_a_source_is_written_and_given_back_after(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.duckdb")
    default = catalog.query("SELECT current_setting('memory_limit')")[0][0]
    with catalog.source_writer("s"):
        bounded = catalog.query("SELECT current_setting('memory_limit')")[0][0]
    with pytest.raises(RuntimeError), catalog.source_writer("s"):
        raise RuntimeError("a stopped ingest")
    assert bounded != default and bounded.split()[1] in ("MiB", "KiB") and INGEST_MEMORY_LIMIT.endswith("MB")
    assert catalog.query("SELECT current_setting('memory_limit')")[0][0] == default


def test_the_compact_listing_answers_as_a_dict_of_the_folder_would(tmp_path: Path) -> None:
    for name in (
        "A/IMG1.PNG", "A/img1.png", "B/img1.jpg", "B/x.JPEG", "c.png", "C.PNG", "._c.png", ".hidden.png",
        "Thumbs.db", "__MACOSX/z.png", "sub/__macosx/q.png", "sub/deep/Q.Tif", "notes.txt", "ünï.png", "sub/c.png",
    ):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    for recursive in (False, True):
        expected: dict[str, Path] = {}
        for path in iter_images(tmp_path, recursive):
            expected.setdefault(path.name.lower(), path)
        found = listing(tmp_path, recursive)
        assert dict(found) == expected and list(found) == list(expected) and len(found) == len(expected)
    found = listing(tmp_path, recursive=True)
    assert found["c.png"] == tmp_path / "C.PNG" and found["img1.png"] == tmp_path / "A" / "IMG1.PNG"
    assert find_image(tmp_path, "q", found) == tmp_path / "sub" / "deep" / "Q.Tif"
    assert find_image(tmp_path, "ÜNÏ", found) == tmp_path / "ünï.png"
    assert find_image(tmp_path, "notes", found) is None and "z.png" not in found
    assert dict(listing(tmp_path / "absent")) == {}


def test_pool_workers_run_numpy_on_one_thread_and_this_process_keeps_its_environment() -> None:
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    with fingerprint_pool(2) as pool:
        assert pool is not None
        assert pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result() == "1"
    assert os.environ.get("OPENBLAS_NUM_THREADS") == before
