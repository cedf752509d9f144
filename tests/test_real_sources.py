"""Real OCT and FFA material through the real adapters.

Kermany OCT2017 B-scans shipped in `tests/data/real/oct2017/` (see its ATTRIBUTION.md) run everywhere; OCTDL
samples and FFA frames are read from `../shared/realdata` (the `realdata` fixture skips where it is absent).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.cli import app
from retinal_reason_data.ingest.imaging import png_chunk_types, png_text_chunk
from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.schema import Case, Item, Modality, Quarantine, QuestionType
from tests.conftest import REAL_IN_REPO, write_recipe

runner = CliRunner()

KERMANY = REAL_IN_REPO / "oct2017"
KERMANY_FINDINGS = {
    "Choroidal neovascularisation": 5,
    "Diabetic macular oedema": 2,
    "Drusen on OCT": 2,
    "Normal retina on OCT": 2,
}
KERMANY_SAME_PATIENT = [
    ("test/CNV-53018-1", "test/CNV-53018-2"),
    ("train/CNV-154835-1", "train/CNV-154835-2"),
    ("train/NORMAL-12494-1", "train/NORMAL-12494-3"),
]

OCTDL_SAMPLES = Path("OCT_OCTDL_AMD_and_MH_samples/data/sample_images")
OCTDL_SAME_PATIENT = [
    ("amd/amd_2945668_1.jpg", "amd/amd_2945668_5.jpg"),
    ("macular_hole/vid_1416874_1.png", "macular_hole/vid_1416874_2.png"),
    ("macular_hole/vid_3070592_1.png", "macular_hole/vid_3070592_2.png"),
]
# The repository's `macular_hole` folder holds OCTDL's VID class (file names vid_*), which the octdl adapter maps to
# vitreomacular interface disease; the ontology would read "macular hole" as a full-thickness one, which several of
# these B-scans (lamellar defects, foveoschisis) are not.
OCTDL_SOURCE = {
    "adapter": "image_folder",
    "name": "octdl_samples",
    "options": {"modality": "OCT", "patient_pattern": r"^(?:amd|vid)_(?P<patient>\d+)_"},
    "labels": {"amd": "amd.any", "macular_hole": "vmi"},
    "licence": "CC BY 4.0 (OCTDL, Kulyabin et al. 2024)",
}

FFA_ROOT = Path("FFA_huapu4/origin_data")
# `none_np` (angiograms without non-perfusion, many with microaneurysms) has no ontology code: it is left unmapped
# and so quarantined as unknown_label, never guessed as a normal angiogram.
FFA_DISEASE_LABELS = {"brvo": "vasc.brvo", "normal": "ffa.normal", "with_np": "ffa.non_perfusion"}

OFFLINE_TEACHER = {"kind": "offline", "attempts": 1, "offline_error_rate": 0.0}  # every item verified and exported


def _rrd(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _stats(recipe: Path) -> dict[str, Any]:
    return json.loads(_rrd("stats", str(recipe), "--json"))


def _recipe(folder: Path, *sources: dict[str, Any]) -> Path:
    return write_recipe(folder, name="real", catalog="real.duckdb", sources=list(sources), teacher=OFFLINE_TEACHER)


def _catalog_rows(recipe: Path) -> tuple[list[Case], list[Item], list[tuple[Any, ...]]]:
    catalog = Catalog(recipe.parent / "real.duckdb")
    try:
        cases = list(catalog.iter_cases())
        items = list(catalog.iter_items())
        quarantined = catalog.query("SELECT file, reason, detail FROM quarantine ORDER BY file")
    finally:
        catalog.close()
    return cases, items, quarantined


def _exported_rows(out: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(side, row) for every exported row, images as undecoded bytes; the test split is one side for both configs."""
    for config in ("sft", "rl"):
        for split, rows in datasets.load_dataset(str(out), config).items():
            side = "test" if split == "test" else f"{config}-{split}"
            undecoded = rows.cast_column("images", datasets.List(datasets.Image(decode=False)))
            for row in undecoded:
                yield side, row


def _sides_by_case(out: Path) -> dict[str, set[str]]:
    sides: dict[str, set[str]] = {}
    for side, row in _exported_rows(out):
        sides.setdefault(row["case_id"], set()).add(side)
    return sides


