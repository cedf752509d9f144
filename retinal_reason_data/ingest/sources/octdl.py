"""OCTDL: OCTDL_labels.csv (or labels.csv) and {AMD,DME,ERM,NO,RAO,RVO,VID}/{file_name}.jpg."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import parse_eye, parse_sex
from retinal_reason_data.ingest.sources.folders import listing, subfolders
from retinal_reason_data.ingest.sources.options import parse_options
from retinal_reason_data.ingest.sources.tabular import read_csv_rows
from retinal_reason_data.schema import Modality, Quarantine

LABEL_FILES = ("OCTDL_labels.csv", "labels.csv")


class OctdlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subcategory: bool = Field(
        default=False, description="Also label each scan with its `subcategory` (e.g. MNV, BRVO) when not empty."
    )


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per scan, with the patient, eye and sex of its row; the class folder is the disease."""
    settings = parse_options(OctdlOptions, options.values, source, "octdl")
    candidates = [root, root / "OCTDL"]
    labels = next((folder / name for folder in candidates for name in LABEL_FILES if (folder / name).is_file()), None)
    if labels is None:
        yield quarantine(source, root, None, "labels_missing", f"{root}: neither {' nor '.join(LABEL_FILES)} found")
        return
    class_dirs: dict[str, Path] = {}
    for folder in [labels.parent, *candidates]:
        for class_dir in subfolders(folder):
            class_dirs.setdefault(class_dir.name.lower(), class_dir)
    listings: dict[str, Mapping[str, Path]] = {}
    for line, row in read_csv_rows(labels, required=("file_name", "disease")):
        name, disease = row.get("file_name", ""), row.get("disease", "")
        if not name or not disease:
            yield quarantine(
                source, labels, line, "row_incomplete", f"{labels} line {line}: empty file_name or disease"
            )
            continue
        class_dir = class_dirs.get(disease.lower())
        if class_dir is not None and class_dir.name.lower() not in listings:
            listings[class_dir.name.lower()] = listing(class_dir)
        path = find_image(class_dir, name, listings[class_dir.name.lower()]) if class_dir else None
        if path is None:
            yield quarantine(
                source, labels, line, "image_missing", f"{labels} line {line}: no image {name} in a {disease}/ folder"
            )
            continue
        raw_labels = [disease]
        subcategory = row.get("subcategory", "")
        if settings.subcategory and subcategory and subcategory.lower() not in ("na", "n/a", "none", "-"):
            raw_labels.append(subcategory)
        yield RawCase(
            local_id=Path(name).stem if Path(name).suffix.lower() in (".jpg", ".jpeg", ".png") else name,
            raw_patient_id=row.get("patient_id") or None,
            eye=parse_eye(row.get("eye")),
            sex=parse_sex(row.get("sex")),
            images=[RawImage(path=path, modality=Modality.OCT)],
            labels=raw_labels,
            file=str(labels),
            row=line,
        )


ADAPTER = Adapter(
    name="octdl",
    title="OCTDL (Optical Coherence Tomography Dataset for image-based Deep Learning)",
    layout="OCTDL_labels.csv or labels.csv (file_name, disease, subcategory, condition, patient_id, eye, sex, year, "
    "image_width, image_hight); images {AMD,DME,ERM,NO,RAO,RVO,VID}/{file_name}.jpg. "
    "options: subcategory (bool, default false): add the subcategory column as a second label",
    licence="CC BY 4.0 (Kulyabin et al. 2024, Mendeley Data)",
    read=read,
    labels={
        "AMD": "amd.any",
        "DME": "oct.dme",
        "ERM": "erm",
        "NO": "oct.normal",
        "RAO": "vasc.rao",
        "RVO": "vasc.rvo",
        "VID": "vmi",
        "MNV": "amd.wet",
        "Drusen": "oct.drusen",
    },
)
