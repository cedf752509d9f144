"""ODIR-5K (Peking University ODIR-2019): data.xlsx, one row per patient, or the Kaggle per-eye copy
full_df.csv; images `{ID}_{left|right}.jpg`.

One case per eye, labelled by that eye's diagnostic keywords (the N D G C A H M O flags describe the
patient, not the eye, and are not used as findings). Keywords are split on the full-width comma '，' and
on ',' (both occur) and kept as written; KEYWORDS maps them into the ontology at intake, and a keyword it
does not know quarantines the eye there (unknown_label, naming the keyword) unless the recipe maps it.

Image-quality keywords are not findings. The rule: "low image quality", "no fundus image", "anterior
segment image" and "optic disk photographically invisible" make the eye ungradable (gradable False);
"lens dust" and "image offset" are artefacts that leave it gradable as far as ODIR says (gradable stays
unknown). Either way they are left out of the labels.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import number_label, parse_age, parse_sex
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.locate import first_dir, first_file, option_dir
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ingest.sources.tabular import LabelTableError, cell, read_csv_rows, read_xlsx_rows
from retinal_reason_data.schema import Eye, Modality, Quarantine

NAME = "odir5k"
WORKBOOKS = ("data.xlsx", "ODIR-5K_Training_Annotations(Updated)_V2.xlsx")
HEADER = ("ID", "Left-Diagnostic Keywords", "Right-Diagnostic Keywords")
UNGRADABLE = frozenset(
    {"low image quality", "no fundus image", "anterior segment image", "optic disk photographically invisible"}
)
ARTEFACTS = frozenset({"lens dust", "image offset"})
_SEPARATORS = re.compile(r"[，,]")
_EYE_IN_NAME = re.compile(r"_(left|right)\.[a-z]+$", re.IGNORECASE)

KEYWORDS: dict[str, str] = {
    # normal and diabetic retinopathy
    "normal fundus": "normal.fundus",
    "mild nonproliferative retinopathy": "dr.mild",
    "moderate non proliferative retinopathy": "dr.moderate",
    "severe nonproliferative retinopathy": "dr.severe",
    "proliferative diabetic retinopathy": "dr.proliferative",
    "severe proliferative diabetic retinopathy": "dr.proliferative",
    "diabetic retinopathy": "dr.any",
    "suspected diabetic retinopathy": "dr.suspected",
    "suspicious diabetic retinopathy": "dr.suspected",
    "suspected moderate non proliferative retinopathy": "dr.suspected",
    "intraretinal microvascular abnormality": "lesion.irma",
    "intraretinal hemorrhage": "lesion.haemorrhage",
    # glaucoma, cataract, media
    "glaucoma": "glaucoma",
    "suspected glaucoma": "glaucoma.suspect",
    "cataract": "cataract",
    "refractive media opacity": "media_haze",
    "vitreous degeneration": "vitreous.opacities",
    "vitreous opacity": "vitreous.opacities",
    "asteroid hyalosis": "vitreous.asteroid_hyalosis",
    "silicone oil eye": "silicone_oil",
    # macula
    "age-related macular degeneration": "amd.any",
    "dry age-related macular degeneration": "amd.dry",
    "wet age-related macular degeneration": "amd.wet",
    "drusen": "lesion.drusen",
    "epiretinal membrane": "erm",
    "macular epiretinal membrane": "erm",
    "epiretinal membrane over the macula": "erm",
    "optic disk epiretinal membrane": "erm",
    "macular hole": "mh.full_thickness",
    "maculopathy": "maculopathy",
    "central serous chorioretinopathy": "csc",
    "idiopathic choroidal neovascularization": "oct.cnv",
    # vessels
    "hypertensive retinopathy": "vasc.hypertensive",
    "branch retinal vein occlusion": "vasc.brvo",
    "old branch retinal vein occlusion": "vasc.brvo",
    "central retinal vein occlusion": "vasc.crvo",
    "old central retinal vein occlusion": "vasc.crvo",
    "branch retinal artery occlusion": "vasc.brao",
    "central retinal artery occlusion": "vasc.crao",
    "vessel tortuosity": "vasc.tortuosity",
    "retinal artery macroaneurysm": "vasc.macroaneurysm",
    "arteriosclerosis": "vasc.arteriosclerosis",
    "retinal vascular sheathing": "vasc.sheathing",
    "white vessel": "vasc.sheathing",
    # myopia, atrophy, pigment
    "pathological myopia": "myopia.pathologic",
    "myopic maculopathy": "myopia.pathologic",
    "myopia retinopathy": "myopia.myopic_changes",
    "myopic retinopathy": "myopia.myopic_changes",
    "tessellated fundus": "myopia.tessellation",
    "chorioretinal atrophy": "chorioretinal_atrophy",
    "diffuse chorioretinal atrophy": "chorioretinal_atrophy",
    "chorioretinal atrophy with pigmentation proliferation": "chorioretinal_atrophy",
    "peripapillary atrophy": "chorioretinal_atrophy",
    "retinal pigmentation": "lesion.rpe_changes",
    "pigmentation disorder": "lesion.rpe_changes",
    "macular pigmentation disorder": "lesion.rpe_changes",
    "abnormal pigment": "lesion.rpe_changes",
    "depigmentation of the retinal pigment epithelium": "lesion.rpe_changes",
    "pigment epithelium proliferation": "lesion.rpe_changes",
    "retinal pigment epithelial hypertrophy": "lesion.rpe_changes",
    "retinal pigment epithelium atrophy": "lesion.rpe_changes",
    "retinitis pigmentosa": "rp",
    # inflammation, detachment, treatment
    "old choroiditis": "chorioretinal_scar",
    "old chorioretinopathy": "chorioretinal_scar",
    "punctate inner choroidopathy": "pic",
    "rhegmatogenous retinal detachment": "rd.rhegmatogenous",
    "retinal detachment": "rd.rhegmatogenous",
    "retina fold": "retinal_fold",
    "laser spot": "lesion.laser_scars",
    "post laser photocoagulation": "lesion.laser_scars",
    "fundus laser photocoagulation spots": "lesion.laser_scars",
    "post retinal laser surgery": "lesion.laser_scars",
    # optic disc and congenital
    "optic disc edema": "disc.oedema",
    "optic nerve atrophy": "disc.pallor",
    "optic discitis": "disc.neuritis",
    "myelinated nerve fibers": "disc.myelinated_fibres",
    "morning glory syndrome": "disc.congenital_anomaly",
    "glial remnants anterior to the optic disc": "disc.congenital_anomaly",
    "retinochoroidal coloboma": "coloboma",
    "congenital choroidal coloboma": "coloboma",
    "macular coloboma": "coloboma",
    "choroidal nevus": "tumour.choroidal_naevus",
}


class OdirOptions(BaseModel):
    """`table`: which label file to read when both are present (auto prefers data.xlsx); `images`: the
    image folder when it is not the one beside the label file."""

    model_config = ConfigDict(extra="forbid")

    table: Literal["auto", "xlsx", "csv"] = "auto"
    images: str | None = None


def split_keywords(text: str) -> list[str]:
    """The keywords of one eye's cell, split on '，' and ',', stripped of spaces and stray quotes."""
    parts = (" ".join(part.split()).strip("\"'“” ") for part in _SEPARATORS.split(text or ""))
    return [part for part in parts if part]


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per eye from data.xlsx (or full_df.csv when that is the only table or `table: csv`)."""
    chosen = parse_options(OdirOptions, options.values, source, NAME)
    folders = [root, root / "ODIR-5K", root / "ODIR-5K" / "ODIR-5K"]
    workbook = first_file(folder / name for folder in folders for name in WORKBOOKS)
    per_eye = first_file(folder / "full_df.csv" for folder in folders)
    images = option_dir(root, chosen.images)
    if workbook and chosen.table in ("auto", "xlsx"):
        folder = images or first_dir(
            [workbook.parent / "Training Images", root / "ODIR-5K" / "Training Images", root / "preprocessed_images"]
        )
        try:
            yield from _read_workbook(workbook, folder, source)
        except LabelTableError as exc:
            yield quarantine(source, workbook, exc.line, exc.reason, str(exc))
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            yield quarantine(
                source, workbook, None, "labels_unreadable", f"{workbook}: cannot read the workbook: {exc}"
            )
    elif per_eye and chosen.table in ("auto", "csv"):
        folder = images or first_dir(
            [per_eye.parent / "preprocessed_images", *(folder / "Training Images" for folder in folders)]
        )
        yield from _read_per_eye(per_eye, folder, source)
    else:
        wanted = {"auto": "data.xlsx or full_df.csv", "xlsx": "data.xlsx", "csv": "full_df.csv"}[chosen.table]
        yield quarantine(source, root, None, "labels_missing", f"{root}: no ODIR-5K label file ({wanted})")


def _read_workbook(table: Path, folder: Path | None, source: str) -> Iterator[RawCase | Quarantine]:
    files = listing(folder) if folder else {}
    for line, row in read_xlsx_rows(table, required=HEADER):
        for side, eye in (("Left", Eye.LEFT), ("Right", Eye.RIGHT)):
            yield _eye_case(table, line, row, side, eye, cell(row, f"{side}-Fundus"), folder, files, source)


def _read_per_eye(table: Path, folder: Path | None, source: str) -> Iterator[RawCase | Quarantine]:
    files = listing(folder) if folder else {}
    for line, row in read_csv_rows(table):
        file_name = cell(row, "filename")
        match = _EYE_IN_NAME.search(file_name)
        if match is None:
            detail = f"{table} line {line}: filename {file_name!r} is not {{ID}}_{{left|right}}.jpg"
            yield quarantine(source, table, line, "name_unparsed", detail)
            continue
        side, eye = ("Left", Eye.LEFT) if match[1].lower() == "left" else ("Right", Eye.RIGHT)
        yield _eye_case(table, line, row, side, eye, file_name, folder, files, source)


def _eye_case(
    table: Path,
    line: int,
    row: dict[str, str],
    side: str,
    eye: Eye,
    file_name: str,
    folder: Path | None,
    files: Mapping[str, Path],
    source: str,
) -> RawCase | Quarantine:
    patient = number_label(cell(row, "ID"))
    keywords = split_keywords(cell(row, f"{side}-Diagnostic Keywords"))
    where = f"{table} line {line} ({side.lower()} eye)"
    if not patient or not keywords:
        return quarantine(source, table, line, "row_incomplete", f"{where}: empty ID or {side}-Diagnostic Keywords")
    file_name = file_name or f"{patient}_{side.lower()}.jpg"
    path = find_image(folder, file_name, files) if folder else None
    if path is None:
        return quarantine(source, table, line, "image_missing", f"{where}: no image {file_name!r} in {folder}")
    keywords = list(dict.fromkeys(keywords))  # a keyword repeated in one cell is one finding
    folded = [keyword.lower() for keyword in keywords]
    return RawCase(
        local_id=f"{patient}_{side.lower()}",
        raw_patient_id=patient,
        eye=eye,
        age=parse_age(cell(row, "Patient Age")),
        sex=parse_sex(cell(row, "Patient Sex")),
        images=[RawImage(path=path, modality=Modality.CFP)],
        labels=[keyword for keyword, low in zip(keywords, folded, strict=True) if low not in UNGRADABLE | ARTEFACTS],
        gradable=False if UNGRADABLE.intersection(folded) else None,
        file=str(table),
        row=line,
    )


ADAPTER = Adapter(
    name=NAME,
    title="ODIR-5K (Ocular Disease Intelligent Recognition)",
    layout=(
        "ODIR-5K/data.xlsx (ID, Patient Age, Patient Sex, Left-/Right-Fundus, Left-/Right-Diagnostic Keywords "
        "joined by '，', N D G C A H M O) + ODIR-5K/Training Images/{ID}_{left|right}.jpg, or the per-eye "
        "full_df.csv + preprocessed_images/; options: table (auto|xlsx|csv), images"
    ),
    licence="ODIR-2019 (Peking University): research use; check the terms of the copy you downloaded",
    read=read,
    labels=KEYWORDS,
)
