"""Copy signature: copies of real photographs (crops into the field, turns by any angle, mirrors, re-framing,
resampling, exposure) stay within the recipe's copy threshold of their photograph; other photographs do not;
the rim fit finds the same field in a cropped or turned copy; copy_candidates is the exact Hamming search."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from retinal_reason_data.curation.copy_candidates import HALVES, closer_half_distance, copy_candidates, signature_matrix
from retinal_reason_data.curation.hamming import brute_force_pairs, hex_to_bytes, popcount_distance
from retinal_reason_data.ingest.copy_signature import (
    _UNIT_X,
    _UNIT_Y,
    HALF_BITS,
    SIGNATURE_BITS,
    copy_signature,
    frame_field,
    pictured_samples,
    signature_geometry,
)
from retinal_reason_data.ingest.field_rim import fit_rim, fit_rim_and_edges
from retinal_reason_data.ingest.fieldhash import prepare
from retinal_reason_data.ingest.imaging import fingerprint
from retinal_reason_data.phantoms.copies import COPY_KINDS, make_copy
from retinal_reason_data.phantoms.images import oct_bscan
from retinal_reason_data.recipe import DedupSpec
from retinal_reason_data.schema import Modality

REAL = Path(__file__).parent / "data" / "real" / "cfp"  # CC BY 4.0: see tests/data/real/ATTRIBUTION.md
PHOTOS = ["Image_01L.jpg", "Image_07L.jpg", "Image_12R.jpg", "IDRiD_02.jpg"]
THRESHOLD = DedupSpec().copy_threshold


def _signature(image: Image.Image) -> str:
    return copy_signature(prepare(image.convert("L")))


def _distance(first: str, second: str) -> int:
    """The distance that makes copy candidates: the closer of the two halves."""
    return int(closer_half_distance(hex_to_bytes([first]), hex_to_bytes([second]))[0])


def _all_bits_apart(first: str, second: str) -> int:
    return int(popcount_distance(hex_to_bytes([first]), hex_to_bytes([second]))[0])


def _blurred(image: Image.Image) -> np.ndarray:
    return np.asarray(prepare(image.convert("L")).image.filter(ImageFilter.BoxBlur(2)))


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: Image.open(REAL / name).convert("RGB") for name in PHOTOS}


@pytest.fixture(scope="module")
def signatures(photos: dict[str, Image.Image]) -> dict[str, str]:
    return {name: _signature(image) for name, image in photos.items()}


@pytest.mark.parametrize("kind", list(COPY_KINDS))
def test_copies_of_every_kind_are_candidates(
    photos: dict[str, Image.Image], signatures: dict[str, str], kind: str
) -> None:
    """Two copies of each of four photographs (CHASE_DB1 and IDRiD): most within the copy threshold, every one
    closer to its photograph than other photographs are (more than 2 thresholds apart, see below)."""
    distances = {}
    for name, image in photos.items():
        for seed in range(2):
            copied, done = make_copy(image, kind, random.Random(f"{name}-{seed}"))
            distances[f"{name} {done}"] = _distance(signatures[name], _signature(copied))
    assert sum(d <= THRESHOLD for d in distances.values()) >= 7, distances
    assert max(distances.values()) <= 2 * THRESHOLD, distances


def test_other_photographs_are_far(signatures: dict[str, str]) -> None:
    names = list(signatures)
    distances = [_distance(signatures[a], signatures[b]) for k, a in enumerate(names) for b in names[k + 1 :]]
    assert min(distances) > 2 * THRESHOLD, distances  # a left and a right eye of one child (CHASE_DB1) too
    apart = [_all_bits_apart(signatures[a], signatures[b]) for k, a in enumerate(names) for b in names[k + 1 :]]
    assert 0.3 * SIGNATURE_BITS < np.mean(apart) < 0.7 * SIGNATURE_BITS  # bits near balanced


def test_the_rim_fit_finds_the_same_field_in_a_cropped_and_a_turned_copy(photos: dict[str, Image.Image]) -> None:
    image = photos["Image_01L.jpg"].resize((256, 246))
    field = fit_rim(_blurred(image))
    assert field is not None and abs(field.rx / field.ry - 1) < 0.02  # CHASE_DB1's field is a circle
    box = (20, 14, 236, 240)  # about 8 % off each side, into the field
    cropped = image.crop(box).resize((256, 256), Image.Resampling.LANCZOS)
    sx, sy = 256 / (box[2] - box[0]), 256 / (box[3] - box[1])
    expected = ((field.cx - box[0]) * sx, (field.cy - box[1]) * sy, field.rx * sx, field.ry * sy)
    found = fit_rim(_blurred(cropped))
    assert found is not None
    assert np.allclose(found, expected, atol=0.02 * field.rx), (found, expected)
    turned = fit_rim(_blurred(image.rotate(25, resample=Image.Resampling.BICUBIC, center=(field.cx, field.cy))))
    assert turned is not None and np.allclose(turned, field, atol=0.02 * field.rx), (turned, field)


def _pictured_share(image: Image.Image) -> float:
    blurred, field, edges = signature_geometry(prepare(image.convert("L")))
    x, y = field.cx + field.rx * _UNIT_X, field.cy + field.ry * _UNIT_Y
    return float(pictured_samples(x, y, blurred.shape, field, edges).mean())


def test_a_frame_that_cuts_the_field_reads_as_no_picture_in_the_photograph_and_in_its_padded_or_turned_copy(
    photos: dict[str, Image.Image],
) -> None:
    """A camera frame that cuts the field at the top and the bottom (HRF's, APTOS's: here a CHASE_DB1 photograph
    framed so): beyond the frame the photograph has no picture, and its padded or turned copy has black there,
    bounded by straight edges. Both read as no picture, so the copies stay candidates."""
    chase = photos["Image_01L.jpg"]
    image = chase.crop((0, 200, chase.width, chase.height - 200))  # the field is now 1.7 times the frame's height
    field, edges = fit_rim_and_edges(_blurred(image))
    assert field is not None and edges == []  # the frame's cut is no edge: its rim points are dropped
    padded, _ = make_copy(image, "pad_square", random.Random(3))
    pad_field, pad_edges = fit_rim_and_edges(_blurred(padded))
    assert pad_field is not None and len(pad_edges) == 2  # the frame's top and bottom, now inside the image
    assert all(abs(edge.ny) > 0.99 for edge in pad_edges)  # horizontal
    share = _pictured_share(image)
    assert 0.6 < share < 0.95  # the outer rings reach beyond the frame
    assert abs(_pictured_share(padded) - share) < 0.03
    original = _signature(image)
    for kind in ("pad_square", "rot10", "rot30"):
        for seed in range(3):  # the geometry alone (CHASE_DB1's red saturates when brightened: see benchmarks)
            copied, done = COPY_KINDS[kind](image, random.Random(f"frame-{seed}"))
            assert _distance(original, _signature(copied)) <= THRESHOLD, (kind, done)


def test_an_oct_scan_has_no_rim_and_keeps_its_signature_through_a_mirror_and_exposure() -> None:
    scan = oct_bscan(7, "right", ["oct.drusen"]).convert("RGB")
    assert fit_rim(_blurred(scan)) is None  # described around the frame's centre instead
    assert frame_field((384, 512)) == (256.0, 192.0, 192.0, 192.0)
    original = _signature(scan)
    for kind in ("photometric", "mirror", "rot180", "resample"):
        assert _distance(original, _signature(make_copy(scan, kind, random.Random(1))[0])) <= THRESHOLD, kind


OCT2017 = Path(__file__).parent / "data" / "real" / "oct2017" / "OCT2017" / "test"  # CC BY 4.0


def test_a_scan_without_a_rim_is_described_around_its_layers_so_a_few_pixels_of_re_framing_keep_it() -> None:
    """Real OCT B-scans (Kermany OCT2017) cut or padded by a few pixels on one side, as OCTDL's samples ship one
    scan twice: the centroid of the layers hardly moves, where the frame's centre moves with every column."""
    scans = sorted(OCT2017.rglob("*.jpeg"))
    assert len(scans) >= 4
    distances = []
    for path in scans:
        scan = Image.open(path).convert("RGB")
        work = prepare(scan.convert("L"))
        assert fit_rim(_blurred(scan)) is None  # two of the four got chance ellipses before fits scoring <= 0 went
        blurred, field, edges = signature_geometry(work)
        assert edges == [] and field != frame_field(blurred.shape)  # no rim: the layers' centroid
        width, height = scan.size
        padded = Image.new("RGB", (width + 6, height))
        padded.paste(scan, (6, 0))
        for copied in (scan.crop((0, 0, width - 6, height)), scan.crop((0, 3, width, height)), padded):
            distances.append(_distance(_signature(scan), _signature(copied)))
    # the median copy well within (around the frame's centre: 12 bits), most within the threshold (one scan's
    # white registration fill moves its centroid: see benchmarks/README.md)
    assert sorted(distances)[len(distances) // 2] <= THRESHOLD // 2, distances
    assert np.mean(np.array(distances) <= THRESHOLD) >= 0.75, distances


def test_fingerprint_stores_the_signature_of_the_work_image() -> None:
    path = REAL / "Image_07L.jpg"
    image = fingerprint(path, Modality.CFP)
    assert image.copy_hash is not None and len(image.copy_hash) == SIGNATURE_BITS // 4
    assert image.copy_hash == fingerprint(path, Modality.CFP).copy_hash  # the rim fit's draws are seeded


def test_copy_candidates_is_the_exact_search_of_either_half() -> None:
    """Every tenth row a copy of the next, as a crop makes them: up to 10 bits flipped in one half (the one that
    keeps the picture), up to 30 in the other. The search finds exactly the pairs within the threshold in some
    half, with the closer half's distance."""
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 256, (3000, SIGNATURE_BITS // 8), dtype=np.uint8)
    for row in range(0, 3000, 10):
        bits = np.unpackbits(hashes[row + 1])
        kept, moved = rng.permutation(2) * HALF_BITS
        bits[kept + rng.choice(HALF_BITS, rng.integers(0, 11), replace=False)] ^= 1
        bits[moved + rng.choice(HALF_BITS, rng.integers(0, 31), replace=False)] ^= 1
        hashes[row] = np.packbits(bits)
    found = copy_candidates(hashes, THRESHOLD, workers=1)
    halves = [brute_force_pairs(hashes[:, half], THRESHOLD) for half in HALVES]
    expected: dict[tuple[int, int], int] = {}
    for half in halves:
        for i, j, d in zip(half.i.tolist(), half.j.tolist(), half.distance.tolist(), strict=True):
            expected[i, j] = min(d, expected.get((i, j), d))
    pairs = list(zip(found.i.tolist(), found.j.tolist(), strict=True))
    assert dict(zip(pairs, found.distance.tolist(), strict=True)) == expected and pairs == sorted(expected)
    assert len(found) > 200 and all(len(half.as_set() - halves[1 - k].as_set()) > 50 for k, half in enumerate(halves))


def test_copy_candidates_refuses_other_hashes_and_thresholds() -> None:
    with pytest.raises(ValueError, match=r"\(n, 16\) uint8"):
        copy_candidates(np.zeros((4, 32), dtype=np.uint8), THRESHOLD)
    with pytest.raises(ValueError, match="threshold 32"):
        copy_candidates(np.zeros((4, 16), dtype=np.uint8), 32)


def test_a_threshold_on_all_128_bits_is_refused_with_what_it_counts_now() -> None:
    with pytest.raises(ValueError, match="one 64-bit half of copy_hash"):
        DedupSpec(copy_threshold=15)


def test_signature_matrix_leaves_out_images_without_a_signature() -> None:
    hashes, rows = signature_matrix([None, "00" * 16, "", "ff" * 16])
    assert rows.tolist() == [1, 3] and hashes.shape == (2, 16) and hashes[1].tolist() == [255] * 16
    with pytest.raises(ValueError, match="not 32 hex digits"):
        signature_matrix(["abc"])
