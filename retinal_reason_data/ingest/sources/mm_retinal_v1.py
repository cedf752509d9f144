"""MM-Retinal v1: atlas images with English and Chinese captions, per modality.

The atlas has no finding labels. The findings of a case are derived from its English caption, and only
where the caption names an ontology entry by an exact accepted name in the image's modality, outside a
negation (see sources/caption_terms.py): caption-derived findings, not a grader's labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, find_image, quarantine
from retinal_reason_data.ingest.sources.caption_terms import caption_findings
from retinal_reason_data.ingest.sources.folders import listing
from retinal_reason_data.ingest.sources.tabular import read_csv_rows
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.schema import Modality, Quarantine

MODALITIES = {"CFP": Modality.CFP, "FFA": Modality.FFA, "OCT": Modality.OCT}
_PANEL = re.compile(r"[A-Za-z]+$")


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per captioned image; panels of one figure (figure01-01A, -01B) share a patient."""
    base = root / "MM_Retinal_dataset_v1" if (root / "MM_Retinal_dataset_v1").is_dir() else root
    ontology = default_ontology()
    found = False
    for folder_name, modality in MODALITIES.items():
        table = next(
            (
                p
                for p in (base / f"{folder_name}_translated_v1.csv", root / f"{folder_name}_translated_v1.csv")
                if p.is_file()
            ),
            None,
        )
        if table is None:
            continue
        found = True
        folder = base / folder_name
        files = listing(folder)
        for line, row in read_csv_rows(table):
            image_id, caption = row.get("Image_ID", ""), row.get("en_caption", "")
            if not image_id:
                yield quarantine(source, table, line, "row_incomplete", f"{table} line {line}: empty Image_ID")
                continue
            path = find_image(folder, image_id, files)
            if path is None:
                yield quarantine(
                    source, table, line, "image_missing", f"{table} line {line}: no image {image_id} in {folder}"
                )
                continue
            figure = _PANEL.sub("", image_id) or image_id
            yield RawCase(
                local_id=f"{folder_name}/{image_id}",
                raw_patient_id=f"{folder_name}/{figure}",
                images=[RawImage(path=path, modality=modality, caption=caption or None)],
                labels=caption_findings(caption, ontology, modality),
                file=str(table),
                row=line,
            )
    if not found:
        yield quarantine(
            source, base, None, "labels_missing", f"{base}: no {{CFP,FFA,OCT}}_translated_v1.csv caption table"
        )


ADAPTER = Adapter(
    name="mm_retinal_v1",
    title="MM-Retinal v1 (ophthalmic atlas images with captions; findings derived from the captions)",
    layout="MM_Retinal_dataset_v1/{CFP,FFA,OCT}/figure01-01A.jpg (png/jpg/jpeg); "
    "{CFP,FFA,OCT}_translated_v1.csv (Image_ID without extension, en_caption, cn_caption). Findings are "
    "caption-derived: only phrases that are exactly an ontology name, synonym or abbreviation for the "
    "image's modality, outside negations",
    licence="MM-Retinal (Wu et al. 2024): research use only; atlas figures remain under their publishers' copyright",
    read=read,
)
