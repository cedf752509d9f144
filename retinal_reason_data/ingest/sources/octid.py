"""OCTID (Optical Coherence Tomography Image Database): one folder per class, no patient ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, SourceOptions
from retinal_reason_data.ingest.sources.image_folder import read_class_folders
from retinal_reason_data.schema import Modality, Quarantine


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per scan; the class folder is the label and each scan is its own patient."""
    yield from read_class_folders(root, source, Modality.OCT)


ADAPTER = Adapter(
    name="octid",
    title="OCTID (Optical Coherence Tomography Image Database, Waterloo)",
    layout="<class>/<image>: ANormal, ARMD, CSR, Diabetic_retinopathy, Macular_Hole (other copies: NORMAL, AMD, "
    "DR, MH); [<split>/] folders are followed when all top folders are named like train/val/test",
    licence="OCTID: research use; cite Gholami et al. 2020",
    read=read,
    labels={
        "ANormal": "oct.normal",
        "Normal": "oct.normal",
        "ARMD": "amd.any",
        "AMRD": "amd.any",
        "AMD": "amd.any",
        "CSR": "csc",
        "Diabetic_retinopathy": "dr.any",
        "DR": "dr.any",
        "Macular_Hole": "mh.full_thickness",
        "MH": "mh.full_thickness",
    },
)