def _assert_fingerprinted(case: Case, modality: Modality) -> None:
    (image,) = case.images
    data = Path(image.path).read_bytes()
    assert image.modality is modality
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as decoded:
        assert (image.width, image.height) == decoded.size
    for digest in (image.phash, image.near_hash, image.detail_hash):
        assert digest is not None and len(digest) == 64 and int(digest, 16) > 0
    assert image.quality is not None and image.quality.contrast > 0


def _assert_modality_words(items: list[Item], noun: str, modality: Modality) -> None:
    """Every stem names the modality; every option and every asked-about finding is one seen in it."""
    ontology = default_ontology()
    assert items
    for item in items:
        assert item.modality is modality and noun in item.question, item.question
        if item.answer.code:
            assert modality in ontology.entry(item.answer.code).modalities, (item.question, item.answer)
        for option in item.options:
            entry = ontology.lookup(option)
            assert entry is not None and modality in entry.modalities, (item.question, option)


# --- metadata planted in copies of real files --------------------------------------------------------------------

PLANTED = "Jane Doe 1957-03-02"  # what a camera or a viewer might leave in a file: it must not reach the export


def _exif_payload() -> bytes:
    exif = Image.Exif()
    exif[0x013B] = PLANTED  # Artist
    exif[0x010E] = f"patient {PLANTED}"  # ImageDescription
    return exif.tobytes()  # b"Exif\0\0" + TIFF


def _plant_in_jpeg(path: Path) -> None:
    """An EXIF APP1 segment and a comment right after the start-of-image marker; the pixels stay as they are."""
    data = path.read_bytes()
    app1 = _exif_payload()
    comment = f"patient {PLANTED}".encode()
    segments = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    segments += b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    path.write_bytes(data[:2] + segments + data[2:])


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _plant_in_png(path: Path) -> None:
    """tEXt and eXIf chunks right after IHDR."""
    data = path.read_bytes()
    after_header = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    planted = png_text_chunk("Patient", PLANTED) + _png_chunk(b"eXIf", _exif_payload()[6:])
    path.write_bytes(data[:after_header] + planted + data[after_header:])


def _jpeg_markers(data: bytes) -> list[int]:
    """The markers of a JPEG up to its start of scan."""
    markers, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        markers.append(data[at + 1])
        if data[at + 1] == 0xDA:
            break
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return markers


def _assert_clean_copy(exported: bytes, original: Path) -> None:
    """Nothing planted survives, and the pixels are the original file's."""
    assert PLANTED.encode() not in exported and b"Exif" not in exported
    if exported[:4] == b"\x89PNG":
        assert not {b"tEXt", b"zTXt", b"iTXt", b"eXIf"} & set(png_chunk_types(exported))
    else:
        assert exported[:2] == b"\xff\xd8" and not {0xE1, 0xFE} & set(_jpeg_markers(exported))
    with Image.open(io.BytesIO(exported)) as decoded, Image.open(original) as source:
        assert np.array_equal(np.asarray(decoded), np.asarray(source))


def _check_export_is_clean(out: Path, original_of: dict[str, Path]) -> int:
    checked = 0
    for _side, row in _exported_rows(out):
        for cell in row["images"]:
            _assert_clean_copy(cell["bytes"], original_of[row["case_id"]])
            checked += 1
    return checked


# --- Kermany OCT2017, shipped in the repository -----------------------------------------------------------------


