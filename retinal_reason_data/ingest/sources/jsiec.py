"""JSIEC 1000 fundus images (Joint Shantou International Eye Centre; Cen et al. 2021): 39 class folders named
like `0.0.Normal`, `0.3.DR1`, `10.0.Possible glaucoma`, `29.1.Blur fundus with suspected PDR`.

The raw label is the folder name as on disk; CLASSES maps all 39 (a numbered folder it does not know is
reported at intake as unknown_label). JSIEC's DR3 is "severe NPDR and PDR", so it maps to a code that says
exactly that rather than to either grade. An image in a folder that does not look like a class
(`<number>.<name>`) is quarantined (name_unparsed). JSIEC has no patient ids and no eye labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.folders import iter_images, subfolders
from retinal_reason_data.schema import Modality, Quarantine

NAME = "jsiec"
CLASS_FOLDER = re.compile(r"^\d+(?:\.\d+)*\.\s*\S")
CLASSES: dict[str, str] = {
    "0.0.Normal": "normal.fundus",
    "0.1.Tessellated fundus": "myopia.tessellation",
    "0.2.Large optic cup": "disc.large_cup",
    "0.3.DR1": "dr.mild",
    "1.0.DR2": "dr.moderate",
    "1.1.DR3": "dr.severe_or_proliferative",
    "2.0.BRVO": "vasc.brvo",
    "2.1.CRVO": "vasc.crvo",
    "3.RAO": "vasc.rao",
    "4.Rhegmatogenous RD": "rd.rhegmatogenous",
    "5.0.CSCR": "csc",
    "5.1.VKH disease": "vkh",
    "6.Maculopathy": "maculopathy",
    "7.ERM": "erm",
    "8.MH": "mh.full_thickness",
    "9.Pathological myopia": "myopia.pathologic",
    "10.0.Possible glaucoma": "glaucoma.suspect",
    "10.1.Optic atrophy": "disc.pallor",
    "11.Severe hypertensive retinopathy": "vasc.hypertensive_severe",
    "12.Disc swelling and elevation": "disc.oedema",
    "13.Dragged Disc": "disc.dragged",
    "14.Congenital disc abnormality": "disc.congenital_anomaly",
    "15.0.Retinitis pigmentosa": "rp",
    "15.1.Bietti crystalline dystrophy": "bietti",
    "16.Peripheral retinal degeneration and break": "peripheral_degeneration",
    "17.Myelinated nerve fiber": "disc.myelinated_fibres",
    "18.Vitreous particles": "vitreous.opacities",
    "19.Fundus neoplasm": "tumour.any",
    "20.Massive hard exudates": "lesion.hard_exudate",
    "21.Yellow-white spots-flecks": "lesion.yellow_flecks",
    "22.Cotton-wool spots": "lesion.cotton_wool_spot",
    "23.Vessel tortuosity": "vasc.tortuosity",
    "24.Chorioretinal atrophy-coloboma": "coloboma",
    "25.Preretinal hemorrhage": "lesion.preretinal_haemorrhage",
    "26.Fibrosis": "lesion.fibrosis",
    "27.Laser Spots": "lesion.laser_scars",
    "28.Silicon oil in eye": "silicone_oil",
    "29.0.Blur fundus without PDR": "media_haze",
    "29.1.Blur fundus with suspected PDR": "dr.suspected_proliferative",
}


def _has_classes(folder: Path) -> bool:
    return any(CLASS_FOLDER.match(child.name) for child in subfolders(folder))


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per image, labelled by its class folder; `root` may hold the class folders or one folder
    (such as `1000images`) that does."""
    base = root if _has_classes(root) else next((child for child in subfolders(root) if _has_classes(child)), None)
    if base is None:
        yield quarantine(source, root, None, "labels_missing", f"{root}: no JSIEC class folders (like '0.0.Normal')")
        return
    for folder in subfolders(base):
        label = folder.name.strip()
        for path in iter_images(folder):
            if not CLASS_FOLDER.match(label):
                detail = f"{path}: folder {folder.name!r} is not a JSIEC class (<number>.<name>)"
                yield quarantine(source, path, None, "name_unparsed", detail)
                continue
            yield RawCase(
                local_id=f"{label}/{path.stem}",
                images=[RawImage(path=path, modality=Modality.CFP)],
                labels=[label],
                file=str(path),
            )


ADAPTER = Adapter(
    name=NAME,
    title="JSIEC 1000 fundus images (39 classes)",
    layout="[1000images/]{class folder such as 0.0.Normal, 0.3.DR1, 29.1.Blur fundus with suspected PDR}/*.jpg",
    licence="JSIEC 1000 (Cen et al. 2021): research use; check the terms of the copy you downloaded",
    read=read,
    labels=CLASSES,
)
