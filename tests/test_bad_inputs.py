"""A corpus of bad inputs, as a new user's downloads and mistakes bring them, run through the real command line.

One recipe reads a dozen small sources at once, each with good cases and hostile ones: file names that are not
UTF-8, links that loop or dangle, a FIFO named as an image, images that are empty, truncated, text, a
decompression bomb, float and 16-bit TIFFs, corrupt EXIF; manifests naming `/etc/passwd` or `../outside.png`;
label tables with a `;` delimiter, a missing column, no bytes, a header only, a cell over the CSV size limit,
mixed encodings; workbooks that are not workbooks or have no header; JATS that is malformed, declares entities
or is not JATS; recipes in UTF-16 or Latin-1, with an unknown adapter or a label mapped to no ontology code; and
teacher replies that are not JSON, lack `choices` or come as HTML. Each kind asserts the exit code, a message
naming the file, the row and the reason (no traceback, no object repr, no 'row None'), that the good cases of
the same source get through, and that `rrd stats --json` accounts for every row.

The corpus is built and ingested once per session (`corpus`); the whole file runs in about 20 s on 2 cores.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from retinal_reason_data.cli import app
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.phantoms.layouts_pmc import write_pmc_oa
from retinal_reason_data.schema import Case
from tests.fake_openai import FakeOpenAI, Fault, invalid_json

FORBIDDEN = ("Traceback", "object at 0x", "row None", "line None")
ALIEN = b"caf\xe9"  # a Latin-1 file name: not UTF-8


# --- building the corpus ---------------------------------------------------------------------------------------
def _photo(path: Path | bytes, seed: int, form: str = "PNG") -> None:
    image = fundus_photo(seed, "left", size=96, image_seed=seed)
    buffer = io.BytesIO()
    image.save(buffer, form, **({"quality": 90} if form == "JPEG" else {}))
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def _grey(seed: int) -> np.ndarray:
    return np.asarray(fundus_photo(seed, "left", size=96, image_seed=seed).convert("L")).astype(np.float32)


def _corrupt_exif_jpeg(path: Path, seed: int) -> None:
    """A JPEG whose EXIF block claims more bytes than it holds: Pillow warns 'Corrupt EXIF data'."""
    buffer = io.BytesIO()
    fundus_photo(seed, "left", size=96, image_seed=seed).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x00" * 4
    path.write_bytes(data[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + data[2:])


def _aptos(root: Path, rows: list[str], images: dict[str, int], table: bytes | None = None) -> None:
    """An APTOS 2019 layout: train.csv (these rows under id_code,diagnosis, or `table` as given) and images."""
    (root / "train_images").mkdir(parents=True, exist_ok=True)
    for name, seed in images.items():
        _photo(root / "train_images" / name, seed)
    if table is None:
        table = ("id_code,diagnosis\n" + "".join(row + "\n" for row in rows)).encode()
    (root / "train.csv").write_bytes(table)


def _names_source(root: Path, outside: Path) -> None:
    """APTOS layout holding every kind of bad image file and name, and the odd files that are good."""
    images = root / "train_images"
    _aptos(root, [], {"g0.png": 1, "g1.png": 2, "g2.png": 3, "m0.png": 4})
    _photo(images / os.fsdecode(ALIEN + b".png"), 5)
    (images / "loop.png").symlink_to("loop.png")
    (images / "dangling.png").symlink_to("absent.png")
    (images / "folder.png").mkdir()
    os.mkfifo(images / "fifo.png")  # reading it would block for ever
    (images / "empty.png").write_bytes(b"")
    buffer = io.BytesIO()
    fundus_photo(6, "left", size=96).save(buffer, "PNG")
    (images / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (images / "text.png").write_text("this is not an image\n")
    Image.new("1", (9000, 9000)).save(images / "bomb.png")  # 81 million pixels in a few kB
    Image.fromarray(_grey(7) / 255.0, mode="F").save(images / "float.tif")
    Image.fromarray((_grey(8) * 16).astype(np.uint16)).save(images / "deep.tif")  # 12-bit data in 16 bits
    Image.fromarray(np.full((64, 64), np.nan, np.float32), mode="F").save(images / "nan.tif")
    _corrupt_exif_jpeg(images / "exif.jpg", 9)
    (images / "outlink.png").symlink_to(outside)  # a link the user put in the root: followed
    # strays that no row names: a name that is not UTF-8, a folder that is not either, Windows and macOS leftovers
    (images / os.fsdecode(b"stray\xff.png")).write_bytes(b"junk")
    (images / os.fsdecode(b"d\xe9j\xe0")).mkdir()
    (images / "Thumbs.db").write_bytes(b"\x00" * 16)
    rows = [
        "g0,0",
        "g1,1",
        "g2,2",
        "café,0",  # the file on disk is named caf\xe9.png (Latin-1)
        "float,0",
        "deep,1",
        "exif,2",
        "outlink,0",
        "loop,0",
        "dangling,0",
        "folder,0",
        "fifo,0",
        "empty,0",
        "truncated,0",
        "text,0",
        "nothere,0",
        "g0,1",
        "m0,9",
        "g1,",
        "bomb,0",
        "nan,0",
    ]
    (root / "train.csv").write_text("id_code,diagnosis\n" + "\n".join(rows) + "\n")


def _folders_source(root: Path) -> None:
    """Class folders, recursive: a link back up, a class folder and a file whose names are not UTF-8."""
    for relative, seed in (("cls_a/a0.png", 11), ("cls_a/a1.png", 12), ("cls_a/deep/a2.png", 13), ("cls_b/b0.png", 14)):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        _photo(root / relative, seed)
    _photo(root / "cls_b" / os.fsdecode(ALIEN + b".png"), 15)
    alien_class = root / os.fsdecode(b"\xe9tude")
    alien_class.mkdir()
    _photo(alien_class / "e0.png", 16)
    (root / "cls_a" / "deep" / "up").symlink_to("..")  # back to cls_a: a loop
    (root / "self").symlink_to(".")  # the root itself as a class folder: a loop
    _photo(root / "loose.png", 17)  # in no class folder
    (root / "__MACOSX" / "cls_a").mkdir(parents=True)
    (root / "__MACOSX" / "cls_a" / "._a0.png").write_bytes(b"\x00\x05\x16\x07")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


def _manifest_source(root: Path, outside: Path) -> None:
    (root / "images").mkdir(parents=True)
    for name, seed in (("m0.png", 21), ("m1.png", 22), ("m2.png", 23)):
        _photo(root / "images" / name, seed)
    rows = [
        "images/m0.png,healthy fundus",
        "/etc/passwd,healthy fundus",
        "../outside.png,healthy fundus",
        f"{outside},healthy fundus",
        f"{root / 'images' / 'm1.png'},healthy fundus",  # absolute, but inside the root
        "images/../../outside.png,healthy fundus",
        ",healthy fundus",
        "images/nothere.png,healthy fundus",
        "images/m2.png,zebra stripes",
        "linked/../outside.png,healthy fundus",  # inside by its letters; through the link, outside
    ]
    (outside.parent / "elsewhere").mkdir()
    (root / "linked").symlink_to(outside.parent / "elsewhere")
    (root / "manifest.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    (root / "images" / "j0.png").write_bytes((root / "images" / "m0.png").read_bytes())
    lines = [
        '{"image": "images/j0.png", "label": "healthy fundus"}',
        "{not json",
        "[1, 2]",
        '{"image": "/etc/passwd", "label": "healthy fundus"}',
        "",
    ]
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def _table_sources(raw: Path) -> None:
    good = {"t0.png": 31, "t1.png": 32}
    rows = ["t0,0", "t1,1"]
    _aptos(raw / "semicolon", rows, good, b"id_code;diagnosis\nt0;0\nt1;1\n")
    _aptos(raw / "tabbed", rows, good, b"id_code\tdiagnosis\r\nt0\t0\r\nt1\t1\r\n")
    _aptos(raw / "utf16", rows, good, "id_code,diagnosis\r\nt0,0\r\nt1,1\r\n".encode("utf-16"))
    _aptos(raw / "missing_column", rows, good, b"id_code,grade\nt0,0\nt1,1\n")
    _aptos(raw / "empty_labels", rows, good, b"")
    _aptos(raw / "header_only", rows, good, b"id_code,diagnosis\n")
    _aptos(raw / "no_labels", rows, good)
    (raw / "no_labels" / "train.csv").unlink()
    _aptos(raw / "huge_cell", rows, good, b"id_code,diagnosis\nt0,0\nt1,1\nt2," + b"x" * 200_000 + b"\n")
    mixed = b"id_code,diagnosis\nt0,0\n" + "t1,Drüsen\n".encode("latin-1") + "t2,Drüsen\n".encode()
    _aptos(raw / "mixed_encoding", rows, good, mixed)


def _workbook(path: Path, rows: list[list[object]]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)


ODIR_HEADER = ["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus"]
ODIR_HEADER += ["Left-Diagnostic Keywords", "Right-Diagnostic Keywords"]


def _workbook_sources(raw: Path) -> None:
    (raw / "odir_corrupt" / "ODIR-5K").mkdir(parents=True)
    (raw / "odir_corrupt" / "ODIR-5K" / "data.xlsx").write_text("ID,Left-Fundus\n1,1_left.jpg\n")  # a CSV renamed
    _workbook(raw / "odir_no_header" / "ODIR-5K" / "data.xlsx", [[1, 60, "Male", "1_left.jpg", "1_right.jpg"]])
    _workbook(raw / "odir_header_only" / "ODIR-5K" / "data.xlsx", [ODIR_HEADER])
    images = raw / "odir_rows" / "ODIR-5K" / "Training Images"
    images.mkdir(parents=True)
    for name, seed in (("1_left.jpg", 41), ("1_right.jpg", 42), ("2_right.jpg", 43)):
        _photo(images / name, seed, "JPEG")
    rows: list[list[object]] = [
        ["Clinical data of ODIR"],  # a title row above the header
        ODIR_HEADER,
        [1, 61, "Female", "1_left.jpg", "1_right.jpg", "normal fundus", "normal fundus"],
        [2, 62, "Male", "2_left.jpg", "2_right.jpg", None, "normal fundus"],
        [3, 63, "Male", "3_left.jpg", "3_right.jpg", "normal fundus", "normal fundus"],
    ]
    _workbook(raw / "odir_rows" / "ODIR-5K" / "data.xlsx", rows)


def _jats_source(root: Path) -> None:
    write_pmc_oa(root, 2, 5)
    (root / "broken").mkdir()
    (root / "broken" / "a.nxml").write_text("<article><front><article-meta><title-group>")
    (root / "entities").mkdir()
    (root / "entities" / "e.nxml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE article [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<article>&x;</article>\n'
    )
    (root / "html").mkdir()
    (root / "html" / "h.nxml").write_text("<html><body><p>Not an article</p></body></html>")
    (root / "blank").mkdir()
    (root / "blank" / "b.nxml").write_bytes(b"")
    package = io.BytesIO()
    with tarfile.open(fileobj=package, mode="w:gz") as archive:
        for name, data in (("PMC1234567/a.nxml", b"<article/>" * 300), ("PMC1234567/f1.jpg", os.urandom(40_000))):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    (root / "PMC1234567.tar.gz").write_bytes(package.getvalue()[: len(package.getvalue()) // 2])  # cut off


SOURCES: list[dict[str, Any]] = [
    {"adapter": "aptos2019", "name": "names", "root": "raw/names"},
    {
        "adapter": "image_folder",
        "name": "folders",
        "root": "raw/folders",
        "options": {"modality": "CFP", "recursive": True},
        # a class folder whose name is not UTF-8 is mapped by the name intake shows for it
        "labels": {"cls_a": "dr.none", "cls_b": "dr.mild", "\\xe9tude": "dr.moderate"},
    },
    {
        "adapter": "manifest",
        "name": "manifest",
        "root": "raw/manifest",
        "options": {"file": "manifest.csv", "image_column": "image", "label_columns": ["label"], "modality": "CFP"},
    },
    {
        "adapter": "manifest",
        "name": "jsonl",
        "root": "raw/manifest",
        "options": {"file": "manifest.jsonl", "image_column": "image", "label_columns": ["label"], "modality": "CFP"},
    },
    *(
        {"adapter": "aptos2019", "name": name, "root": f"raw/{name}"}
        for name in (
            "semicolon",
            "tabbed",
            "utf16",
            "missing_column",
            "empty_labels",
            "header_only",
            "no_labels",
            "huge_cell",
            "mixed_encoding",
        )
    ),
    *(
        {"adapter": "odir5k", "name": name, "root": f"raw/{name}"}
        for name in ("odir_corrupt", "odir_no_header", "odir_header_only", "odir_rows")
    ),
    {"adapter": "pmc_oa", "name": "jats", "root": "raw/jats"},
]


def _recipe(folder: Path, sources: list[dict[str, Any]], **overrides: Any) -> Path:
    recipe = {
        "name": "hostile",
        "catalog": "hostile.duckdb",
        "sources": sources,
        "ingest": {"workers": 1},
        "teacher": {"kind": "offline"},
        "export": {"out": "export", "allow_empty": True},
        **overrides,
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    return path


def rrd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real `rrd` command in a process of its own (its exit code, its stdout, its log on stderr)."""
    environment = {**os.environ, "RRD_PSEUDONYM_KEY": "test-key", "RRD_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "retinal_reason_data.cli", *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=300,
        env=environment,
        cwd=cwd,
    )


