"""Messidor-2 with the adjudicated grades of Krause et al. 2018: messidor_data.csv
(`image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable`) and IMAGES/.

Labels are written `dr:N` (ICDR grade) and `dme:N` (referable diabetic macular oedema, 0/1): two graded
columns in one file, each mapped onto its own scale. An ungradable image (gradable 0,
empty grades) is kept with gradable False and no grade finding: that is the collection's own statement.
Messidor-2 holds two photographs per examination (one per eye) and the two image ids of an exam are
adjacent in sort order, so by default images are paired in that order and each pair is one patient
(option `pair_exams: false` makes each image its own patient). The eye is not recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.locate import first_dir, first_file, option_dir
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ingest.sources.tabular import cell, read_csv_rows
from retinal_reason_data.schema import Modality, Quarantine

NAME = "messidor2"
GRADABLE = {"1": True, "0": False, "": None}


class Messidor2Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: str | None = None
    pair_exams: bool = True


def exam_patients(image_ids: list[str]) -> dict[str, str]:
    """image id -> the first image id of its exam, pairing ids in sort order (1st with 2nd, 3rd with 4th...)."""
    ordered = sorted({Path(image_id).stem for image_id in image_ids})
    return {stem: ordered[index - index % 2] for index, stem in enumerate(ordered)}


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per image row; the label file is read whole first (it is small) to pair the exams."""
    chosen = parse_options(Messidor2Options, options.values, source, NAME)
    table = first_file([root / "messidor_data.csv", root / "messidor-2" / "messidor_data.csv"])
    if table is None:
        yield quarantine(source, root / "messidor_data.csv", None, "labels_missing", f"{root}: no messidor_data.csv")
        return
    folder = option_dir(root, chosen.images) or first_dir(
        [table.parent / "IMAGES", table.parent / "images", table.parent / "messidor-2" / "IMAGES", table.parent]
    )
    files = listing(folder) if folder else {}
    rows = list(read_csv_rows(table, required=("image_id", "adjudicated_dr_grade")))
    patients = exam_patients([cell(row, "image_id") for _, row in rows if cell(row, "image_id")])
    for line, row in rows:
        image_id = cell(row, "image_id")
        grade, dme = number_label(cell(row, "adjudicated_dr_grade")), number_label(cell(row, "adjudicated_dme"))
        gradable_text = number_label(cell(row, "adjudicated_gradable"))
        where = f"{table} line {line}"
        if not image_id:
            yield quarantine(source, table, line, "row_incomplete", f"{where}: empty image_id")
            continue
        if gradable_text not in GRADABLE:
            yield quarantine(source, table, line, "cell_unparsed", f"{where}: adjudicated_gradable {gradable_text!r}")
            continue
        gradable = GRADABLE[gradable_text]
        if gradable is not False and not grade:
            yield quarantine(
                source, table, line, "row_incomplete", f"{where}: a gradable image with an empty adjudicated_dr_grade"
            )
            continue
        path = find_image(folder, image_id, files) if folder else None
        if path is None:
            yield quarantine(source, table, line, "image_missing", f"{where}: no image for {image_id!r} in {folder}")
            continue
        stem = Path(image_id).stem
        labels = ([f"dr:{grade}"] if grade else []) + ([f"dme:{dme}"] if dme else [])
        yield RawCase(
            local_id=stem,
            raw_patient_id=patients[stem] if chosen.pair_exams else None,
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=labels,
            gradable=gradable,
            file=str(table),
            row=line,
        )


ADAPTER = Adapter(
    name=NAME,
    title="Messidor-2 (adjudicated DR and DME grades)",
    layout=(
        "messidor_data.csv (image_id,adjudicated_dr_grade 0-4,adjudicated_dme 0/1,adjudicated_gradable 0/1) + "
        "IMAGES/*.png|*.JPG; exams paired in image-id order; options: images, pair_exams"
    ),
    licence="Messidor-2: ADCIS/LaTIM licence, research use with attribution; adjudicated grades by Krause et al. 2018",
    read=read,
    labels={
        "dr:0": "dr.none",
        "dr:1": "dr.mild",
        "dr:2": "dr.moderate",
        "dr:3": "dr.severe",
        "dr:4": "dr.proliferative",
        # adjudicated_dme is referable DME, absent or present: a scale of its own (not the IDRiD risk grades,
        # whose 0 means no exudates at all, and never the OCT diagnosis)
        "dme:0": "dme.not_referable",
        "dme:1": "dme.referable",
    },
)
