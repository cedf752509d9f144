"""Kermany OCT2017: OCT2017/{train,test,val}/{CNV,DME,DRUSEN,NORMAL}/{CLASS}-{patient}-{n}.jpeg."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.phantoms.layouts import write_oct2017
from retinal_reason_data.schema import Modality, Quarantine
from retinal_reason_data.sources.base import Adapter, RawCase, RawImage, SourceOptions, image_listing, quarantine

SPLITS = ("train", "val", "test")


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per scan; the class comes from the folder and the patient from the file name."""
    base = root / "OCT2017" if (root / "OCT2017").is_dir() else root
    found_any = False
    for split in SPLITS:
        split_dir = base / split
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for name, path in sorted(image_listing(class_dir).items()):
                found_any = True
                parts = Path(name).stem.split("-")
                if len(parts) < 3:
                    yield quarantine(
                        source, path, None, "name_unparsed", f"{path}: expected CLASS-PATIENT-N in the file name"
                    )
                    continue
                yield RawCase(
                    local_id=f"{split}/{path.stem}",
                    raw_patient_id=parts[1],
                    images=[RawImage(path=path, modality=Modality.OCT)],
                    labels=[class_dir.name],
                    file=str(path),
                )
    if not found_any:
        yield quarantine(source, base, None, "labels_missing", f"{base}: no {'/'.join(SPLITS)}/CLASS/ folders found")


ADAPTER = Adapter(
    name="oct2017",
    title="Kermany OCT2017 (Labeled OCT and Chest X-Ray Images)",
    layout="OCT2017/{train,test[,val]}/{CNV,DME,DRUSEN,NORMAL}/{CLASS}-{patient}-{n}.jpeg",
    licence="CC BY 4.0 (Kermany et al., Mendeley Data)",
    read=read,
    labels={"CNV": "oct.cnv", "DME": "oct.dme", "DRUSEN": "oct.drusen", "NORMAL": "oct.normal"},
    write_phantom=write_oct2017,
)
