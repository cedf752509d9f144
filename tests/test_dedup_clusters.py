"""Clusters and the copy kept: recipe policy, the two-eyes rule, several images per case, label conflicts."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from retinal_reason_data.curation.dedup import deduplicate
from retinal_reason_data.ingest.fieldhash import orient
from retinal_reason_data.recipe import DedupSpec
from retinal_reason_data.schema import Case, Eye, Finding, ImageQuality, ImageRef, Modality, Provenance

RNG = np.random.default_rng(0)
PHOTO_A = RNG.integers(0, 256, 32, dtype=np.uint8)
PHOTO_B = RNG.integers(0, 256, 32, dtype=np.uint8)
DETAIL = RNG.integers(0, 256, 32, dtype=np.uint8)


def _ref(sha: str, near: np.ndarray, side: int = 512, sharpness: float = 0.005, detail=DETAIL) -> ImageRef:
    return ImageRef(
        path=f"/nonexistent/{sha}.png",
        sha256=sha * 16,
        phash="0" * 64,
        width=side,
        height=side,
        modality=Modality.CFP,
        quality=ImageQuality(brightness=0.4, contrast=0.1, sharpness=sharpness, fov_fraction=0.7),
        near_hash=near.tobytes().hex(),
        detail_hash=detail.tobytes().hex(),
        copy_hash=hashlib.sha256(sha.encode()).hexdigest()[:32],  # 128 bits, ~64 apart: no copy candidates here
    )


def _case(case_id: str, images: list[ImageRef], label: str = "dr.mild", patient: str = "", eye: Eye = Eye.UNKNOWN):
    source = case_id.split(":")[0]
    return Case(
        case_id=case_id,
        source=source,
        patient_id=patient or f"p-{case_id}",
        eye=eye,
        images=images,
        findings=[Finding(code=label, raw_label=label)],
        provenance=Provenance(file=f"{source}.csv", row=1, licence="test"),
    )


def _flip(near: np.ndarray, bits: int) -> np.ndarray:
    changed = np.unpackbits(near.copy())
    changed[:bits] ^= 1
    return np.packbits(changed)


def test_the_kept_copy_follows_the_recipe_policy() -> None:
    cases = [
        _case("small:1", [_ref("a", PHOTO_A, side=300)]),
        _case("big:1", [_ref("b", _flip(PHOTO_A, 3), side=2000, sharpness=0.0001)]),
        _case("sharp:1", [_ref("c", _flip(PHOTO_A, 5), side=512, sharpness=0.009)]),
    ]
    result = deduplicate(cases, DedupSpec(source_priority=["small"]))
    assert set(result.dropped_cases) == {"big:1", "sharp:1"}
    assert result.linked_cases == [["big:1", "sharp:1", "small:1"]] and result.near_clusters == 1
    result = deduplicate(cases, DedupSpec(source_priority=["small"], keep=["resolution", "source_priority"]))
    assert set(result.dropped_cases) == {"small:1", "sharp:1"}
    result = deduplicate(cases, DedupSpec(keep=["quality", "resolution"]))
    assert set(result.dropped_cases) == {"small:1", "big:1"}
    # a copy that fails the image filters loses to one that passes, whatever its sharpness
    result = deduplicate(cases, DedupSpec(keep=["quality"]), image_usable=lambda case, image: case.case_id != "sharp:1")
    assert "sharp:1" in result.dropped_cases


def test_the_same_file_in_two_sources_is_one_exact_cluster() -> None:
    shared = _ref("d", PHOTO_B)
    cases = [_case("one:1", [shared]), _case("two:1", [shared], label="dr.severe")]
    result = deduplicate(cases, DedupSpec(source_priority=["two"]))
    assert result.exact_clusters == 1 and result.near_clusters == 0
    assert set(result.dropped_cases) == {"one:1"}
    (conflict,) = result.label_conflicts
    assert conflict.label_sets == {"one:1": ("dr.mild",), "two:1": ("dr.severe",)}
    dropped = deduplicate(cases, DedupSpec(on_label_conflict="drop"))
    assert dropped.dropped_cases == {"one:1": "label_conflict", "two:1": "label_conflict"}


def test_two_eyes_of_one_patient_are_never_duplicates() -> None:
    mirrored = orient(PHOTO_A[None, :], "mirror")[0]
    mirrored_detail = orient(DETAIL[None, :], "mirror")[0]
    eyes = [
        _case("src:right", [_ref("e", PHOTO_A)], patient="p1", eye=Eye.RIGHT),
        _case("src:left", [_ref("f", mirrored, detail=mirrored_detail)], patient="p1", eye=Eye.LEFT),
    ]
    assert deduplicate(eyes, DedupSpec()).clusters == []
    strangers = [eyes[0], _case("other:left", [_ref("f", mirrored, detail=mirrored_detail)], eye=Eye.LEFT)]
    result = deduplicate(strangers, DedupSpec())
    assert [m["orientation"] for m in result.match_rows] == ["mirror"]
    assert deduplicate(strangers, DedupSpec(orientations=False)).clusters == []


def test_a_case_with_one_new_image_is_kept_and_linked() -> None:
    cases = [
        _case("first:1", [_ref("g", PHOTO_A)]),
        _case("second:1", [_ref("h", _flip(PHOTO_A, 2)), _ref("i", PHOTO_B)]),
    ]
    result = deduplicate(cases, DedupSpec(source_priority=["first"]))
    assert result.dropped_cases == {}
    assert result.linked_cases == [["first:1", "second:1"]]


def test_thresholds_decide() -> None:
    far = _flip(PHOTO_A, 30)
    cases = [_case("x:1", [_ref("j", PHOTO_A)]), _case("y:1", [_ref("k", far)])]
    assert deduplicate(cases, DedupSpec()).clusters == []
    assert len(deduplicate(cases, DedupSpec(near_threshold=30)).clusters) == 1
    other_detail = _flip(DETAIL, 40)
    cases = [_case("x:1", [_ref("j", PHOTO_A)]), _case("y:1", [_ref("k", PHOTO_A, detail=other_detail)])]
    assert deduplicate(cases, DedupSpec()).clusters == []  # a re-take: same layout, other details
    assert deduplicate(cases, DedupSpec(enabled=False)).linked_cases == []


def test_images_without_near_hash_are_refused_with_a_clear_error() -> None:
    old = _ref("l", PHOTO_A).model_copy(update={"near_hash": None})
    with pytest.raises(ValueError, match="rrd ingest"):
        deduplicate([_case("old:1", [old]), _case("old:2", [_ref("m", PHOTO_B)])], DedupSpec())