@pytest.fixture(scope="module")
def kermany(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The shipped folder read in place by `rrd ingest` (stats taken then), then `rrd build`."""
    recipe = _recipe(tmp_path_factory.mktemp("kermany"), {"adapter": "oct2017", "root": str(KERMANY)})
    _rrd("ingest", str(recipe))
    after_ingest = _stats(recipe)
    _rrd("build", str(recipe))
    return recipe, after_ingest


@pytest.mark.slow
def test_oct2017_reads_real_kermany_bscans_whole(kermany: tuple[Path, dict[str, Any]]) -> None:
    recipe, stats = kermany
    assert stats["cases_by_source"] == {"oct2017": 11}
    assert stats["quarantined_by_reason"] == {}
    assert stats["reconciliation"]["oct2017"] == {"read": 11, "cases": 11, "quarantined": 0}
    assert stats["images"] == 11
    assert stats["findings_by_source"]["oct2017"] == KERMANY_FINDINGS
    cases, _items, quarantined = _catalog_rows(recipe)
    assert quarantined == []
    for case in cases:
        _assert_fingerprinted(case, Modality.OCT)
        (finding,) = case.findings
        assert Path(case.images[0].path).name.startswith(f"{finding.raw_label}-")  # class folder = name prefix


def test_oct2017_groups_same_patient_bscans_under_one_pseudonym(kermany: tuple[Path, dict[str, Any]]) -> None:
    cases, _items, _ = _catalog_rows(kermany[0])
    patient = {case.case_id.removeprefix("oct2017:"): case.patient_id for case in cases}
    for first, second in KERMANY_SAME_PATIENT:
        assert patient[first] == patient[second], (first, second)
    assert len(set(patient.values())) == 8  # 11 scans, three pairs
    for local_id, pseudonym in patient.items():
        assert pseudonym.startswith("p-") and local_id.split("-")[1] not in pseudonym


def test_items_of_real_bscans_speak_of_oct_only_and_answer_with_the_label(
    kermany: tuple[Path, dict[str, Any]],
) -> None:
    cases, items, _ = _catalog_rows(kermany[0])
    assert len(items) == 11  # one basic question per scan
    _assert_modality_words(items, "OCT B-scan", Modality.OCT)
    ontology = default_ontology()
    label = {case.case_id: case.findings[0].code for case in cases}
    for item in items:
        truth = ontology.entry(label[item.case_id]).name
        if item.question_type is QuestionType.SINGLE_CHOICE:
            assert item.options["ABCDEFGH".index(item.answer.text)] == truth
        elif item.question_type is QuestionType.OPEN:
            assert item.answer.text == truth
        else:
            assert item.answer.text == str(item.answer.code == label[item.case_id])


def test_real_same_patient_bscans_land_on_one_split(kermany: tuple[Path, dict[str, Any]]) -> None:
    sides = _sides_by_case(kermany[0].parent / "export")
    assert len(sides) == 11  # every scan exported: the check below is not vacuous
    for first, second in KERMANY_SAME_PATIENT:
        a, b = sides[f"oct2017:{first}"], sides[f"oct2017:{second}"]
        assert len(a) == 1 and a == b, (first, a, second, b)


@pytest.mark.slow
def test_real_bscans_with_planted_metadata_export_clean(tmp_path: Path) -> None:
    """EXIF and a comment planted in copies of the real JPEGs ingest without quarantine and are gone from the
    exported bytes, whose pixels are the original files'."""
    copy = tmp_path / "oct2017"
    shutil.copytree(KERMANY, copy)
    originals = {}
    for path in sorted((copy / "OCT2017").rglob("*.jpeg")):
        _plant_in_jpeg(path)
        local_id = f"{path.parent.parent.name}/{path.stem}"
        originals[f"oct2017:{local_id}"] = KERMANY / path.relative_to(copy)
    recipe = _recipe(tmp_path / "build", {"adapter": "oct2017", "root": str(copy)})
    _rrd("build", str(recipe))
    stats = _stats(recipe)
    assert stats["cases_by_source"] == {"oct2017": 11} and stats["quarantined_by_reason"] == {}
    assert _check_export_is_clean(tmp_path / "build" / "export", originals) >= 11


def _read_adapter(adapter: str, root: Path) -> tuple[list[RawCase], list[Quarantine]]:
    records = list(ADAPTERS[adapter].read(root, adapter, SourceOptions(work_dir=root.parent / "work", values={})))
    return [r for r in records if isinstance(r, RawCase)], [r for r in records if isinstance(r, Quarantine)]


def test_oct2017_finds_the_collection_as_kaggle_names_it(tmp_path: Path) -> None:
    """Kaggle's kermany2018 holds the collection in `OCT2017 /` (trailing space) and again in `oct2017/OCT2017 /`:
    the root above them reads the shallower copy once; the nested copy alone is found too."""
    kaggle = tmp_path / "kermany2018"
    shutil.copytree(KERMANY / "OCT2017", kaggle / "OCT2017 ")
    shutil.copytree(KERMANY / "OCT2017", kaggle / "oct2017" / "OCT2017 ")
    cases, refused = _read_adapter("oct2017", kaggle)
    assert refused == [] and len(cases) == 11 == len({case.local_id for case in cases})
    assert {Path(case.file).parents[2] for case in cases} == {kaggle / "OCT2017 "}
    shutil.rmtree(kaggle / "OCT2017 ")
    cases, refused = _read_adapter("oct2017", kaggle)
    assert refused == [] and {Path(case.file).parents[2] for case in cases} == {kaggle / "oct2017" / "OCT2017 "}

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(KERMANY / "OCT2017", elsewhere / "scans" / "OCT2017")  # not an OCT2017 folder on the way
    cases, refused = _read_adapter("oct2017", elsewhere)
    assert cases == [] and [q.reason for q in refused] == ["labels_missing"]
    assert str(elsewhere) in refused[0].detail


# --- ../shared/realdata: OCTDL samples, FFA frames --------------------------------------------------------------


@pytest.fixture(scope="module")
def octdl(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A copy of the OCTDL samples with metadata planted in every file, built through image_folder."""
    work = tmp_path_factory.mktemp("octdl")
    copy = work / "sample_images"
    shutil.copytree(realdata / OCTDL_SAMPLES, copy)
    originals = {}
    for path in sorted(copy.rglob("*.*")):
        (_plant_in_png if path.suffix == ".png" else _plant_in_jpeg)(path)
        originals[f"octdl_samples:{path.relative_to(copy).as_posix()}"] = (
            realdata / OCTDL_SAMPLES / path.relative_to(copy)
        )
    recipe = _recipe(work / "build", OCTDL_SOURCE | {"root": str(copy)})
    _rrd("build", str(recipe))
    return recipe, originals


@pytest.mark.slow
def test_octdl_samples_ingest_whole_through_image_folder(octdl: tuple[Path, dict[str, Path]]) -> None:
    recipe, _ = octdl
    stats = _stats(recipe)
    assert stats["cases_by_source"] == {"octdl_samples": 21} and stats["quarantined_by_reason"] == {}
    assert stats["findings_by_source"]["octdl_samples"] == {
        "Age-related macular degeneration": 10,
        "Vitreomacular interface disease": 11,
    }
    cases, items, _ = _catalog_rows(recipe)
    for case in cases:
        _assert_fingerprinted(case, Modality.OCT)
    assert len({case.patient_id for case in cases}) == 18  # 21 scans, three pairs
    _assert_modality_words(items, "OCT B-scan", Modality.OCT)


def test_octdl_same_patient_pairs_land_on_one_split(octdl: tuple[Path, dict[str, Path]]) -> None:
    recipe, _ = octdl
    cases, _items, _ = _catalog_rows(recipe)
    patient = {case.case_id.removeprefix("octdl_samples:"): case.patient_id for case in cases}
    sides = _sides_by_case(recipe.parent / "export")
    # OCTDL's samples ship one B-scan three times under three patient ids: vid_1258159_1 and vid_5203547_1 as
    # they are, vid_1416874_2 cropped and rescaled (the same macular hole, speckle and all). Verified copies: one
    # case is kept, two are dropped, and the kept one's side is the side of every patient the copies touch.
    assert _stats(recipe)["duplicates"]["images_dropped"] == 2 and len(sides) == 19
    shipped_thrice = {f"macular_hole/vid_{vid}.png" for vid in ("1258159_1", "5203547_1", "1416874_2")}
    (kept_copy,) = shipped_thrice & {case.removeprefix("octdl_samples:") for case in sides}
    assert sides[f"octdl_samples:{kept_copy}"] == sides["octdl_samples:macular_hole/vid_1416874_1.png"]
    for first, second in OCTDL_SAME_PATIENT:
        assert patient[first] == patient[second]
        a, b = sides.get(f"octdl_samples:{first}"), sides.get(f"octdl_samples:{second}")
        kept = [side for side in (a, b) if side is not None]
        assert kept and all(len(side) == 1 for side in kept) and kept.count(kept[0]) == len(kept), (first, a, b)


def test_octdl_exported_images_carry_no_planted_metadata(octdl: tuple[Path, dict[str, Path]]) -> None:
    recipe, originals = octdl
    assert _check_export_is_clean(recipe.parent / "export", originals) >= 21


@pytest.mark.slow
def test_ffa_disease_folders_map_to_ffa_codes_and_unmapped_ones_are_quarantined(realdata: Path, tmp_path: Path) -> None:
    root = realdata / FFA_ROOT / "02.disease_diagnosis"
    source = {"adapter": "image_folder", "name": "ffa_disease", "root": str(root), "options": {"modality": "FFA"}}
    recipe = _recipe(tmp_path, source | {"labels": FFA_DISEASE_LABELS, "licence": "Apache-2.0 (huapu4/FFA)"})
    _rrd("build", str(recipe))
    stats = _stats(recipe)
    assert stats["cases_by_source"] == {"ffa_disease": 60}
    assert stats["quarantined_by_reason"] == {"unknown_label": 20}
    assert stats["reconciliation"]["ffa_disease"] == {"read": 80, "cases": 60, "quarantined": 20}
    assert stats["findings_by_source"]["ffa_disease"] == {
        "Branch retinal vein occlusion": 20,
        "Capillary non-perfusion": 20,
        "Normal fluorescein angiogram": 20,
    }
    cases, items, quarantined = _catalog_rows(recipe)
    for file, reason, detail in quarantined:
        assert reason == "unknown_label" and Path(file).parent.name == "none_np"
        assert file in detail and "'none_np'" in detail
    for case in cases:
        _assert_fingerprinted(case, Modality.FFA)
    _assert_modality_words(items, "fluorescein angiogram", Modality.FFA)
    assert sum(stats["exported"]["sft"].values()) > 0


def test_phase_frames_red_free_included_make_no_ffa_questions(realdata: Path, tmp_path: Path) -> None:
    """The phase set (arterial, venous, and red-free/IR `non_ffa` frames) carries no finding: declared FFA, every
    frame is quarantined as unknown_label naming its folder, and none becomes a fluorescein-angiogram question.
    (Nothing looks at the pixels: a recipe that mapped `non_ffa` to a finding would get FFA questions about
    red-free photographs.)"""
    root = realdata / FFA_ROOT / "01.phase_identification"
    source = {"adapter": "image_folder", "name": "ffa_phases", "root": str(root), "options": {"modality": "FFA"}}
    recipe = _recipe(tmp_path, source)
    _rrd("ingest", str(recipe))
    stats = _stats(recipe)
    assert stats["cases_by_source"] == {} and stats["quarantined_by_reason"] == {"unknown_label": 60}
    assert stats["reconciliation"]["ffa_phases"] == {"read": 60, "cases": 0, "quarantined": 60}
    _cases, _items, quarantined = _catalog_rows(recipe)
    by_folder: dict[str, int] = {}
    for file, _reason, detail in quarantined:
        folder = Path(file).parent.name
        by_folder[folder] = by_folder.get(folder, 0) + 1
        assert f"'{folder}'" in detail
    assert by_folder == {"arterial_phase": 20, "non_ffa": 20, "venous_phase": 20}


@pytest.mark.slow
def test_a_label_mapped_to_a_finding_of_another_modality_is_refused_not_asked(realdata: Path, tmp_path: Path) -> None:
    """The red-free `non_ffa` frames declared FFA and mapped to a fundus-photograph finding would have become
    "this fluorescein angiogram" questions; the label's modality must be one of the images'."""
    root = realdata / FFA_ROOT / "01.phase_identification"
    labels = {"non_ffa": "normal.fundus", "arterial_phase": "ffa.normal", "venous_phase": "ffa.normal"}
    source = {"adapter": "image_folder", "name": "ffa_phases", "root": str(root), "options": {"modality": "FFA"}}
    recipe = _recipe(tmp_path, source | {"labels": labels})
    _rrd("ingest", str(recipe))
    stats = _stats(recipe)
    assert stats["cases_by_source"] == {"ffa_phases": 40}
    assert stats["quarantined_by_reason"] == {"label_modality_mismatch": 20}
    _cases, _items, quarantined = _catalog_rows(recipe)
    for file, _reason, detail in quarantined:
        assert Path(file).parent.name == "non_ffa"
        assert "'non_ffa' maps to normal.fundus (Normal fundus), which the ontology knows on CFP" in detail
        assert "the case's images are FFA" in detail
