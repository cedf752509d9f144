"""Phantom copies of colour fundus collections in their real on-disk layouts, quirks included.

No real patient data: every image is drawn by `phantoms.images.fundus_photo` with the lesions its labels
name. Each writer takes (root, cases, seed), is deterministic for a given seed, and from `QUIRKS_FROM` cases
on adds the defects that real downloads carry (byte-order marks, CRLF, padded headers and cells, unnamed
index columns, upper-case extensions, a labelled file that is missing, Thumbs.db / .DS_Store / __MACOSX).
The docstring of each writer lists what its adapter should make of it.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retinal_reason_data.ingest.sources.jsiec import CLASSES
from retinal_reason_data.ingest.sources.odir5k import KEYWORDS
from retinal_reason_data.ingest.sources.rfmid import COLUMNS
from retinal_reason_data.phantoms.images import fundus_photo
from retinal_reason_data.text import stable_hash

SIDE = 112  # small phantoms keep tests fast; the layouts, not the pixels, are under test
QUIRKS_FROM = 8
GRADES = ("dr.none", "dr.mild", "dr.moderate", "dr.severe", "dr.proliferative")
DME_RISK = ("dme.none", "dme.risk1", "dme.risk2")


# ----------------------------------------------------------------------------------------------------
# shared helpers


def _save_fundus(path: Path, patient_seed: int, eye: str, codes: Sequence[str], image_seed: int = 0) -> None:
    """A phantom fundus photograph at `path`, encoded by its suffix (PNG or JPEG)."""
    image = fundus_photo(patient_seed, eye if eye in ("left", "right") else "right", codes, image_seed, SIDE)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    if path.suffix.lower() == ".png":
        image.save(buffer, format="PNG", compress_level=1)
    else:
        image.save(buffer, format="JPEG", quality=88)
    path.write_bytes(buffer.getvalue())


def _write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], bom: bool, crlf: bool) -> None:
    """A CSV file as spreadsheet tools and pandas leave them (quoted where needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((("\ufeff" if bom else "") + buffer.getvalue()).encode("utf-8"))


def _write_strays(root: Path, folder: Path, resource_fork_of: str) -> None:
    """Thumbs.db and .DS_Store beside the images, and the __MACOSX folder a macOS zip leaves behind."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 60)
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 24)
    fork = root / "__MACOSX" / folder.relative_to(root) / f"._{resource_fork_of}"
    fork.parent.mkdir(parents=True, exist_ok=True)
    fork.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")


def _xlsx_bytes(rows: Sequence[Sequence[object]], sheet: str = "Sheet1") -> bytes:
    """An .xlsx workbook whose bytes depend only on `rows` (fixed timestamps inside and in the zip)."""
    from openpyxl import Workbook

    workbook = Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    for row in rows:
        worksheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    stamp = "2019-01-01T00:00:00Z"
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = re.sub(r"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rf"\g<1>{stamp}", data.decode())
                data = text.encode()
            target.writestr(zipfile.ZipInfo(info.filename, date_time=(2019, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def _quirks(cases: int) -> bool:
    return cases >= QUIRKS_FROM


# ----------------------------------------------------------------------------------------------------
# EyePACS (Kaggle Diabetic Retinopathy Detection 2015)


def write_eyepacs(root: Path, cases: int, seed: int) -> None:
    """trainLabels.csv (`image,level`, BOM + CRLF) with train/{patient}_{eye}.jpeg, and the test solution
    retinopathy_solution.csv (`image,level,Usage ` with a padded header) with test/; both eyes of a patient
    sit in one split, the last third of the patients in test.

    Quirks from QUIRKS_FROM cases (row index in parentheses): (1) image missing, (2) file saved as .JPEG,
    (3) padded cells, (4) a name that is not {patient}_{left|right} (name_unparsed), (6) empty level
    (row_incomplete); Thumbs.db in train/, .DS_Store and __MACOSX/ at the root.
    """
    rng = np.random.default_rng(seed)
    patients = math.ceil(cases / 2)
    test_from = max(1, math.ceil(patients * 2 / 3)) if patients > 1 else patients
    train_rows: list[list[str]] = []
    test_rows: list[list[str]] = []
    base_grade = 0
    for index in range(cases):
        patient_no, eye = divmod(index, 2)
        side = ("left", "right")[eye]
        patient = 10 + 7 * patient_no + seed % 5
        if eye == 0:
            base_grade = int(rng.integers(0, 5))
        grade = int(np.clip(base_grade + (int(rng.integers(-1, 2)) if eye else 0), 0, 4))
        quirk = index if _quirks(cases) else -1
        name = f"{patient}-{side}" if quirk == 4 else f"{patient}_{side}"
        split = "test" if patient_no >= test_from else "train"
        level = "" if quirk == 6 else str(grade)
        cells = [f" {name} ", f"{level} "] if quirk == 3 else [name, level]
        if split == "train":
            train_rows.append(cells)
        else:
            test_rows.append([*cells, "Public" if index % 3 else "Private"])
        if quirk == 1:
            continue
        suffix = ".JPEG" if quirk == 2 else ".jpeg"
        _save_fundus(root / split / f"{name}{suffix}", seed * 100_003 + patient, side, [GRADES[grade]], index)
    _write_table(root / "trainLabels.csv", ["image", "level"], train_rows, bom=True, crlf=True)
    if test_rows:
        _write_table(root / "retinopathy_solution.csv", ["image", "level", "Usage "], test_rows, bom=False, crlf=False)
    if _quirks(cases):
        _write_strays(root, root / "train", "10_left.jpeg")


# ----------------------------------------------------------------------------------------------------
# EyeQ (image quality over EyePACS)


def write_eyeq(root: Path, cases: int, seed: int) -> None:
    """Label_EyeQ_train.csv and Label_EyeQ_test.csv (`,image,quality,DR_grade`: a pandas index column with an
    empty name) over EyePACS images in train/ and test/; quality 0 good, 1 usable, 2 reject (every fourth).

    Quirks from QUIRKS_FROM cases: (2) image missing, (5) quality 3 (value_invalid), (6) file saved as .JPEG;
    the train table has CRLF, the test table a BOM; Thumbs.db, .DS_Store, __MACOSX/.
    """
    rng = np.random.default_rng(seed)
    test_from = max(1, cases - cases // 3)
    tables: dict[str, list[list[object]]] = {"train": [], "test": []}
    for index in range(cases):
        split = "test" if index >= test_from else "train"
        patient, side = 20 + 3 * (index // 2) + seed % 7, ("left", "right")[index % 2]
        name = f"{patient}_{side}.jpeg"
        quality = (0, 1, 0, 2)[index % 4]
        grade = int(rng.integers(0, 5))
        quirk = index if _quirks(cases) else -1
        table = tables[split]
        table.append([len(table), name, 3 if quirk == 5 else quality, grade])
        if quirk == 2:
            continue
        file_name = name.replace(".jpeg", ".JPEG") if quirk == 6 else name
        codes = [GRADES[grade], "media_haze"] if quality == 2 else [GRADES[grade]]
        _save_fundus(root / split / file_name, seed * 100_003 + patient, side, codes, index)
    header = ["", "image", "quality", "DR_grade"]
    _write_table(root / "Label_EyeQ_train.csv", header, tables["train"], bom=False, crlf=True)
    _write_table(root / "Label_EyeQ_test.csv", header, tables["test"], bom=True, crlf=False)
    if _quirks(cases):
        _write_strays(root, root / "train", "20_left.jpeg")


# ----------------------------------------------------------------------------------------------------
# Messidor-2 (with the adjudicated grades of Krause et al.)


def messidor2_exam_ids(exam: int) -> tuple[str, str]:
    """The two image ids of one phantom exam, adjacent in sort order as Messidor-2's are."""
    if exam % 2 == 0:
        number = 43800 + 10 * exam
        return f"20051020_{number:05d}_0100_PP.png", f"20051020_{number + 5:05d}_0100_PP.png"
    return f"IM{4000 + 2 * exam:06d}.jpg", f"IM{4001 + 2 * exam:06d}.jpg"


def write_messidor2(root: Path, cases: int, seed: int) -> None:
    """messidor_data.csv (`image_id,adjudicated_dr_grade,adjudicated_dme ,adjudicated_gradable`, BOM + CRLF,
    a padded header) and IMAGES/: two images per exam (one per eye), Messidor-Original `.png` names and
    Brest `IM*.jpg` names whose files are `.JPG`. Some grades are written as floats ('2.0').

    Quirks from QUIRKS_FROM cases: (3) ungradable (empty grades, gradable 0: gradable False, no finding),
    (6) image missing, (7) gradable 1 with an empty grade (row_incomplete); .DS_Store and Thumbs.db.
    """
    rng = np.random.default_rng(seed)
    images = root / "IMAGES"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    for index in range(cases):
        exam, eye = divmod(index, 2)
        image_id = messidor2_exam_ids(exam)[eye]
        grade = int(rng.integers(0, 5))
        dme = int(grade >= 2 and rng.random() < 0.5)
        quirk = index if _quirks(cases) else -1
        grade_text = f"{grade}.0" if index % 3 == 2 else str(grade)
        if quirk == 3:
            rows.append([image_id, "", "", "0"])
        elif quirk == 7:
            rows.append([image_id, "", str(dme), "1"])
        else:
            rows.append([image_id, grade_text, str(dme), "1"])
        if quirk == 6:
            continue
        file_name = image_id[:-4] + ".JPG" if image_id.endswith(".jpg") else image_id
        codes = [GRADES[grade]] + (["lesion.hard_exudate"] if dme else []) + (["media_haze"] if quirk == 3 else [])
        _save_fundus(images / file_name, seed * 100_003 + exam, ("left", "right")[eye], codes, index)
    header = ["image_id", "adjudicated_dr_grade", "adjudicated_dme ", "adjudicated_gradable"]
    _write_table(root / "messidor_data.csv", header, rows, bom=True, crlf=True)
    if _quirks(cases):
        (images / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (images / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")


# ----------------------------------------------------------------------------------------------------
# IDRiD, B. Disease Grading


IDRID_GRADING = "B. Disease Grading"


def write_idrid(root: Path, cases: int, seed: int) -> None:
    """IDRiD disease grading: `2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv` and
    `b. ..._Testing Labels.csv` (`Image name,Retinopathy grade,Risk of macular edema ` + trailing empty
    columns), images `1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NNN.jpg`; ids restart at
    IDRiD_001 in each split.

    Quirks from QUIRKS_FROM cases: training (1) image missing, the first test image saved as .JPG, a row of
    empty cells at the end of the training table (BOM + CRLF there), .DS_Store / Thumbs.db / __MACOSX.
    """
    rng = np.random.default_rng(seed)
    base = root / IDRID_GRADING
    test_from = max(1, cases - cases // 3)
    tables: dict[str, list[list[str]]] = {"train": [], "test": []}
    for index in range(cases):
        split = "test" if index >= test_from else "train"
        number = index + 1 if split == "train" else index - test_from + 1
        name = f"IDRiD_{number:03d}"
        grade = int(rng.integers(0, 5))
        dme = 0 if grade == 0 else int(rng.integers(0, 3))
        tables[split].append([name, str(grade), str(dme), "", "", "", ""])
        if _quirks(cases) and index == 1:
            continue
        folder = base / "1. Original Images" / ("a. Training Set" if split == "train" else "b. Testing Set")
        suffix = ".JPG" if _quirks(cases) and index == test_from else ".jpg"
        codes = [GRADES[grade]] + (["lesion.hard_exudate"] if dme else [])
        _save_fundus(folder / f"{name}{suffix}", seed * 100_003 + index, "right" if index % 2 else "left", codes)
    truths = base / "2. Groundtruths"
    header = ["Image name", "Retinopathy grade", "Risk of macular edema ", "", "", "", ""]
    train_rows = tables["train"] + ([["", "", "", "", "", "", ""]] if _quirks(cases) else [])
    _write_table(truths / "a. IDRiD_Disease Grading_Training Labels.csv", header, train_rows, bom=True, crlf=True)
    if tables["test"]:
        _write_table(truths / "b. IDRiD_Disease Grading_Testing Labels.csv", header, tables["test"], False, False)
    if _quirks(cases):
        _write_strays(root, base / "1. Original Images" / "a. Training Set", "IDRiD_001.jpg")


# ----------------------------------------------------------------------------------------------------
# ODIR-5K


ODIR_EYE_KEYWORDS: tuple[tuple[str, ...], ...] = (
    ("normal fundus",),
    ("moderate non proliferative retinopathy",),
    ("mild nonproliferative retinopathy", "hypertensive retinopathy"),
    ("glaucoma",),
    ("cataract",),
    ("dry age-related macular degeneration", "drusen"),
    ("pathological myopia",),
    ("epiretinal membrane", "laser spot"),
    ("lens dust", "normal fundus"),
    ("low image quality",),
    ("wet age-related macular degeneration",),
    ("branch retinal vein occlusion", "vessel tortuosity"),
)
_ODIR_FLAG_OF = {
    "retinopathy": "D",  # matched as a word in DR keywords below
    "glaucoma": "G",
    "cataract": "C",
    "age-related macular degeneration": "A",
    "drusen": "A",
    "hypertensive retinopathy": "H",
    "myopia": "M",
}
ODIR_FLAGS = ("N", "D", "G", "C", "A", "H", "M", "O")
ODIR_UNKNOWN_KEYWORD = "spotted membranous change"


def _odir_flags(keywords: Sequence[str]) -> list[int]:
    """The patient-level N D G C A H M O flags from both eyes' keywords (as ODIR sets them, roughly)."""
    flags = dict.fromkeys(ODIR_FLAGS, 0)
    for keyword in keywords:
        if keyword in ("normal fundus", "lens dust", "low image quality"):
            continue
        if keyword == "hypertensive retinopathy":
            flags["H"] = 1
        elif "retinopathy" in keyword:
            flags["D"] = 1
        else:
            letters = [flag for phrase, flag in _ODIR_FLAG_OF.items() if phrase in keyword]
            for letter in letters or ["O"]:
                flags[letter] = 1
    flags["N"] = int(not any(flags.values()))
    return [flags[flag] for flag in ODIR_FLAGS]


def write_odir5k(root: Path, cases: int, seed: int) -> None:
    """ODIR-5K as the Kaggle download holds it: `ODIR-5K/data.xlsx` (one row per patient: ID, Patient Age,
    Patient Sex, Left-Fundus, Right-Fundus, Left-/Right-Diagnostic Keywords joined by the full-width comma
    '，', patient-level flags N D G C A H M O) with `ODIR-5K/Training Images/{ID}_{left|right}.jpg`, and the
    per-eye copy `full_df.csv` (same columns plus filepath, labels, target, filename) with
    `preprocessed_images/`. `cases` counts eyes, rounded up to whole patients (two eyes each).

    Quirks from QUIRKS_FROM eyes: (2) keywords joined by an ASCII comma, (3) image missing in both copies,
    (5) a keyword no mapping knows (unknown_label at intake), (6) file saved as .JPG, (8) 'lens dust'
    beside 'normal fundus' (ignored), (9) 'low image quality' alone (gradable False, no finding).
    """
    rng = np.random.default_rng(seed)
    images = root / "ODIR-5K" / "Training Images"
    preprocessed = root / "preprocessed_images"
    images.mkdir(parents=True, exist_ok=True)
    preprocessed.mkdir(parents=True, exist_ok=True)
    header = ["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus", "Left-Diagnostic Keywords"]
    header += ["Right-Diagnostic Keywords", *ODIR_FLAGS]
    sheet: list[list[object]] = [header]
    per_eye: list[list[object]] = []
    for patient_no in range(math.ceil(cases / 2)):
        patient = patient_no * 3 + seed % 3
        age, sex = int(rng.integers(35, 85)), ("Female", "Male")[int(rng.integers(0, 2))]
        eye_keywords: list[tuple[str, ...]] = []
        cells: list[str] = []
        for eye in (0, 1):
            index = 2 * patient_no + eye
            keywords = ODIR_EYE_KEYWORDS[(index + seed) % len(ODIR_EYE_KEYWORDS)]
            if _quirks(cases):
                keywords = {
                    5: (ODIR_UNKNOWN_KEYWORD,),
                    8: ("lens dust", "normal fundus"),
                    9: ("low image quality",),
                }.get(index, keywords)
            eye_keywords.append(keywords)
            cells.append(("," if _quirks(cases) and index == 2 else "，").join(keywords))
        flags = _odir_flags(eye_keywords[0] + eye_keywords[1])
        files = [f"{patient}_left.jpg", f"{patient}_right.jpg"]
        sheet.append([patient, age, sex, *files, *cells, *flags])
        for eye, side in enumerate(("left", "right")):
            index = 2 * patient_no + eye
            letters = [flag for flag, on in zip(ODIR_FLAGS, flags, strict=True) if on]
            target = "[" + ", ".join(str(on) for on in flags) + "]"
            filepath = f"../input/ocular-disease-recognition-odir5k/ODIR-5K/ODIR-5K/Training Images/{files[eye]}"
            per_eye.append([patient, age, sex, *files, *cells, *flags, filepath, str(letters[:1]), target, files[eye]])
            if _quirks(cases) and index == 3:
                continue
            codes = _odir_codes(eye_keywords[eye])
            file_name = files[eye].replace(".jpg", ".JPG") if _quirks(cases) and index == 6 else files[eye]
            _save_fundus(images / file_name, seed * 100_003 + patient, side, codes, index)
            (preprocessed / files[eye]).write_bytes((images / file_name).read_bytes())
    (root / "ODIR-5K" / "data.xlsx").write_bytes(_xlsx_bytes(sheet))
    _write_table(root / "full_df.csv", [*header, "filepath", "labels", "target", "filename"], per_eye, True, True)
    if _quirks(cases):
        _write_strays(root, images, "0_left.jpg")


def _odir_codes(keywords: Sequence[str]) -> list[str]:
    """Lesion codes to draw for a phantom eye (the adapter's own table)."""
    codes = [KEYWORDS[keyword] for keyword in keywords if keyword in KEYWORDS]
    return codes + (["media_haze"] if "low image quality" in keywords else [])


# ----------------------------------------------------------------------------------------------------
# RFMiD (Retinal Fundus Multi-disease Image Dataset)


RFMID_SPLITS = (
    ("a. Training Set", "a. RFMiD_Training_Labels.csv"),
    ("b. Validation Set", "b. RFMiD_Validation_Labels.csv"),
    ("c. Testing Set", "c. RFMiD_Testing_Labels.csv"),
)


def write_rfmid(root: Path, cases: int, seed: int) -> None:
    """RFMiD: `1. Original Images/{a. Training Set,b. Validation Set,c. Testing Set}/{ID}.png` and
    `2. Groundtruths/{a. RFMiD_Training_Labels.csv,...}` (`ID,Disease_Risk` + 45 binary columns), ids
    restarting at 1 in each split (60/20/20); every third row is a normal fundus (all zeros).

    Quirks from QUIRKS_FROM cases: (2) image missing, (4) Disease_Risk 1 with all 45 columns 0
    (labels_inconsistent), (7) an empty cell (value_invalid); BOM on the training table, CRLF everywhere,
    a __MACOSX resource fork named like a label table, Thumbs.db, .DS_Store.
    """
    rng = np.random.default_rng(seed)
    names = list(COLUMNS)
    bounds = [0, max(1, round(cases * 0.6)), max(1, round(cases * 0.8)), cases]
    for split, (folder, table) in enumerate(RFMID_SPLITS):
        rows: list[list[str]] = []
        for index in range(bounds[split], max(bounds[split], bounds[split + 1])):
            quirk = index if _quirks(cases) else -1
            number = index - bounds[split] + 1
            values = dict.fromkeys(names, 0)
            if index % 3 and quirk != 4:
                for _ in range(1 + int(rng.random() < 0.3)):
                    values[names[int(rng.integers(0, len(names)))]] = 1
            risk = int(any(values.values()) or quirk == 4)
            cells = [str(number), str(risk), *(str(value) for value in values.values())]
            if quirk == 7:
                cells[2] = ""
            rows.append(cells)
            if quirk == 2:
                continue
            codes = [COLUMNS[name] for name, value in values.items() if value]
            _save_fundus(root / "1. Original Images" / folder / f"{number}.png", seed * 100_003 + index, "right", codes)
        _write_table(root / "2. Groundtruths" / table, ["ID", "Disease_Risk", *names], rows, bom=split == 0, crlf=True)
    if _quirks(cases):
        _write_strays(root, root / "2. Groundtruths", RFMID_SPLITS[0][1])


# ----------------------------------------------------------------------------------------------------
# JSIEC 1000 (39 classes, one folder each)


def write_jsiec(root: Path, cases: int, seed: int) -> None:
    """JSIEC 1000 as its Kaggle copy holds it: `1000images/{class folder}/{image}.jpg`, 39 class folders named
    like `0.0.Normal`, `0.3.DR1`, `29.1.Blur fundus with suspected PDR`; image i goes to class i mod 39.

    Quirks from QUIRKS_FROM cases: (4) file saved as .JPG, (6) an image in a folder that names no class
    (`misc`: name_unparsed); .DS_Store and Thumbs.db in a class folder, __MACOSX/1000images/... resource forks.
    """
    folders = list(CLASSES)
    base = root / "1000images"
    for index in range(cases):
        folder = folders[(index + seed) % len(folders)]
        quirk = index if _quirks(cases) else -1
        if quirk == 6:
            folder = "misc"
        name = stable_hash("jsiec", seed, index, length=20)
        suffix = ".JPG" if quirk == 4 else ".jpg"
        codes = [CLASSES[folder]] if folder in CLASSES else []
        _save_fundus(base / folder / f"{name}{suffix}", seed * 100_003 + index, "right" if index % 2 else "left", codes)
    if _quirks(cases):
        _write_strays(root, base / folders[seed % len(folders)], "fork.jpg")


# ----------------------------------------------------------------------------------------------------
# DDR (OIA-DDR) DR grading


def write_ddr(root: Path, cases: int, seed: int) -> None:
    """DDR: `DR_grading/{train,valid,test}.txt` with lines `007-0004-000.jpg 0` and images in
    `DR_grading/{split}/`; grade 5 means ungradable (every sixth image); 60/20/20 split.

    Quirks from QUIRKS_FROM cases: (1) image missing, (3) a line without a grade (row_incomplete),
    (4) file saved as .JPG; CRLF and trailing spaces in train.txt, a blank line, Thumbs.db, __MACOSX.
    """
    rng = np.random.default_rng(seed)
    base = root / "DR_grading"
    bounds = [0, max(1, round(cases * 0.6)), max(1, round(cases * 0.8)), cases]
    for split_no, split in enumerate(("train", "valid", "test")):
        lines: list[str] = []
        for index in range(bounds[split_no], max(bounds[split_no], bounds[split_no + 1])):
            quirk = index if _quirks(cases) else -1
            name = (
                f"{7 + index % 3:03d}-{4 + index:04d}-000.jpg" if index % 4 else f"2017032309{3305 + index:04d}605.jpg"
            )
            grade = 5 if index % 6 == 5 else int(rng.integers(0, 5))
            lines.append(name if quirk == 3 else f"{name} {grade}" + ("  " if split == "train" else ""))
            if quirk == 1:
                continue
            file_name = name.replace(".jpg", ".JPG") if quirk == 4 else name
            codes = ["media_haze"] if grade == 5 else [GRADES[grade]]
            _save_fundus(base / split / file_name, seed * 100_003 + index, "right" if index % 2 else "left", codes)
        end = "\r\n" if split == "train" else "\n"
        if split == "train" and _quirks(cases):
            lines.insert(1, "")
        (base).mkdir(parents=True, exist_ok=True)
        (base / f"{split}.txt").write_bytes((end.join(lines) + end).encode())
    if _quirks(cases):
        _write_strays(root, base / "train", "007-0004-000.jpg")


# ----------------------------------------------------------------------------------------------------
# DeepDRiD (regular fundus images)


DEEPDRID_SPLITS = ("regular-fundus-training", "regular-fundus-validation")


def write_deepdrid(root: Path, cases: int, seed: int) -> None:
    """DeepDRiD regular fundus images: `regular_fundus_images/{regular-fundus-training,...}/{split}.csv`
    (`patient_id,image_id,image_path,Overall quality,left_eye_DR_Level,right_eye_DR_Level,patient_DR_Level,
    Clarity,Field definition,Artifact`: the eye's own level is filled, the other eye's empty) and
    `Images/{patient}/{patient}_{l|r}{1|2}.jpg`: four images per patient, the last third of patients in
    validation.

    Quirks from QUIRKS_FROM cases: (2) image missing, (5) level 5 (ungradable: gradable False, no finding),
    (6) the eye's level empty (row_incomplete); BOM, CRLF, a __MACOSX fork named like a label table.
    """
    rng = np.random.default_rng(seed)
    base = root / "regular_fundus_images"
    patients = math.ceil(cases / 4)
    validation_from = max(1, patients - patients // 3)
    tables: dict[str, list[list[str]]] = {split: [] for split in DEEPDRID_SPLITS}
    grades: dict[str, int] = {}
    for index in range(cases):
        patient_no, image_no = divmod(index, 4)
        patient = 100 + patient_no + 50 * (seed % 3)
        side = "l" if image_no < 2 else "r"
        if image_no == 0:
            grades = {"l": int(rng.integers(0, 5)), "r": int(rng.integers(0, 5))}
        split = DEEPDRID_SPLITS[int(patient_no >= validation_from)]
        quirk = index if _quirks(cases) else -1
        grade = 5 if quirk == 5 else grades[side]
        image_id = f"{patient}_{side}{image_no % 2 + 1}"
        level = "" if quirk == 6 else str(grade)
        left, right = (level, "") if side == "l" else ("", level)
        path = f"\\regular_fundus_images\\{split}\\Images\\{patient}\\{image_id}.jpg"
        patient_level = str(max(grades.values()))
        tables[split].append([str(patient), image_id, path, "1", left, right, patient_level, "1", "1", "0"])
        if quirk == 2:
            continue
        codes = ["media_haze"] if grade == 5 else [GRADES[grade]]
        eye = "left" if side == "l" else "right"
        _save_fundus(
            base / split / "Images" / str(patient) / f"{image_id}.jpg", seed * 100_003 + patient, eye, codes, index
        )
    header = ["patient_id", "image_id", "image_path", "Overall quality", "left_eye_DR_Level", "right_eye_DR_Level"]
    header += ["patient_DR_Level", "Clarity", "Field definition", "Artifact"]
    for split, rows in tables.items():
        if rows:
            _write_table(base / split / f"{split}.csv", header, rows, bom=True, crlf=True)
    if _quirks(cases):
        _write_strays(root, base / DEEPDRID_SPLITS[0], f"{DEEPDRID_SPLITS[0]}.csv")
