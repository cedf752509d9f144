"""Phantom copies of the glaucoma, OCT, atlas, release and generic layouts, quirks of real downloads included.

Every writer takes (root, cases, seed), is deterministic per seed and draws small images (96-160 px) with
the labelled findings (a glaucoma eye gets a large cup). No real patient data. Quirks (byte-order marks,
CRLF, padded headers, unnamed index columns, extension case that differs from the label file, files that
a label file names but that are missing, stray Thumbs.db / .DS_Store / __MACOSX) appear once `cases`
is large enough; each writer's docstring lists its own.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from retinal_reason_data.phantoms.images import ffa_frame, fundus_photo, oct_bscan

FUNDUS = 128
OCT = (160, 120)
FFA = 128


def _jpeg(image: Image.Image, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _encode(image: Image.Image, suffix: str) -> bytes:
    return _png(image) if suffix.lower() == ".png" else _jpeg(image)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _table(lines: Sequence[str], bom: bool = True, crlf: bool = True) -> bytes:
    """A CSV as spreadsheets export it: optional byte-order mark and CRLF line ends."""
    end = "\r\n" if crlf else "\n"
    return (("\ufeff" if bom else "") + end.join(lines) + end).encode("utf-8")


def _strays(folder: Path) -> None:
    """The files that operating systems leave beside real downloads."""
    _write(folder / "Thumbs.db", b"\x00" * 32)
    _write(folder / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    _write(folder / "__MACOSX" / "._stray.jpg", b"\x00\x05\x16\x07")


def _seeds(rng: np.random.Generator) -> int:
    return int(rng.integers(1 << 31))


def _glaucoma_photo(patient_seed: int, eye: str, label: str, image_seed: int = 0) -> Image.Image:
    findings = {"glaucoma": ["glaucoma"], "suspect": ["glaucoma"], "none": []}[label]
    return fundus_photo(patient_seed, eye, findings, image_seed=image_seed, size=FUNDUS)


def _glaucoma_label(index: int) -> str:
    return ("glaucoma", "none", "none", "suspect", "none")[index % 5]


# ------------------------------------------------------------------------------------------------ REFUGE


def write_refuge(root: Path, cases: int, seed: int) -> None:
    """REFUGE: {train,val,test}/Images/*.jpg and {split}/index.json ({"0": {ImgName, Fovea_X, Fovea_Y,
    Size_X, Size_Y, Label}}); train images are named g0001 / n0001 by label, val V0001, test T0001.

    Quirks when cases >= 8: a train image on disk as .JPG while index.json says .jpg; a train image that
    index.json does not list (its label is in its g/n prefix); a train record whose Label contradicts its
    prefix; val/index.json with a byte-order mark naming an image that is missing; stray files.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for index in range(cases):
        splits[("train", "train", "train", "val", "test")[index % 5]].append(index)
    for split, indices in splits.items():
        records: dict[str, dict[str, object]] = {}
        counters = {"g": 0, "n": 0, "V": 0, "T": 0}
        for position, index in enumerate(indices):
            glaucoma = index % 3 == 0
            prefix = ("g" if glaucoma else "n") if split == "train" else {"val": "V", "test": "T"}[split]
            counters[prefix] += 1
            name = f"{prefix}{counters[prefix]:04d}.jpg"
            eye = "right" if rng.random() < 0.5 else "left"
            image = _glaucoma_photo(_seeds(rng), eye, "glaucoma" if glaucoma else "none", index)
            on_disk = name
            if quirks and split == "train" and position == 1:
                on_disk = name[:-4] + ".JPG"
            label = 1 if glaucoma else 0
            if quirks and split == "train" and position == 3:
                label = 1 - label  # contradicts the g/n prefix
            missing = quirks and split == "val" and position == 0
            if not missing:
                _write(root / split / "Images" / on_disk, _jpeg(image))
            if quirks and split == "train" and position == 2:
                continue  # on disk, not in index.json: labelled by its prefix
            records[str(len(records))] = {
                "ImgName": name,
                "Fovea_X": round(float(rng.uniform(50, 70)), 2),
                "Fovea_Y": round(float(rng.uniform(55, 70)), 2),
                "Size_X": FUNDUS,
                "Size_Y": FUNDUS,
                "Label": label,
            }
        text = json.dumps(records, indent=1)
        data = ("\ufeff" + text).encode("utf-8") if split == "val" else text.encode("utf-8")
        _write(root / split / "index.json", data)
    if quirks:
        _strays(root / "train" / "Images")
        _write(root / "__MACOSX" / "train" / "._index.json", b"\x00\x05")


# ------------------------------------------------------------------------------------------------ ORIGA


def write_origa(root: Path, cases: int, seed: int) -> None:
    """ORIGA: OrigaList.csv (an unnamed index column, then Eye, Filename, ExpCDR, Set, Glaucoma) and
    Images/001.jpg.

    Quirks when cases >= 8: byte-order mark, CRLF and padded headers and cells; a row whose image is
    missing; an image on disk as .JPG; Thumbs.db and .DS_Store beside the images.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    lines = [",Eye ,Filename , ExpCDR,Set,Glaucoma "] if quirks else ["Eye,Filename,ExpCDR,Set,Glaucoma"]
    for index in range(cases):
        name = f"{index + 1:03d}.jpg"
        glaucoma = index % 3 == 1
        eye = "OD" if rng.random() < 0.5 else "OS"
        cdr = round(float(rng.uniform(0.6, 0.85) if glaucoma else rng.uniform(0.2, 0.5)), 4)
        cells = [eye, name, str(cdr), "A" if index % 2 else "B", "1" if glaucoma else "0"]
        if quirks:
            cells = [str(index), *cells[:-1], f"{cells[-1]} "]
        lines.append(",".join(cells))
        if quirks and index == 4:
            continue  # named by the list, missing on disk
        on_disk = name[:-4] + ".JPG" if quirks and index == 2 else name
        image = _glaucoma_photo(_seeds(rng), "right" if eye == "OD" else "left", "glaucoma" if glaucoma else "none")
        _write(root / "Images" / on_disk, _jpeg(image))
    _write(root / "OrigaList.csv", _table(lines, bom=quirks, crlf=quirks))
    if quirks:
        _strays(root / "Images")


# ------------------------------------------------------------------------------------------------ PAPILA

PAPILA_HEADER_1 = [None, "Age", "Gender", "Diagnosis", "Refractive_Error", None, None, "Phakic/Pseudophakic", "IOP"]
PAPILA_HEADER_2 = ["ID", None, None, None, "dioptre_1", "dioptre_2", "astigmatism", None, "Pneumatic"]


def write_papila(root: Path, cases: int, seed: int) -> None:
    """PAPILA: ClinicalData/patient_data_{od,os}.xlsx (two header rows, then one row per patient with the id
    as '#002' in the first column; Diagnosis 0 healthy, 1 glaucoma, 2 suspect; Gender 0 male, 1 female) and
    FundusImages/RET002OD.jpg, RET002OS.jpg. `cases` counts eyes: cases // 2 patients (at least one).

    Quirks when cases >= 8: a row with an empty Diagnosis; a left-eye image that is missing; an image on
    disk as .JPG; a blank row after the data; Thumbs.db beside the images.
    """
    from openpyxl import Workbook

    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    patients = max(1, cases // 2)
    sheets = {"od": Workbook(), "os": Workbook()}
    for workbook in sheets.values():
        workbook.active.append(PAPILA_HEADER_1)
        workbook.active.append(PAPILA_HEADER_2)
    for number in range(patients):
        patient = 2 + 3 * number
        age = int(rng.integers(35, 85))
        gender = int(rng.integers(0, 2))
        patient_seed = _seeds(rng)
        for eye, code in (("od", "OD"), ("os", "OS")):
            diagnosis: int | None = (0, 1, 2, 0)[(number + (eye == "os")) % 4]
            if quirks and number == 1 and eye == "od":
                diagnosis = None
            row = [f"#{patient:03d}", age, gender, diagnosis, round(float(rng.normal(0, 2)), 2), 0.0, 0.5, 0, 16]
            sheets[eye].active.append(row)
            if quirks and number == 2 and eye == "os":
                continue  # row present, image missing
            suffix = ".JPG" if quirks and number == 0 and eye == "os" else ".jpg"
            label = {0: "none", 1: "glaucoma", 2: "suspect", None: "none"}[diagnosis]
            image = _glaucoma_photo(patient_seed, "right" if eye == "od" else "left", label)
            _write(root / "FundusImages" / f"RET{patient:03d}{code}{suffix}", _jpeg(image))
    for eye, workbook in sheets.items():
        if quirks:
            workbook.active.append([None] * len(PAPILA_HEADER_1))
        buffer = io.BytesIO()
        workbook.save(buffer)
        _write(root / "ClinicalData" / f"patient_data_{eye}.xlsx", _timeless_xlsx(buffer.getvalue()))
    if quirks:
        _strays(root / "FundusImages")


def _timeless_xlsx(data: bytes) -> bytes:
    """The workbook with fixed zip entry times and document dates, so that a seed gives the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>2020-01-01T00:00:00Z", body)
            target.writestr(zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0)), body)
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ G1020


def write_g1020(root: Path, cases: int, seed: int) -> None:
    """G1020: G1020.csv (imageID, binaryLabels) and Images/image_0.jpg with an image_0.json annotation beside.

    Quirks when cases >= 8: byte-order mark and CRLF; a row whose image is missing; a label '2' that no
    mapping knows (quarantined at intake as unknown_label); an image on disk as .JPG; stray files.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    lines = ["imageID,binaryLabels"]
    for index in range(cases):
        name = f"image_{index}.jpg"
        glaucoma = index % 3 == 2
        label = "1" if glaucoma else "0"
        if quirks and index == 6:
            label = "2"
        lines.append(f"{name},{label}")
        if quirks and index == 3:
            continue
        on_disk = f"image_{index}.JPG" if quirks and index == 5 else name
        eye = "right" if rng.random() < 0.5 else "left"
        image = _glaucoma_photo(_seeds(rng), eye, "glaucoma" if glaucoma else "none", index)
        _write(root / "Images" / on_disk, _jpeg(image))
        _write(root / "Images" / f"image_{index}.json", b'{"shapes": []}')
    _write(root / "G1020.csv", _table(lines, bom=quirks, crlf=quirks))
    if quirks:
        _strays(root / "Images")


# ------------------------------------------------------------------------------------------------ Chaksu

CHAKSU_DEVICES = {"Bosch": ".JPG", "Forus": ".png", "Remidio": ".jpg"}


def write_chaksu(root: Path, cases: int, seed: int) -> None:
    """Chaksu: {Train,Test}/1.0_Original_Fundus_Images/{Bosch,Forus,Remidio}/ (.JPG, .png, .jpg by camera)
    and {split}/6.0_Glaucoma_Decision/Glaucoma_Decision_Comparison_{device}_majority.csv with columns
    Images ('Image101.jpg-Image101-1.jpg'), Expert.1-5 and 'Majority Decision' (called 'Glaucoma Decision'
    in the Test files of Forus and Remidio); decisions NORMAL / GLAUCOMA SUSPECT.

    Quirks when cases >= 8: a trailing space after 'Majority Decision '; experts who write
    'GLAUCOMA  SUSUPECT'; a row whose image is missing; __MACOSX and .DS_Store.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    rows: dict[tuple[str, str], list[str]] = {}
    for index in range(cases):
        split = "Test" if index % 4 == 3 else "Train"
        device = list(CHAKSU_DEVICES)[index % 3]
        name = f"Image{101 + index}"
        suspect = index % 3 == 1
        decision = "GLAUCOMA SUSPECT" if suspect else "NORMAL"
        experts = [decision] * 4 + ["NORMAL"]
        if quirks and suspect:
            experts[1] = "GLAUCOMA  SUSUPECT"
        rows.setdefault((split, device), []).append(
            ",".join([f"{name}.jpg-{name}-1.jpg", *experts, f"{decision} " if quirks else decision])
        )
        if quirks and index == 4:
            continue
        eye = "right" if rng.random() < 0.5 else "left"
        image = _glaucoma_photo(_seeds(rng), eye, "suspect" if suspect else "none", index)
        suffix = CHAKSU_DEVICES[device]
        _write(root / split / "1.0_Original_Fundus_Images" / device / f"{name}{suffix}", _encode(image, suffix))
    for split in ("Train", "Test"):
        for device in CHAKSU_DEVICES:
            column = "Glaucoma Decision" if split == "Test" and device != "Bosch" else "Majority Decision"
            header = "Images,Expert.1,Expert.2,Expert.3,Expert.4,Expert.5," + (f"{column} " if quirks else column)
            folder = root / split / "6.0_Glaucoma_Decision"
            _write(
                folder / f"Glaucoma_Decision_Comparison_{device}_majority.csv",
                _table([header, *rows.get((split, device), [])], bom=False, crlf=quirks),
            )
    if quirks:
        _write(root / "__MACOSX" / "Train" / "._.DS_Store", b"junk")
        _write(root / "Train" / "1.0_Original_Fundus_Images" / "Bosch" / ".DS_Store", b"\x00\x00\x00\x01Bud1")


# ------------------------------------------------------------------------------------------------ OCTDL

OCTDL_CLASSES = {
    "AMD": (["oct.cnv"], "MNV"),
    "DME": (["oct.dme"], ""),
    "ERM": (["oct.erm"], ""),
    "NO": (["oct.normal"], ""),
    "RAO": ([], "CRAO"),
    "RVO": (["oct.dme"], "BRVO"),
    "VID": (["mh.full_thickness"], "Macular hole"),
}


def write_octdl(root: Path, cases: int, seed: int) -> None:
    """OCTDL: OCTDL_labels.csv (file_name, disease, subcategory, condition, patient_id, eye, sex, year,
    image_width, image_hight) and {AMD,DME,ERM,NO,RAO,RVO,VID}/{file_name}.jpg; two or three scans per
    patient and eye.

    Quirks when cases >= 8: byte-order mark and CRLF; a row whose image is missing; an image on disk as
    .JPG; a row with an empty disease; .DS_Store in a class folder.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    classes = list(OCTDL_CLASSES)
    header = "file_name,disease,subcategory,condition,patient_id,eye,sex,year,image_width,image_hight"
    lines = [header]
    index, patient = 0, 100
    while index < cases:
        disease = classes[patient % len(classes)]
        findings, subcategory = OCTDL_CLASSES[disease]
        eye = "OD" if rng.random() < 0.5 else "OS"
        sex = "M" if rng.random() < 0.5 else "F"
        patient_seed = _seeds(rng)
        for scan in range(1, int(rng.integers(2, 4)) + 1):
            if index >= cases:
                break
            name = f"{disease.lower()}_{patient}{1000 + patient_seed % 9000}_{scan}"
            written_disease = "" if quirks and index == 6 else disease
            lines.append(f"{name},{written_disease},{subcategory},,{patient},{eye},{sex},2021,{OCT[0]},{OCT[1]}")
            if not (quirks and index == 3):
                image = oct_bscan(patient_seed, "right" if eye == "OD" else "left", findings, scan, size=OCT)
                suffix = ".JPG" if quirks and index == 5 else ".jpg"
                _write(root / disease / f"{name}{suffix}", _jpeg(image))
            index += 1
        patient += 1 + int(rng.integers(0, 3))
    _write(root / "OCTDL_labels.csv", _table(lines, bom=quirks, crlf=quirks))
    if quirks:
        _write(root / classes[0] / ".DS_Store", b"\x00\x00\x00\x01Bud1")


# ------------------------------------------------------------------------------------------------ OCTID

OCTID_CLASSES = {
    "ANormal": ("NORMAL", ["oct.normal"]),
    "ARMD": ("AMRD", ["oct.drusen"]),
    "CSR": ("CSR", ["csc"]),
    "Diabetic_retinopathy": ("DR", ["oct.dme"]),
    "Macular_Hole": ("MH", ["mh.full_thickness"]),
}


def write_octid(root: Path, cases: int, seed: int) -> None:
    """OCTID: class folders ANormal, ARMD, CSR, Diabetic_retinopathy, Macular_Hole with NORMAL1.jpg, ...

    Quirks when cases >= 8: an upper-case .JPEG extension; a truncated image (refused at intake);
    Thumbs.db, .DS_Store and a __MACOSX folder with '._' copies.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    classes = list(OCTID_CLASSES)
    for index in range(cases):
        folder = classes[index % len(classes)]
        prefix, findings = OCTID_CLASSES[folder]
        number = index // len(classes) + 1
        suffix = ".JPEG" if quirks and index == 2 else ".jpeg"
        data = _jpeg(oct_bscan(_seeds(rng), "right", findings, index, size=OCT))
        if quirks and index == 6:
            data = data[: len(data) // 4]
        _write(root / folder / f"{prefix}{number}{suffix}", data)
    if quirks:
        _strays(root / classes[0])
        _write(root / "__MACOSX" / classes[0] / f"._{OCTID_CLASSES[classes[0]][0]}1.jpeg", b"\x00\x05\x16\x07")


# ------------------------------------------------------------------------------------------------ MM-Retinal v1

_ATLAS = {
    "CFP": [
        (["vasc.crvo"], "Central retinal vein occlusion with flame-shaped haemorrhages in all four quadrants."),
        (["glaucoma"], "Glaucomatous optic disc with a large cup; the neuroretinal rim is thin inferiorly."),
        ([], "No signs of diabetic retinopathy; the disc and macula are unremarkable."),
        (["amd.wet", "lesion.drusen"], "Neovascular AMD: a grey membrane beneath the fovea, surrounded by drusen."),
        ([], "The same eye three months later, after treatment."),
    ],
    "FFA": [
        (["ffa.leakage"], "Late phase: fluorescein leakage from the macular capillaries."),
        (["csc", "ffa.smokestack"], "Central serous chorioretinopathy: smokestack leakage above the fovea."),
        ([], "Early arterial phase of the angiogram of the left eye."),
    ],
    "OCT": [
        (["mh.full_thickness"], "Full-thickness macular hole with cystic edges."),
        (["oct.srf"], "Subretinal fluid beneath the fovea; PED nasally."),
        ([], "Horizontal scan through the fovea of a healthy volunteer."),
    ],
}
_ATLAS_SUFFIXES = (".jpg", ".png", ".jpeg")


def write_mm_retinal_v1(root: Path, cases: int, seed: int) -> None:
    """MM-Retinal v1: MM_Retinal_dataset_v1/{CFP,FFA,OCT}/figure01-01A.jpg (png/jpg/jpeg) with
    {CFP,FFA,OCT}_translated_v1.csv (Image_ID without extension, en_caption, cn_caption). Panels A/B of one
    figure share a patient. Captions name findings, negate them ('No signs of ...') or name none.

    Quirks when cases >= 8: byte-order mark and CRLF; a row whose image is missing; an image whose
    extension is upper case; stray files.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    base = root / "MM_Retinal_dataset_v1"
    tables: dict[str, list[str]] = {modality: ["Image_ID,en_caption,cn_caption"] for modality in _ATLAS}
    modalities = list(_ATLAS)
    counters = dict.fromkeys(_ATLAS, 0)
    patients: dict[tuple[str, int], int] = {}
    for index in range(cases):
        modality = modalities[index % 3]
        number = counters[modality]
        counters[modality] += 1
        figure, panel = number // 2 + 1, "AB"[number % 2]
        findings, caption = _ATLAS[modality][number % len(_ATLAS[modality])]
        image_id = f"figure{index % 3 + 1:02d}-{figure:02d}{panel}"
        tables[modality].append(f'{image_id},"{caption}",图{figure}{panel}：示例说明')
        if quirks and index == 4:
            continue
        patient_seed = patients.setdefault((modality, figure), _seeds(rng))
        if modality == "CFP":
            image = fundus_photo(patient_seed, "right", findings, image_seed=number, size=FUNDUS)
        elif modality == "FFA":
            image = ffa_frame(patient_seed, "left", findings, image_seed=number, size=FFA, phase=0.8)
        else:
            image = oct_bscan(patient_seed, "right", findings, image_seed=number, size=OCT)
        suffix = _ATLAS_SUFFIXES[index % 3]
        if quirks and index == 5:
            suffix = suffix.upper()
        _write(base / modality / f"{image_id}{suffix}", _encode(image, suffix))
    for modality, lines in tables.items():
        _write(base / f"{modality}_translated_v1.csv", _table(lines, bom=quirks, crlf=quirks))
    if quirks:
        _strays(base / "CFP")


# ------------------------------------------------------------------------------------------------ MM-Retinal-Reason


def _b64(image: Image.Image) -> str:
    return base64.b64encode(_jpeg(image)).decode("ascii")


def write_mm_retinal_reason(root: Path, cases: int, seed: int) -> None:
    """MM-Retinal-Reason release: basic_reasoning.json and complex_reasoning.json, JSON arrays of records
    {image: [base64, ...], conversations: [{from: human, value}, {from: gpt, value}], reason}; complex
    records add pmcid, title, caption. About two thirds of `cases` are basic.

    Quirks when cases >= 8: a record whose base64 does not decode; a record without conversations; a
    basic answer given as a letter of the options listed in the question; one data-URL prefix.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    basic, complex_ = [], []
    for index in range(cases):
        patient_seed = _seeds(rng)
        if index % 3 != 2:
            glaucoma = index % 2 == 0
            image = fundus_photo(patient_seed, "right", ["glaucoma"] if glaucoma else [], index, size=FUNDUS)
            encoded = _b64(image)
            if quirks and index == 1:
                encoded = "data:image/jpeg;base64," + encoded
            if quirks and index == 4:
                question = (
                    "<image>\nWhich of the following is the most likely diagnosis in this colour fundus "
                    "photograph?\nA. Cataract\nB. Glaucoma\nC. Retinitis pigmentosa\nD. Choroidal melanoma"
                )
                answer = "<answer>B</answer>" if glaucoma else "<answer>A</answer>"
            else:
                question = "<image>\nWhat is the most likely diagnosis in this colour fundus photograph?"
                answer = f"<answer>{'Glaucoma' if glaucoma else 'Normal fundus'}</answer>"
            record: dict[str, object] = {
                "image": [encoded],
                "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
                "reason": "The cup-to-disc ratio is large and the rim is thin."
                if glaucoma
                else "The disc, vessels and macula look normal.",
            }
            if quirks and index == 7:
                record["image"] = ["this is not base64!"]
            basic.append(record)
        else:
            frames = [
                fundus_photo(patient_seed, "left", ["vasc.crvo"], index, size=FUNDUS),
                ffa_frame(patient_seed, "left", ["vasc.crvo"], index, size=FFA, phase=0.6),
            ]
            pmcid = f"PMC{8000000 + int(rng.integers(0, 999999))}"
            record = {
                "image": [_b64(frame) for frame in frames],
                "conversations": [
                    {
                        "from": "human",
                        "value": "<image>\n<image>\nA 67-year-old man presented with blurred vision in the left "
                        "eye for one week. What is the most likely diagnosis?",
                    },
                    {
                        "from": "gpt",
                        "value": "<think>Haemorrhages in four quadrants.</think>"
                        "<answer>Central retinal vein occlusion</answer>",
                    },
                ],
                "reason": "Dilated tortuous veins and haemorrhages in all quadrants point to a central vein occlusion.",
                "pmcid": pmcid,
                "title": "A case of central retinal vein occlusion",
                "caption": "Fundus photograph and angiogram of the left eye.",
            }
            if quirks and index == 5:
                del record["conversations"]
            complex_.append(record)
    root.mkdir(parents=True, exist_ok=True)
    (root / "basic_reasoning.json").write_text(json.dumps(basic, indent=1, ensure_ascii=False), encoding="utf-8")
    (root / "complex_reasoning.json").write_text(json.dumps(complex_, ensure_ascii=False), encoding="utf-8")


# ------------------------------------------------------------------------------------------------ generic

IMAGE_FOLDER_CLASSES = {
    "glaucoma": ["glaucoma"],
    "normal": [],
    "cataract": [],
    "pathologic_myopia": ["myopia.pathologic"],
}


def write_image_folder(root: Path, cases: int, seed: int) -> None:
    """A RETFound-style image folder: {train,val,test}/<class>/<image> with classes glaucoma, normal,
    cataract and pathologic_myopia ('normal' needs a recipe mapping: it is not an ontology name).

    Quirks when cases >= 8: mixed .png/.jpg/.JPG; Thumbs.db, .DS_Store and __MACOSX.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    classes = list(IMAGE_FOLDER_CLASSES)
    for index in range(cases):
        split = ("train", "train", "train", "val", "test")[index % 5]
        folder = classes[index % len(classes)]
        suffix = (".png", ".jpg", ".JPG")[index % 3] if quirks else ".png"
        image = fundus_photo(_seeds(rng), "right", IMAGE_FOLDER_CLASSES[folder], index, size=FUNDUS)
        _write(root / split / folder / f"{folder}_{index:04d}{suffix}", _encode(image, suffix))
    if quirks:
        _strays(root / "train" / classes[0])
        _write(root / "__MACOSX" / "train" / "._glaucoma", b"\x00")


MANIFEST_FINDINGS = [
    ("CFP", ["glaucoma"]),
    ("CFP", ["dr.moderate", "lesion.hard_exudate"]),
    ("OCT", ["oct.dme"]),
    ("FFA", ["ffa.leakage", "ffa.non_perfusion"]),
    ("CFP", ["cataract"]),
]
_MANIFEST_NAMES = {
    "glaucoma": "Glaucoma",
    "dr.moderate": "moderate NPDR",
    "lesion.hard_exudate": "hard exudates",
    "oct.dme": "DME",
    "ffa.leakage": "leakage",
    "ffa.non_perfusion": "capillary non-perfusion",
    "cataract": "cataract",
}


def write_manifest(root: Path, cases: int, seed: int) -> None:
    """A generic manifest: manifest.csv with an unnamed index column, then path (relative to the root),
    findings (separated by ';'), patient, eye (OD/OS), modality, split; images under images/.

    Quirks when cases >= 8: byte-order mark, CRLF, padded cells; a row whose image is missing; a row with
    an empty path; a path whose extension case differs from the file; a label no mapping knows; stray files.
    """
    rng = np.random.default_rng(seed)
    quirks = cases >= 8
    lines = [",path,findings,patient,eye,modality,split"]
    patients: dict[str, int] = {}
    for index in range(cases):
        modality, findings = MANIFEST_FINDINGS[index % len(MANIFEST_FINDINGS)]
        patient = f"P{index // 2:03d}"
        eye = "OD" if index % 2 == 0 else "OS"
        side = "right" if eye == "OD" else "left"
        patient_seed = patients.setdefault(patient, _seeds(rng))
        if modality == "CFP":
            image = fundus_photo(patient_seed, side, findings, index, size=FUNDUS)
        elif modality == "OCT":
            image = oct_bscan(patient_seed, side, findings, index, size=OCT)
        else:
            image = ffa_frame(patient_seed, side, findings, index, size=FFA, phase=0.8)
        name = f"images/{modality.lower()}_{index:04d}.jpg"
        path = name
        if quirks and index == 6:
            path = ""
        if quirks and index == 2:
            path = name[:-4] + ".JPG"
        labels = ";".join(_MANIFEST_NAMES[f] for f in findings)
        if quirks and index == 7:
            labels += ";suspicious lesion"  # no mapping knows it: reported at intake as unknown_label
        split = ("train", "train", "val", "test")[index % 4]
        pad = " " if quirks else ""
        lines.append(f'{index},{path}{pad},"{labels}",{patient},{eye}{pad},{modality},{split}')
        if not (quirks and index == 4):
            _write(root / name, _jpeg(image))
    _write(root / "manifest.csv", _table(lines, bom=quirks, crlf=quirks))
    if quirks:
        _strays(root / "images")
