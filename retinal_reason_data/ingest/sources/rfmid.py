"""RFMiD (Retinal Fundus Multi-disease Image Dataset, Pachade et al. 2021): three splits, each a label table
`ID,Disease_Risk` + 45 binary disease columns, images `{ID}.png`.

Every column set to 1 is a raw label (its column name, e.g. `MH`, which in RFMiD means media haze);
COLUMNS maps all 45. Disease_Risk is not a finding. A row with all 45 columns 0 is a normal fundus (raw label
`NORMAL`), unless its Disease_Risk is 1: then the row contradicts itself and is quarantined
(labels_inconsistent). A column the table has beyond the 45 is passed on as a raw label when set, so
intake reports it (unknown_label) unless the recipe maps it. IDs restart in each split: case ids carry
the split (`train/1`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.fields import number_label
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.locate import find_files, first_dir
from retinal_reason_data.ingest.sources.tabular import cell, guarded, read_csv_rows
from retinal_reason_data.schema import Modality, Quarantine

NAME = "rfmid"
NORMAL = "NORMAL"
COLUMNS: dict[str, str] = {
    "DR": "dr.any",  # diabetic retinopathy
    "ARMD": "amd.any",  # age-related macular degeneration
    "MH": "media_haze",  # media haze (not macular hole: that is MHL)
    "DN": "lesion.drusen",
    "MYA": "myopia.myopic_changes",
    "BRVO": "vasc.brvo",
    "TSLN": "myopia.tessellation",
    "ERM": "erm",
    "LS": "lesion.laser_scars",
    "MS": "lesion.macular_scar",
    "CSR": "csc",
    "ODC": "disc.large_cup",  # optic disc cupping
    "CRVO": "vasc.crvo",
    "TV": "vasc.tortuosity",
    "AH": "vitreous.asteroid_hyalosis",
    "ODP": "disc.pallor",
    "ODE": "disc.oedema",
    "ST": "disc.optociliary_shunt",
    "AION": "disc.aion",
    "PT": "vasc.telangiectasia",  # parafoveal telangiectasia
    "RT": "retinal_traction",
    "RS": "retinitis",
    "CRS": "chorioretinitis",
    "EDN": "lesion.hard_exudate",  # exudation
    "RPEC": "lesion.rpe_changes",
    "MHL": "mh.full_thickness",  # macular hole
    "RP": "rp",
    "CWS": "lesion.cotton_wool_spot",
    "CB": "coloboma",
    "ODPM": "disc.pit_maculopathy",
    "PRH": "lesion.preretinal_haemorrhage",
    "MNF": "disc.myelinated_fibres",
    "HR": "vasc.haemorrhagic_retinopathy",
    "CRAO": "vasc.crao",
    "TD": "disc.tilted",
    "CME": "cme",
    "PTCR": "choroidal_rupture",  # post-traumatic choroidal rupture
    "CF": "choroidal_folds",
    "VH": "vitreous.haemorrhage",
    "MCA": "vasc.macroaneurysm",
    "VS": "vasc.vasculitis",
    "BRAO": "vasc.brao",
    "PLQ": "vasc.plaque",
    "HPED": "oct.hped",
    "CL": "vasc.collaterals",
}
# split, label table name, image folder in the original layout, image folder in the Kaggle copy
SPLITS = (
    ("train", "RFMiD_Training_Labels.csv", "a. Training Set", "Training"),
    ("validation", "RFMiD_Validation_Labels.csv", "b. Validation Set", "Validation"),
    ("test", "RFMiD_Testing_Labels.csv", "c. Testing Set", "Test"),
)
NOT_FINDINGS = {"id", "disease_risk"}


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per labelled image of each split found under `root` (either layout)."""
    found = False
    for split, table_name, folder_name, kaggle_folder in SPLITS:
        for table in find_files(root, f"*{table_name}"):
            found = True
            folder = first_dir(
                [
                    root / "1. Original Images" / folder_name,
                    table.parent.parent / "1. Original Images" / folder_name,
                    table.parent / kaggle_folder,
                ]
            )
            yield from guarded(source, _read_table(table, folder, split, source))
    if not found:
        yield quarantine(source, root, None, "labels_missing", f"{root}: no RFMiD_*_Labels.csv found")


def _read_table(table: Path, folder: Path | None, split: str, source: str) -> Iterator[RawCase | Quarantine]:
    files = listing(folder) if folder else {}
    for line, row in read_csv_rows(table, required=("ID",)):
        where = f"{table} line {line}"
        missing = [column for column in COLUMNS if column not in row]
        if missing:
            yield quarantine(source, table, line, "row_incomplete", f"{where}: no column(s) {', '.join(missing)}")
            continue
        image_id, risk = number_label(cell(row, "ID")), number_label(cell(row, "Disease_Risk"))
        values = {column: number_label(value) for column, value in row.items() if column.lower() not in NOT_FINDINGS}
        unreadable = [f"{column}={value!r}" for column, value in values.items() if value not in ("0", "1")]
        if not image_id or unreadable:
            detail = f"{where}: empty ID" if not image_id else f"{where}: not 0/1: {', '.join(unreadable)}"
            yield quarantine(source, table, line, "cell_unparsed", detail)
            continue
        labels = [column for column, value in values.items() if value == "1"]
        if not labels and risk == "1":
            detail = f"{where}: Disease_Risk is 1 but none of the disease columns is set"
            yield quarantine(source, table, line, "labels_inconsistent", detail)
            continue
        path = find_image(folder, image_id, files) if folder else None
        if path is None:
            yield quarantine(source, table, line, "image_missing", f"{where}: no image {image_id}.png in {folder}")
            continue
        yield RawCase(
            local_id=f"{split}/{image_id}",
            images=[RawImage(path=path, modality=Modality.CFP)],
            labels=labels or [NORMAL],
            file=str(table),
            row=line,
        )


ADAPTER = Adapter(
    name=NAME,
    title="RFMiD (Retinal Fundus Multi-disease Image Dataset)",
    layout=(
        "1. Original Images/{a. Training Set,b. Validation Set,c. Testing Set}/{ID}.png + 2. Groundtruths/"
        "{a. RFMiD_Training_Labels.csv,...} (ID,Disease_Risk + 45 binary columns); also the Kaggle copy "
        "(*_Set/RFMiD_*_Labels.csv beside Training/, Validation/, Test/)"
    ),
    licence="RFMiD: CC BY 4.0 (Pachade et al. 2021, IEEE DataPort)",
    read=read,
    labels={**COLUMNS, NORMAL: "normal.fundus"},
)
