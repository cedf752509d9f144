"""Kermany OCT2017: OCT2017/{train,test,val}/{CNV,DME,DRUSEN,NORMAL}/{CLASS}-{patient}-{n}.jpeg.

As downloaded, the split folders sit in `OCT2017/`, or in `OCT2017 /` with a trailing space, twice (Kaggle's
kermany2018 has `OCT2017 /` and `oct2017/OCT2017 /`): the root may be the folder holding them or a folder above it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, image_listing, quarantine
from retinal_reason_data.ingest.sources.folders import subfolders
from retinal_reason_data.schema import Modality, Quarantine

SPLITS = ("train", "val", "test")
COLLECTION_FOLDERS = {"oct2017", "oct"}  # compared stripped and lower-cased: Kaggle's copy is named "OCT2017 "
SEARCH_DEPTH = 2  # kermany2018/oct2017/OCT2017 /train


def find_base(root: Path) -> Path | None:
    """The folder holding the split folders: `root`, or the shallowest OCT2017-named folder under it (Kaggle's
    copy holds the collection twice, `OCT2017 /` and `oct2017/OCT2017 /`: the shallower one is read)."""
    level = [root]
    for depth in range(SEARCH_DEPTH + 1):
        for folder in level:
            if any((folder / split).is_dir() for split in SPLITS):
                return folder
        if depth < SEARCH_DEPTH:
            level = [
                child
                for folder in level
                for child in subfolders(folder)
                if child.name.strip().lower() in COLLECTION_FOLDERS
            ]
    return None


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per scan; the class comes from the folder and the patient from the file name."""
    base = find_base(root)
    if base is None:
        detail = f"{root}: no {'/'.join(SPLITS)}/CLASS/ folders found in it nor in an OCT2017 folder under it"
        yield quarantine(source, root, None, "labels_missing", detail)
        return
    found_any = False
    for split in SPLITS:
        split_dir = base / split
        if not split_dir.is_dir():
            continue
        for class_dir in subfolders(split_dir):
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
    layout="OCT2017/{train,test[,val]}/{CNV,DME,DRUSEN,NORMAL}/{CLASS}-{patient}-{n}.jpeg; root is the OCT2017 "
    "folder or a folder above it (Kaggle's 'OCT2017 ' and oct2017/'OCT2017 ' are found; the shallower is read)",
    licence="CC BY 4.0 (Kermany et al., Mendeley Data)",
    read=read,
    labels={"CNV": "oct.cnv", "DME": "oct.dme", "DRUSEN": "oct.drusen", "NORMAL": "oct.normal"},
)
