"""FFA-IR: FFAIR/case_x/y.jpeg with ffair_annotation.json (reports) and lesion_info.json (lesion boxes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.text_files import read_text
from retinal_reason_data.schema import ClinicalContext, Modality, Quarantine


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per FFA-IR case id: all its frames, the lesion categories as labels, the report as context."""
    annotation_path = root / "ffair_annotation.json"
    lesion_path = root / "lesion_info.json"
    try:
        annotation = json.loads(read_text(annotation_path))
    except (OSError, json.JSONDecodeError) as exc:
        yield quarantine(source, annotation_path, None, "labels_unreadable", f"{annotation_path}: {exc}")
        return
    try:
        lesions = json.loads(read_text(lesion_path))
    except (OSError, json.JSONDecodeError) as exc:
        yield quarantine(source, lesion_path, None, "labels_unreadable", f"{lesion_path}: {exc}")
        return
    images_root = root / "FFAIR"
    for split in sorted(annotation):
        for case_id, record in sorted(annotation[split].items()):
            where = f"{split}/{case_id}"
            paths = [str(p) for p in record.get("Image_path", [])]
            missing = [p for p in paths if not (images_root / p).is_file()]
            if missing:
                yield quarantine(
                    source,
                    annotation_path,
                    where,
                    "image_missing",
                    f"{annotation_path} {where}: images not on disk: {', '.join(missing)}",
                )
                continue
            if not paths:
                yield quarantine(source, annotation_path, where, "no_images", f"{annotation_path} {where}: no images")
                continue
            categories = sorted({str(box[0]).strip() for p in paths for box in lesions.get(p, []) if box})
            yield RawCase(
                local_id=case_id,
                raw_patient_id=case_id,
                images=[RawImage(path=images_root / p, modality=Modality.FFA) for p in paths],
                labels=categories or ["normal"],
                context=ClinicalContext(report=record.get("En_Report")),
                file=str(annotation_path),
                row=where,
            )


ADAPTER = Adapter(
    name="ffa_ir",
    title="FFA-IR (fundus fluorescein angiography images and reports)",
    layout="FFAIR/case_x/y.jpeg; ffair_annotation.json {split: {case: {Image_path, En_Report}}}; "
    "lesion_info.json {'case/img.jpeg': [[category, x0, y0, x1, y1]]}",
    licence="PhysioNet Credentialed Health Data License 1.5.0 (do not redistribute images)",
    read=read,
    labels={
        "leakage": "ffa.leakage",
        "non-perfusion": "ffa.non_perfusion",
        "microaneurysm": "ffa.microaneurysm",
        "microaneurysms": "ffa.microaneurysm",
        "neovascularization": "ffa.neovascularisation",
        "staining": "ffa.staining",
        "pooling": "ffa.pooling",
        "window defect": "ffa.window_defect",
        "blocked fluorescence": "ffa.blocked_fluorescence",
        "normal": "ffa.normal",
    },
)