@dataclass
class Corpus:
    folder: Path
    recipe: Path
    ingest: subprocess.CompletedProcess[str]
    stats: dict[str, Any]
    quarantine: list[dict[str, Any]]
    cases: dict[str, Case]

    def refused(self, source: str, reason: str) -> list[dict[str, Any]]:
        return [row for row in self.quarantine if row["source"] == source and row["reason"] == reason]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    folder = tmp_path_factory.mktemp("hostile")
    raw = folder / "raw"
    outside = folder / "outside.png"  # beside every source's root: outside all of them
    _photo(outside, 99)
    _names_source(raw / "names", outside)
    _folders_source(raw / "folders")
    _manifest_source(raw / "manifest", outside)
    _table_sources(raw)
    _workbook_sources(raw)
    _jats_source(raw / "jats")
    recipe = _recipe(folder, SOURCES)
    ingest = rrd("ingest", str(recipe))
    stats = rrd("stats", str(recipe), "--json")
    assert stats.returncode == 0, stats.stderr
    with duckdb.connect(str(folder / "hostile.duckdb"), read_only=True) as db:
        columns = ("source", "file", "row", "reason", "detail")
        quarantine = [dict(zip(columns, row, strict=True)) for row in db.execute("SELECT * FROM quarantine").fetchall()]
        cases = {
            case_id: Case.model_validate_json(data)
            for case_id, data in db.execute("SELECT case_id, data FROM cases").fetchall()
        }
    return Corpus(folder, recipe, ingest, json.loads(stats.stdout), quarantine, cases)


