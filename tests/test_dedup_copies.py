"""Copies of real photographs as re-releases make them (cropped into the field, turned by any angle, padded to a
square, cropped to the field's box, mirrored, re-encoded) are found through the real pipeline (`rrd ingest`,
`rrd report`), with the kind of copy, its angle and the verification score in `duplicate_matches`; two eyes of
one patient never merge, even when nothing says they are one patient's."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.phantoms.copies import field_box, make_copy
from tests.conftest import write_recipe
from tests.helpers.builds import query_catalog

REAL = Path(__file__).parent / "data" / "real" / "cfp"  # CC BY 4.0: see ATTRIBUTION.md
ORIGINALS = {  # file -> (patient, eye)
    "Image_01L.jpg": ("chase01", "left"),
    "Image_01R.jpg": ("chase01", "right"),
    "Image_07L.jpg": ("chase07", "left"),
    "Image_09L.jpg": ("chase09", "left"),
    "Image_12R.jpg": ("chase12", "right"),
    "Image_14R.jpg": ("chase14", "right"),
    "IDRiD_02.jpg": ("idrid02", ""),
}
COPIES = {  # copy file -> (original, kind of copy made, what `CopyVerdict.kind` must name if verification found it)
    "crop10_07L.png": ("Image_07L.jpg", "crop10", "crop"),
    "rot10_09L.png": ("Image_09L.jpg", "rot10", "rotation"),
    "rot30_12R.png": ("Image_12R.jpg", "rot30", "rotation"),
    "padded_14R.png": ("Image_14R.jpg", "pad_square", "reframe"),
    "field_box_IDRiD02.jpg": ("IDRiD_02.jpg", "bbox_crop", "reframe"),
    # cropped to the field's box, then 2-8 % more off each side: the field hashes lose it (22 bits apart)
    "crop_in_box_IDRiD02.jpg": ("IDRiD_02.jpg", "crop10", "crop"),
    "mirror_01L.png": ("Image_01L.jpg", "mirror", "mirror"),
    "reencoded_01R.png": ("Image_01R.jpg", "photometric", "same_frame"),  # the right eye, as another patient
}
MUST_VERIFY = {"rot10_09L.png", "rot30_12R.png", "crop_in_box_IDRiD02.jpg"}  # too far for the field hashes
runner = CliRunner()


def _rrd(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _manifest(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label", "patient", "eye"])
        writer.writerows([(image, "grade0", patient, eye) for image, patient, eye in rows])


def _source(name: str) -> dict:
    return {
        "adapter": "manifest",
        "name": name,
        "root": f"raw/{name}",
        "labels": {"grade0": "dr.none"},
        "options": {
            "file": "labels.csv",
            "image_column": "image",
            "label_columns": ["label"],
            "patient_column": "patient",
            "eye_column": "eye",
            "modality": "CFP",
        },
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """A collection of seven real photographs and a compilation of their copies (each copy its own patient, of
    unknown eye), ingested and curated; the recipe and what each copy is."""
    folder = tmp_path_factory.mktemp("copies")
    originals = folder / "raw" / "originals"
    originals.mkdir(parents=True)
    for name in ORIGINALS:
        shutil.copyfile(REAL / name, originals / name)
    _manifest(originals, [(name, patient, eye) for name, (patient, eye) in ORIGINALS.items()])
    compilation = folder / "raw" / "compilation"
    compilation.mkdir(parents=True)
    made = {}
    for number, (name, (original, kind, _)) in enumerate(COPIES.items()):
        with Image.open(REAL / original) as image:
            framed = image.crop(field_box(image)) if name.startswith("crop_in_box") else image
            copy, done = make_copy(framed, kind, random.Random(3 if name.startswith("crop_in_box") else number))
        copy.save(compilation / name, **({"quality": 95} if name.endswith(".jpg") else {}))
        made[name] = done
    _manifest(compilation, [(name, f"release-{name}", "") for name in COPIES])
    recipe = write_recipe(folder, sources=[_source("originals"), _source("compilation")])
    _rrd("ingest", str(recipe))
    _rrd("report", str(recipe))
    return recipe, made


def _clusters(recipe: Path) -> dict[str, str]:
    """File name -> near cluster."""
    rows = query_catalog(recipe, "SELECT data FROM cases")
    sha_to_name = {}
    for (data,) in rows:
        for image in json.loads(data)["images"]:
            sha_to_name[image["sha256"]] = Path(image["path"]).name
    return {
        sha_to_name[sha]: cluster
        for sha, cluster in query_catalog(recipe, "SELECT sha256, near_cluster FROM image_clusters")
    }


def _matches(recipe: Path) -> dict[frozenset[str], dict]:
    names = {}
    for (data,) in query_catalog(recipe, "SELECT data FROM cases"):
        for image in json.loads(data)["images"]:
            names[image["sha256"]] = Path(image["path"]).name
    columns = [
        c
        for (c,) in query_catalog(
            recipe,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'duplicate_matches' ORDER BY ordinal_position",
        )
    ]
    found = {}
    for row in query_catalog(recipe, "SELECT * FROM duplicate_matches"):
        entry = dict(zip(columns, row, strict=True))
        entry["a"], entry["b"] = names[entry["a"]], names[entry["b"]]
        found[frozenset((entry["a"], entry["b"]))] = entry
    return found


def test_every_copy_is_clustered_with_its_original(built) -> None:
    recipe, _ = built
    cluster = _clusters(recipe)
    for name, (original, kind, _) in COPIES.items():
        assert cluster[name] == cluster[original], f"{kind} copy {name} not clustered with {original}"


def test_two_eyes_of_one_patient_never_merge(built) -> None:
    """01L and 01R are one child's eyes; the re-encoded 01R comes as another patient of unknown eye, and the
    mirrored 01L (which looks like a right eye) too: nothing but the images keeps them apart."""
    recipe, _ = built
    cluster = _clusters(recipe)
    assert cluster["Image_01L.jpg"] == cluster["mirror_01L.png"]
    assert cluster["Image_01R.jpg"] == cluster["reencoded_01R.png"]
    assert cluster["Image_01L.jpg"] != cluster["Image_01R.jpg"]
    distinct = [name for name in ORIGINALS]
    assert len({cluster[name] for name in distinct}) == len(distinct)  # no two originals merged


def test_matches_record_the_kind_of_copy_its_angle_and_score(built) -> None:
    """Verified copies name what was done (crop, rotation and its angle, re-framing) with their score; copies the
    field hashes found carry what the hashes know: the flip or quarter turn."""
    recipe, made = built
    matches = _matches(recipe)
    verified = {
        name for name, (original, _, _) in COPIES.items() if matches[frozenset((name, original))]["kind"] == "copy"
    }
    assert verified >= MUST_VERIFY
    for name, (original, kind, expected) in COPIES.items():
        match = matches[frozenset((name, original))]
        assert match["mirrored"] is (kind == "mirror")
        if match["kind"] == "near":
            assert match["verification_score"] is None
            assert match["copy_kind"] == ("mirror" if kind == "mirror" else None)
            continue
        assert expected in match["copy_kind"].split("+"), (kind, match)
        assert 0.9 <= match["verification_score"] <= 1.0 and match["inliers"] >= 12
        if kind.startswith("rot"):
            turned = made[name]["angle"] if match["a"] == original else -made[name]["angle"]
            assert abs(match["angle_deg"] - turned) < 1.0, (made[name], match)


def test_stats_and_report_show_the_copies(built) -> None:
    recipe, _ = built
    duplicates = json.loads(_rrd("stats", str(recipe), "--json"))["duplicates"]
    for key in ("exact_clusters", "near_clusters", "pixel_matches", "matches_by_orientation", "cases_dropped"):
        assert key in duplicates  # the contract's keys stay
    assert duplicates["copy_matches"] >= len(MUST_VERIFY)
    assert duplicates["copy_checks"] >= duplicates["copy_matches"]
    assert duplicates["near_clusters"] + duplicates["exact_clusters"] == len(ORIGINALS)  # every original copied
    report = recipe.parent / "small.curation.md"
    text = report.read_text()
    assert "Copies found by copy verification" in text
    assert "rot10_09L.png" in text and "rotation" in text


def test_each_image_is_read_in_one_batch_only() -> None:
    """Features are computed once per image: candidate pairs are batched by connected component, so an image in
    several pairs is in one batch, and every pair is verified exactly once, whatever the order of the pairs."""
    from retinal_reason_data.curation.copy_verification import DEFAULT_LIMITS
    from retinal_reason_data.curation.verify_pairs import BATCH_IMAGES, _batches

    rng = random.Random(5)
    pairs = [(rng.randrange(400), rng.randrange(400)) for _ in range(120)]  # small components
    pairs = [(a, b) for a, b in pairs if a != b] + [(400 + k, 401 + k) for k in range(150)]  # one long chain
    paths = [f"image{k}.png" for k in range(600)]
    batches = _batches(pairs, paths, DEFAULT_LIMITS)
    seen = [path for batch_paths, _, _ in batches for path in batch_paths]
    assert len(seen) == len(set(seen))  # no image read twice
    verified = sorted(number for _, local, _ in batches for _, _, number in local)
    assert verified == list(range(len(pairs)))
    for batch_paths, local, _ in batches:
        for a, b, number in local:
            assert (batch_paths[a], batch_paths[b]) == (paths[pairs[number][0]], paths[pairs[number][1]])
    assert max(len(p) for p, _, _ in batches) >= 151  # the chain is one component, larger than a batch
    assert sum(len(p) > BATCH_IMAGES for p, _, _ in batches) == 1
    assert len(batches) > 3  # the small components are packed together, a few batches of them
    shuffled = pairs[::-1]
    assert [p for p, _, _ in _batches(shuffled, paths, DEFAULT_LIMITS)] == [p for p, _, _ in batches]


def test_images_fingerprinted_before_the_signature_are_searched_by_their_field_hashes_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from retinal_reason_data.curation.dedup import deduplicate
    from retinal_reason_data.ingest.imaging import fingerprint
    from retinal_reason_data.recipe import DedupSpec
    from retinal_reason_data.schema import Case, Modality, Provenance

    old = fingerprint(REAL / "Image_07L.jpg", Modality.CFP).model_copy(update={"copy_hash": None})
    again = old.model_copy(update={"sha256": "0" * 64, "path": "/elsewhere/Image_07L.jpg"})
    cases = [
        Case(
            case_id=f"s:{k}",
            source="s",
            patient_id=f"p{k}",
            images=[ref],
            provenance=Provenance(file="f", row=k, licence="CC BY 4.0"),
        )
        for k, ref in enumerate((old, again))
    ]
    result = deduplicate(cases, DedupSpec())
    assert result.near_clusters == 1  # the field hashes still match them
    assert "2 images have no copy_hash" in caplog.text and "rrd ingest" in caplog.text
