"""Phantom collections written in the real on-disk layouts, quirks included (no real patient data)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from retinal_reason_data.ingest.imaging import png_text_chunk
from retinal_reason_data.phantoms.images import ffa_frame, fundus_photo, oct_bscan
from retinal_reason_data.text import stable_hash

FUNDUS_SIDE = 448
CRLF = "\r\n"


def _png_with_text(image: Image.Image, note: str) -> bytes:
    """PNG bytes carrying a tEXt chunk, as cameras and tools leave them (export must strip it)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    return data[:33] + png_text_chunk("Comment", note) + data[33:]


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _corrupt(data: bytes) -> bytes:
    return data[: max(64, len(data) // 5)]


def write_aptos2019(root: Path, cases: int, seed: int) -> None:
    """APTOS 2019: train.csv (id_code,diagnosis) with a BOM and CRLF, train_images/{id_code}.png.

    Quirks when cases >= 10: a row whose image is missing, a truncated image, a label outside 0-4,
    a Thumbs.db, and test.csv / test_images without labels.
    """
    rng = np.random.default_rng(seed)
    images = root / "train_images"
    images.mkdir(parents=True, exist_ok=True)
    lines = ["id_code,diagnosis"]
    for index in range(cases):
        id_code = stable_hash("aptos", seed, index, length=12)
        grade = int(index % 5) if index < 10 else int(rng.integers(0, 5))
        label = str(grade)
        quirk = _quirk(index, cases)
        if quirk == "unknown_label":
            label = "5"
        lines.append(f"{id_code},{label}")
        if quirk == "missing":
            continue
        image = fundus_photo(
            int(rng.integers(1 << 31)),
            "right" if index % 2 else "left",
            [f"dr.{['none', 'mild', 'moderate', 'severe', 'proliferative'][grade]}"],
            image_seed=index,
            size=FUNDUS_SIDE,
        )
        data = _png_with_text(image, f"phantom APTOS {id_code}")
        (images / f"{id_code}.png").write_bytes(_corrupt(data) if quirk == "corrupt" else data)
    (root / "train.csv").write_bytes(("\ufeff" + CRLF.join(lines) + CRLF).encode("utf-8"))
    if cases >= 10:
        (images / "Thumbs.db").write_bytes(b"\x00" * 64)
        test_images = root / "test_images"
        test_images.mkdir(exist_ok=True)
        test_id = stable_hash("aptos-test", seed, length=12)
        (root / "test.csv").write_text(f"id_code\n{test_id}\n")
        fundus_photo(7, "left", (), size=128).save(test_images / f"{test_id}.png")


OCT_CLASSES = {"CNV": "oct.cnv", "DME": "oct.dme", "DRUSEN": "oct.drusen", "NORMAL": "oct.normal"}


def write_oct2017(root: Path, cases: int, seed: int) -> None:
    """Kermany OCT2017: OCT2017/{train,test}/{CLASS}/{CLASS}-{patient}-{n}.jpeg, several scans per patient.

    Quirks when cases >= 10: a .DS_Store, an upper-case .JPEG extension and a truncated file.
    """
    rng = np.random.default_rng(seed)
    classes = list(OCT_CLASSES)
    index = 0
    patient = 1000 + int(rng.integers(0, 9000))
    while index < cases:
        label = classes[(patient + index) % len(classes)]
        split = "test" if patient % 5 == 0 else "train"
        folder = root / "OCT2017" / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for scan in range(1, int(rng.integers(1, 4)) + 1):
            if index >= cases:
                break
            quirk = _quirk(index, cases)
            suffix = ".JPEG" if quirk == "missing" else ".jpeg"  # upper case, still readable
            image = oct_bscan(patient, "right", [OCT_CLASSES[label]], image_seed=scan, size=(384, 288))
            data = _jpeg(image)
            (folder / f"{label}-{patient}-{scan}{suffix}").write_bytes(_corrupt(data) if quirk == "corrupt" else data)
            index += 1
        patient += 1 + int(rng.integers(1, 50))
    if cases >= 10:
        (root / "OCT2017" / "train" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


FFA_LESIONS = {
    "leakage": "ffa.leakage",
    "non-perfusion": "ffa.non_perfusion",
    "microaneurysm": "ffa.microaneurysm",
    "neovascularization": "ffa.neovascularisation",
    "staining": "ffa.staining",
    "pooling": "ffa.pooling",
    "window defect": "ffa.window_defect",
    "blocked fluorescence": "ffa.blocked_fluorescence",
}
_FFA_PATTERNS = [
    ["microaneurysm", "leakage"],
    ["microaneurysm", "non-perfusion", "leakage"],
    ["non-perfusion", "neovascularization", "leakage"],
    ["pooling", "leakage"],
    ["window defect", "staining"],
    ["blocked fluorescence", "non-perfusion"],
    ["staining"],
]
_REPORT_PHRASES = {
    "leakage": "late leakage of dye is seen",
    "non-perfusion": "there are areas of capillary non-perfusion",
    "microaneurysm": "scattered pinpoint hyperfluorescent microaneurysms are visible",
    "neovascularization": "hyperfluorescent neovascular tufts leak progressively",
    "staining": "well-defined late staining is present",
    "pooling": "dye pools in a well-defined space in the late phase",
    "window defect": "a transmitted hyperfluorescence (window defect) appears early and fades",
    "blocked fluorescence": "hypofluorescence from blocked fluorescence is noted",
}


def write_ffa_ir(root: Path, cases: int, seed: int) -> None:
    """FFA-IR: FFAIR/case_x/y.jpeg, ffair_annotation.json (splits -> cases -> Image_path, En_Report),
    lesion_info.json ("case/img.jpeg" -> [[category, x0, y0, x1, y1], ...]).

    Quirk when cases >= 5: one case names an image that is not on disk.
    """
    rng = np.random.default_rng(seed)
    annotation: dict[str, dict[str, dict[str, object]]] = {"train": {}, "val": {}, "test": {}}
    lesions: dict[str, list[list[object]]] = {}
    for index in range(cases):
        case_id = f"case_{index + 1}"
        pattern = _FFA_PATTERNS[index % len(_FFA_PATTERNS)]
        patient_seed = int(rng.integers(1 << 31))
        eye = "left" if rng.random() < 0.5 else "right"
        folder = root / "FFAIR" / case_id
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for frame, phase in enumerate((0.15, 0.5, 0.9), start=1):
            name = f"{frame}.jpeg"
            paths.append(f"{case_id}/{name}")
            if frame == 3 and index == 3 and cases >= 5:
                continue  # quirk: named in the annotation, missing on disk
            image = ffa_frame(
                patient_seed, eye, [FFA_LESIONS[p] for p in pattern], image_seed=frame, size=384, phase=phase
            )
            (folder / name).write_bytes(_jpeg(image))
            lesions[f"{case_id}/{name}"] = [[p, 40, 40, 120, 120] for p in pattern]
        split = ("train", "train", "train", "val", "test")[index % 5]
        report = "; ".join(_REPORT_PHRASES[p] for p in pattern).capitalize() + "."
        annotation[split][case_id] = {"Image_path": paths, "En_Report": report}
    root.mkdir(parents=True, exist_ok=True)
    (root / "ffair_annotation.json").write_text(json.dumps(annotation, indent=1))
    (root / "lesion_info.json").write_text(json.dumps(lesions, indent=1))


_CASE_TEMPLATES: list[dict[str, object]] = [
    {
        "diagnosis": "Central retinal artery occlusion",
        "code": "vasc.crao",
        "complaint": "sudden painless loss of vision in the {eye} eye two hours before presentation",
        "history": "Hypertension and atrial fibrillation; she had stopped her anticoagulant a week earlier.",
        "exam": "Visual acuity was counting fingers; a relative afferent pupillary defect was present.",
        "figures": [
            ("CFP", "Colour fundus photograph showing retinal whitening with a cherry-red spot (A)."),
            ("FFA", "Fluorescein angiography showing delayed arterial filling at 30 seconds."),
        ],
    },
    {
        "diagnosis": "Central retinal vein occlusion",
        "code": "vasc.crvo",
        "complaint": "blurred vision in the {eye} eye for one week",
        "history": "Poorly controlled hypertension and hyperlipidaemia.",
        "exam": "Visual acuity 6/36; dilated tortuous veins on fundoscopy.",
        "figures": [
            ("CFP", "Fundus photograph: flame haemorrhages in all four quadrants and disc swelling."),
            ("FFA", "Angiogram with blocked fluorescence from haemorrhage and late leakage."),
        ],
    },
    {
        "diagnosis": "Central serous chorioretinopathy",
        "code": "csc",
        "complaint": "distorted and dim central vision in the {eye} eye for three weeks",
        "history": "A 38-year-old man under work stress, recently treated with oral corticosteroids.",
        "exam": "Visual acuity 6/9; a round shallow elevation at the macula.",
        "figures": [
            ("OCT", "OCT B-scan showing a dome of subretinal fluid under the fovea."),
            ("FFA", "Fluorescein angiography with an expanding smokestack leakage point."),
        ],
    },
    {
        "diagnosis": "Vogt-Koyanagi-Harada disease",
        "code": "vkh",
        "complaint": "bilateral blurred vision with headache and tinnitus for five days",
        "history": "No ocular history; a flu-like illness two weeks earlier.",
        "exam": "Anterior chamber cells in both eyes and multiple serous detachments.",
        "figures": [
            ("CFP", "Fundus photograph with multiple serous retinal detachments in the posterior pole."),
            ("OCT", "OCT with septate subretinal fluid."),
            ("FFA", "Angiogram with multiple pinpoint leaks and late pooling."),
        ],
    },
    {
        "diagnosis": "Retinitis pigmentosa",
        "code": "rp",
        "complaint": "night blindness and a narrowing field of vision over several years",
        "history": "His father had similar symptoms.",
        "exam": "Visual acuity 6/12 in both eyes; constricted fields.",
        "figures": [
            ("CFP", "Fundus photograph: bone-spicule pigment in the mid periphery, attenuated vessels."),
            ("OCT", "OCT showing loss of the outer retinal layers outside the fovea."),
        ],
    },
    {
        "diagnosis": "Choroidal melanoma",
        "code": "tumour.choroidal_melanoma",
        "complaint": "a shadow in the upper field of the {eye} eye for two months",
        "history": "No relevant medical history.",
        "exam": "A pigmented dome-shaped lesion inferior to the disc.",
        "figures": [
            ("CFP", "Fundus photograph of a grey-brown elevated mass with orange pigment."),
            ("OCT", "OCT over the lesion with overlying subretinal fluid."),
        ],
    },
    {
        "diagnosis": "Full-thickness macular hole",
        "code": "mh.full_thickness",
        "complaint": "a dark spot in the centre of vision of the {eye} eye for one month",
        "history": "Healthy; no trauma.",
        "exam": "Visual acuity 6/60; a positive Watzke-Allen sign.",
        "figures": [
            ("CFP", "Fundus photograph with a small round red lesion at the fovea."),
            ("OCT", "OCT showing a full-thickness defect of the neurosensory retina at the fovea."),
        ],
    },
    {
        "diagnosis": "Bietti crystalline dystrophy",
        "code": None,
        "aliases": ["Bietti crystalline corneoretinal dystrophy", "BCD"],
        "complaint": "slowly worsening night vision and blurred vision in both eyes",
        "history": "Parents are first cousins.",
        "exam": "Glistening yellow-white crystals scattered in the posterior pole.",
        "figures": [
            ("CFP", "Fundus photograph with numerous glistening intraretinal crystals."),
            ("OCT", "OCT showing hyperreflective dots in the outer retina."),
        ],
    },
]


def write_case_reports(root: Path, cases: int, seed: int) -> None:
    """Case reports as JSONL (one article's case per line) with figure files under images/.

    Fields: case_id, pmcid, title, age, sex, chief_complaint, history, exam, diagnosis,
    diagnosis_aliases, licence, figures [{file, caption, modality}].
    """
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    drawers: dict[str, Callable[..., Image.Image]] = {
        "CFP": lambda ps, eye, codes, n: fundus_photo(ps, eye, codes, image_seed=n, size=384),
        "OCT": lambda ps, eye, codes, n: oct_bscan(ps, eye, _oct_codes(codes), image_seed=n, size=(384, 288)),
        "FFA": lambda ps, eye, codes, n: ffa_frame(ps, eye, codes, image_seed=n, size=384, phase=0.7),
    }
    records = []
    for index in range(cases):
        template = _CASE_TEMPLATES[index % len(_CASE_TEMPLATES)]
        eye = "right" if rng.random() < 0.5 else "left"
        age = int(rng.integers(25, 80))
        sex = "female" if rng.random() < 0.5 else "male"
        pmcid = f"PMC{9000000 + int(rng.integers(0, 999999))}"
        patient_seed = int(rng.integers(1 << 31))
        codes = [template["code"]] if template["code"] else []
        figures = []
        for number, (modality, caption) in enumerate(template["figures"], start=1):  # type: ignore[arg-type]
            name = f"{pmcid}_fig{number}.jpg"
            drawers[modality](patient_seed, eye, codes, number).save(images / name, quality=90)
            figures.append({"file": f"images/{name}", "caption": caption, "modality": modality})
        records.append(
            {
                "case_id": f"{pmcid}_01",
                "pmcid": pmcid,
                "title": f"{template['diagnosis']} in a {age}-year-old {sex}: a case report",
                "age": age,
                "sex": "F" if sex == "female" else "M",
                "chief_complaint": f"A {age}-year-old {sex} presented with "
                + str(template["complaint"]).format(eye=eye)
                + ".",
                "history": template["history"],
                "exam": template["exam"],
                "diagnosis": template["diagnosis"],
                "diagnosis_aliases": template.get("aliases", []),
                "licence": "CC BY 4.0",
                "figures": figures,
            }
        )
    with (root / "case_reports.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def _oct_codes(codes: list[str]) -> list[str]:
    mapping = {"csc": "csc", "mh.full_thickness": "mh.full_thickness", "vkh": "oct.srf"}
    return [mapping[code] for code in codes if code in mapping]


def _quirk(index: int, cases: int) -> str | None:
    """Which deliberate defect (if any) the index-th file of a phantom collection carries."""
    if cases < 10:
        return None
    return {3: "missing", 5: "corrupt", 7: "unknown_label"}.get(index)