# --- the kinds -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """A bad input: the source it is in, the reason it is quarantined for, a piece of its file's name, its row."""

    source: str
    reason: str
    file: str
    row: str | None = None
    says: str = ""  # a phrase the message must hold besides the file, the row and the reason


REFUSALS = {
    # images and their names
    "link that loops": Refusal("names", "link_loop", "train.csv", "10", "loop.png"),
    "dangling link": Refusal("names", "link_dangling", "train.csv", "11", "absent.png"),
    "folder named like an image": Refusal("names", "image_not_a_file", "train.csv", "12", "is a folder"),
    "FIFO named like an image": Refusal("names", "image_not_a_file", "train.csv", "13", "not a regular file"),
    "empty image file": Refusal("names", "image_unreadable", "train.csv", "14", "file is empty"),
    "truncated PNG": Refusal("names", "image_unreadable", "train.csv", "15", "truncated.png"),
    "text saved as .png": Refusal("names", "image_unreadable", "train.csv", "16", "not an image file"),
    "image the labels name but nobody saved": Refusal("names", "image_missing", "train.csv", "17", "nothere"),
    "row repeating a case id": Refusal("names", "duplicate_case_id", "train.csv", "18", "'g0'"),
    "label no mapping knows": Refusal("names", "unknown_label", "train.csv", "19", "'9'"),
    "row without a label": Refusal("names", "row_incomplete", "train.csv", "20", "empty diagnosis"),
    "decompression bomb": Refusal("names", "image_too_large", "train.csv", "21", "9000x9000"),
    "float TIFF without a finite sample": Refusal("names", "image_unreadable", "train.csv", "22", "NaN"),
    # folders and links
    "folder link back up (recursive)": Refusal("folders", "link_loop", "cls_a/deep/up", None, "a loop"),
    "root linked as a class folder": Refusal("folders", "link_loop", "folders/self", None, "a loop"),
    "image in no class folder": Refusal("folders", "label_missing", "loose.png", None, "outside any class folder"),
    # manifests
    "manifest naming /etc/passwd": Refusal("manifest", "outside_root", "manifest.csv", "3", "allow_outside_root"),
    "manifest naming ../outside.png": Refusal("manifest", "outside_root", "manifest.csv", "4", "'../outside.png'"),
    "manifest naming an absolute path outside": Refusal("manifest", "outside_root", "manifest.csv", "5", "outside"),
    "manifest climbing out through a folder": Refusal("manifest", "outside_root", "manifest.csv", "7", "../../"),
    "manifest row without an image": Refusal("manifest", "row_incomplete", "manifest.csv", "8", "empty 'image'"),
    "manifest naming a missing image": Refusal("manifest", "image_missing", "manifest.csv", "9", "nothere.png"),
    "manifest label no mapping knows": Refusal("manifest", "unknown_label", "manifest.csv", "10", "zebra"),
    "manifest climbing out through a link": Refusal("manifest", "outside_root", "manifest.csv", "11", "linked/../"),
    "JSONL line that is not JSON": Refusal("jsonl", "record_invalid", "manifest.jsonl", "2", "not valid JSON"),
    "JSONL line that is a list": Refusal("jsonl", "record_invalid", "manifest.jsonl", "3", "got list"),
    "JSONL naming /etc/passwd": Refusal("jsonl", "outside_root", "manifest.jsonl", "4", "/etc/passwd"),
    # label tables
    "label table without its label column": Refusal(
        "missing_column", "labels_header", "train.csv", "1", "columns found: 'id_code', 'grade'; expected"
    ),
    "label file of 0 bytes": Refusal("empty_labels", "labels_empty", "train.csv", None, "0 bytes"),
    "label file with a header only": Refusal("header_only", "labels_empty", "train.csv", None, "no row under"),
    "label file absent": Refusal("no_labels", "labels_missing", "train.csv", None, "not found"),
    "cell over the CSV size limit": Refusal("huge_cell", "labels_unreadable", "train.csv", "4", "field limit"),
    "label file mixing two encodings": Refusal("mixed_encoding", "labels_undecodable", "train.csv", "3", "b'"),
    # workbooks
    "workbook that is a renamed CSV": Refusal("odir_corrupt", "labels_unreadable", "data.xlsx", None, "workbook"),
    "workbook without a header row": Refusal("odir_no_header", "labels_header", "data.xlsx", None, "no header row"),
    "workbook with a header only": Refusal("odir_header_only", "labels_empty", "data.xlsx", None, "no row"),
    "workbook row without keywords": Refusal("odir_rows", "row_incomplete", "data.xlsx", "4", "Left-Diagnostic"),
    "workbook row whose images are missing": Refusal("odir_rows", "image_missing", "data.xlsx", "5", "3_left.jpg"),
    # JATS
    "malformed JATS": Refusal("jats", "malformed_xml", "a.nxml", None, "not well-formed"),
    "JATS declaring an external entity": Refusal("jats", "xml_entities", "e.nxml", None, "entities"),
    "HTML saved as .nxml": Refusal("jats", "not_jats", "h.nxml", None, "<html>"),
    "empty .nxml": Refusal("jats", "malformed_xml", "b.nxml", None, "not well-formed"),
    "truncated .tar.gz package": Refusal("jats", "package_unreadable", "PMC1234567.tar.gz", None, "not a readable"),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_each_bad_input_is_refused_with_its_file_row_and_reason(corpus: Corpus, kind: str) -> None:
    expected = REFUSALS[kind]
    found = [row for row in corpus.refused(expected.source, expected.reason) if expected.file in row["file"]]
    if expected.row is not None:
        found = [row for row in found if row["row"] == expected.row]
    assert found, (
        f"{kind}: no {expected.reason} record for {expected.file} in {corpus.refused(expected.source, expected.reason)}"
    )
    detail = found[0]["detail"]
    shown_file = Path(expected.file).name
    assert shown_file in detail, detail
    if expected.row is not None:
        assert f"line {expected.row}" in detail or f"row {expected.row}" in detail, detail
    assert expected.says in detail, detail
    assert not any(word in detail for word in FORBIDDEN), detail


GOOD = {  # odd inputs that are not wrong: they must get through as cases
    "file name that is not UTF-8, named in UTF-8 by the labels": "names:café",
    "float TIFF with samples 0-1": "names:float",
    "16-bit TIFF holding 12-bit data": "names:deep",
    "JPEG with corrupt EXIF": "names:exif",
    "link in the root to a photograph elsewhere": "names:outlink",
    "file name that is not UTF-8 in a class folder": "folders:cls_b/caf\\xe9.png",
    "class folder whose name is not UTF-8": "folders:\\xe9tude/e0.png",
    "absolute manifest path inside the root": f"manifest:{'{root}'}/images/m1.png",
    "label table separated by ';'": "semicolon:t1",
    "label table separated by tabs, CRLF": "tabbed:t1",
    "label table in UTF-16": "utf16:t1",
    "rows above a cell too large for CSV": "huge_cell:t1",
    "workbook with a title row above the header": "odir_rows:1_right",
}


@pytest.mark.parametrize("kind", list(GOOD))
def test_each_odd_but_good_input_gets_through(corpus: Corpus, kind: str) -> None:
    case_id = GOOD[kind].replace("{root}", str(corpus.folder / "raw" / "manifest"))
    assert case_id in corpus.cases, f"{kind}: {case_id} not among {sorted(corpus.cases)}"
    case = corpus.cases[case_id]
    for image in case.images:
        assert Path(image.path).is_file() and image.quality is not None
    if kind.endswith("TIFF with samples 0-1") or kind.startswith("16-bit"):
        assert image.quality.brightness > 0.2  # decoded to its own range, not black


def test_every_good_row_of_a_source_with_bad_rows_gets_through(corpus: Corpus) -> None:
    by_source = Counter(case.source for case in corpus.cases.values())
    assert by_source == {
        "names": 8,  # g0-g2, café, float, deep, exif, outlink
        "folders": 6,  # a0, a1, deep/a2, b0, caf\xe9, \xe9tude/e0
        "manifest": 2,
        "jsonl": 1,
        "semicolon": 2,
        "tabbed": 2,
        "utf16": 2,
        "huge_cell": 2,
        "odir_rows": 3,
        "jats": 2,
    }


ROWS_READ = {  # what each source holds: every row (or file) is a case or a quarantine record
    "names": 21,
    "folders": 9,  # 6 images, 2 loops, 1 loose image
    "manifest": 10,
    "jsonl": 4,
    "semicolon": 2,
    "tabbed": 2,
    "utf16": 2,
    "missing_column": 1,  # the file, once
    "empty_labels": 1,
    "header_only": 1,
    "no_labels": 1,
    "huge_cell": 3,  # two rows, then the file from the row it cannot read
    "mixed_encoding": 1,
    "odir_corrupt": 1,
    "odir_no_header": 1,
    "odir_header_only": 1,
    "odir_rows": 6,  # three patients, two eyes each
}


def test_stats_account_for_every_row_and_file(corpus: Corpus) -> None:
    reconciliation = corpus.stats["reconciliation"]
    for source, rows in ROWS_READ.items():
        assert reconciliation[source]["read"] == rows, (source, reconciliation[source])
        assert reconciliation[source]["read"] == reconciliation[source]["cases"] + reconciliation[source]["quarantined"]
    assert sum(corpus.stats["quarantined_by_reason"].values()) == len(corpus.quarantine)
    assert sum(corpus.stats["cases_by_source"].values()) == len(corpus.cases)


def test_the_build_goes_on_and_says_what_it_refused_without_a_traceback(corpus: Corpus) -> None:
    result = corpus.ingest
    assert result.returncode == 0, result.stderr
    assert not any(word in result.stdout + result.stderr for word in FORBIDDEN), result.stderr
    assert "names  " in result.stdout and "8 cases, 13 quarantined" in result.stdout
    # sources that gave nothing are named, with what their quarantine says
    assert "source 'missing_column' gave no case (quarantined: labels_header 1)" in result.stderr
    assert "source 'empty_labels' gave no case" in result.stderr and "0 bytes" in result.stderr


def test_delimiters_and_pillow_warnings_are_said_with_the_file(corpus: Corpus) -> None:
    log = corpus.ingest.stderr
    assert "semicolon/train.csv: columns are separated by ';', not ','; read with ';'" in log
    assert "tabbed/train.csv: columns are separated by tab" in log
    assert "exif.jpg: UserWarning: Corrupt EXIF data" in log
    assert "1 image warnings (logged)" in corpus.ingest.stdout


def test_names_that_are_not_utf8_are_shown_escaped_and_read_through_a_link(corpus: Corpus) -> None:
    case = corpus.cases["folders:cls_b/caf\\xe9.png"]
    assert case.provenance.file.endswith("cls_b/caf\\xe9.png")
    link = Path(case.images[0].path)
    assert link.is_symlink() and os.fsencode(os.readlink(link)).endswith(b"cls_b/caf\xe9.png")
    assert (
        link.read_bytes() == (corpus.folder / "raw" / "folders" / "cls_b" / os.fsdecode(ALIEN + b".png")).read_bytes()
    )


def test_nothing_outside_the_roots_was_read(corpus: Corpus) -> None:
    outside = str(corpus.folder / "outside.png")
    for case in corpus.cases.values():
        if case.case_id != "names:outlink":  # the user's own link inside the root
            assert all(not image.path.endswith("outside.png") and "passwd" not in image.path for image in case.images)
    assert all(outside not in row["file"] for row in corpus.quarantine)


@pytest.mark.slow
def test_outside_the_root_is_read_when_the_recipe_allows_it(tmp_path: Path) -> None:
    root = tmp_path / "raw" / "manifest"
    (root / "images").mkdir(parents=True)
    _photo(root / "images" / "m0.png", 21)
    _photo(tmp_path / "raw" / "outside.png", 99)
    (root / "manifest.csv").write_text("image,label\nimages/m0.png,healthy fundus\n../outside.png,healthy fundus\n")
    source = {**SOURCES[2], "allow_outside_root": True}
    result = rrd("ingest", str(_recipe(tmp_path, [source])))
    assert result.returncode == 0 and "2 cases, 0 quarantined" in result.stdout, result.stdout + result.stderr


# --- recipes ---------------------------------------------------------------------------------------------------
def _source_recipe(folder: Path) -> dict[str, Any]:
    _aptos(folder / "raw" / "good", ["t0,0", "t1,1"], {"t0.png": 31, "t1.png": 32})
    return {"adapter": "aptos2019", "name": "good", "root": "raw/good"}


RECIPE_ERRORS = {
    "unknown adapter": (
        lambda folder: _recipe(folder, [{**_source_recipe(folder), "adapter": "aptos"}]),
        2,
        ["key 'sources.0.adapter'", "unknown adapter 'aptos'", "did you mean 'aptos2019'", "image_folder, jsiec"],
    ),
    "label mapped to no ontology code": (
        lambda folder: _recipe(folder, [{**_source_recipe(folder), "labels": {"4": "dr.proliferate"}}]),
        2,
        ["key 'sources.0.labels'", "source 'good'", "label '4'", "'dr.proliferate'", "dr.proliferative"],
    ),
    "recipe in Latin-1": (
        lambda folder: _latin1(_recipe(folder, [_source_recipe(folder)])),
        2,
        ["line 1", "b'", "do not decode as UTF-8", "save the recipe as UTF-8"],
    ),
    "recipe that is a folder": (lambda folder: _folder(folder), 2, ["is a folder, not a recipe file"]),
    "recipe not found": (lambda folder: folder / "absent.yaml", 2, ["recipe file not found"]),
    "recipe that is a list": (lambda folder: _text(folder, "- name: x\n"), 2, ["expected a mapping"]),
    "unknown key": (lambda folder: _recipe(folder, [_source_recipe(folder)], sourcess=[]), 2, ["'sourcess'"]),
    "manifest delimiter that is not the file's": (
        lambda folder: _semicolon_manifest(folder),
        2,
        ["option 'image_column': no column 'image'", "columns: image;label", "set `delimiter: ';'`"],
    ),
}


def _latin1(path: Path) -> Path:
    path.write_bytes(b"# recette pr\xe9par\xe9e\n" + path.read_bytes())
    return path


def _folder(folder: Path) -> Path:
    (folder / "recipe.yaml").mkdir()
    return folder / "recipe.yaml"


def _text(folder: Path, text: str) -> Path:
    (folder / "recipe.yaml").write_text(text)
    return folder / "recipe.yaml"


def _semicolon_manifest(folder: Path) -> Path:
    root = folder / "raw" / "manifest"
    (root / "images").mkdir(parents=True)
    _photo(root / "images" / "m0.png", 21)
    (root / "manifest.csv").write_text("image;label\nimages/m0.png;healthy fundus\n")
    return _recipe(folder, [SOURCES[2]])


@pytest.mark.parametrize("kind", list(RECIPE_ERRORS))
def test_recipe_mistakes_stop_with_exit_2_and_the_key(tmp_path: Path, kind: str) -> None:
    make, code, phrases = RECIPE_ERRORS[kind]
    result = CliRunner().invoke(app, ["ingest", str(make(tmp_path))])
    assert result.exit_code == code, result.output
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert not any(word in result.output for word in FORBIDDEN), result.output


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-32"])
def test_recipes_saved_as_unicode_with_a_byte_order_mark_load(tmp_path: Path, encoding: str) -> None:
    path = _recipe(tmp_path, [_source_recipe(tmp_path)], name="café")
    path.write_bytes(path.read_text(encoding="utf-8").replace("café", "cafe").encode(encoding))
    assert path.read_bytes().startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF8, codecs.BOM_UTF32_LE))
    result = CliRunner().invoke(app, ["ingest", str(path)])
    assert result.exit_code == 0 and "2 cases, 0 quarantined" in result.stdout, result.output


# --- teacher replies -------------------------------------------------------------------------------------------
class OddReplies(FakeOpenAI):
    """The fake server, also able to answer 200 with a body of any content type (`raw`)."""

    async def _reply(self, request: dict[str, Any], headers: dict[str, str], fault: Fault | None, writer: Any) -> bool:
        if fault is None or fault.kind != "raw":
            return await super()._reply(request, headers, fault, writer)
        body = fault.text.encode()
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {fault.headers['content-type']}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        return True


def raw_reply(body: str, content_type: str = "application/json") -> Fault:
    return Fault("raw", text=body, headers={"content-type": content_type})


TEACHER_FAULTS = {
    "JSON cut off": invalid_json(),
    "no choices key": raw_reply('{"id": "chatcmpl-1", "object": "chat.completion", "model": "m"}'),
    "a JSON list": raw_reply("[]"),
    "HTML error page with 200": raw_reply("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    "plain text": raw_reply("upstream connect error", "text/plain"),
}


@pytest.mark.slow
def test_teacher_replies_that_are_not_completions_are_counted_and_the_rest_get_through(tmp_path: Path) -> None:
    source = _source_recipe(tmp_path)
    _aptos(tmp_path / "raw" / "good", [f"t{i},{i % 5}" for i in range(6)], {f"t{i}.png": 50 + i for i in range(6)})
    with OddReplies() as server:
        server.inject(*TEACHER_FAULTS.values())
        teacher = {
            "kind": "openai",
            "base_url": server.base_url,
            "model": "fake",
            "max_retries": 0,  # each odd reply is one failed attempt
            "max_consecutive_failures": 100,
            "backoff_s": 0.01,
            "timeout_s": 20,
        }
        recipe = _recipe(tmp_path, [source], teacher=teacher)
        result = rrd("build", str(recipe), "--out", str(tmp_path / "elsewhere"))
        served = len(server.requests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any(word in result.stdout + result.stderr for word in FORBIDDEN), result.stderr
    stats = json.loads(rrd("stats", str(recipe), "--json").stdout)
    generations = stats["generations"]
    failed = generations["failed_by_reason"]
    transport = {reason: count for reason, count in failed.items() if reason in TRANSPORT_KINDS}
    assert sum(transport.values()) == len(TEACHER_FAULTS), failed
    assert generations["attempts"] == generations["verified"] + sum(failed.values()) == served
    assert sum(generations["failed_calls_by_reason"].values()) >= len(TEACHER_FAULTS)
    with duckdb.connect(str(tmp_path / "hostile.duckdb"), read_only=True) as db:
        details = [detail or "" for (detail,) in db.execute("SELECT detail FROM teacher_events").fetchall()]
    assert len(details) >= len(TEACHER_FAULTS) and not any(w in d for d in details for w in FORBIDDEN), details
    # the export went to --out; stats find it there without being told again
    assert stats["exported"] and sum(stats["exported"]["rl"].values()) > 0


TRANSPORT_KINDS = {"malformed_response", "server_error", "connection_error", "timeout", "rate_limited", "bad_request"}
