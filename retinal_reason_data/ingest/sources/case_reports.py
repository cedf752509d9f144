"""Case reports as JSONL: chief complaint, history, exam, figures with captions, final diagnosis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage, SourceOptions, quarantine
from retinal_reason_data.ingest.sources.text_files import open_text
from retinal_reason_data.schema import ClinicalContext, Modality, Quarantine, Sex


class Figure(BaseModel):
    model_config = ConfigDict(extra="ignore")
    file: str
    caption: str = ""
    modality: Modality = Modality.OTHER


class Report(BaseModel):
    model_config = ConfigDict(extra="ignore")
    case_id: str
    pmcid: str | None = None
    title: str | None = None
    age: int | None = None
    sex: str | None = None
    chief_complaint: str
    history: str | None = None
    exam: str | None = None
    diagnosis: str
    diagnosis_aliases: list[str] = Field(default_factory=list)
    licence: str | None = None
    figures: list[Figure] = Field(min_length=1)


def read(root: Path, source: str, options: SourceOptions) -> Iterator[RawCase | Quarantine]:
    """One case per JSON line; the diagnosis is the label (free text when the ontology lacks it)."""
    path = root / "case_reports.jsonl"
    if not path.is_file():
        yield quarantine(source, path, None, "labels_missing", f"{path}: case report file not found")
        return
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                report = Report.model_validate_json(line)
            except ValidationError as exc:
                problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                yield quarantine(source, path, line_number, "record_invalid", f"{path} line {line_number}: {problem}")
                continue
            missing = [f.file for f in report.figures if not (root / f.file).is_file()]
            if missing:
                yield quarantine(
                    source,
                    path,
                    line_number,
                    "image_missing",
                    f"{path} line {line_number}: figure files not found: {', '.join(missing)}",
                )
                continue
            yield RawCase(
                local_id=report.case_id,
                raw_patient_id=report.case_id,
                age=report.age,
                sex=Sex(report.sex) if report.sex in ("F", "M") else Sex.UNKNOWN,
                images=[RawImage(path=root / f.file, modality=f.modality, caption=f.caption) for f in report.figures],
                labels=[report.diagnosis],
                context=ClinicalContext(
                    chief_complaint=report.chief_complaint,
                    history=report.history,
                    exam=report.exam,
                    diagnosis=report.diagnosis,
                    diagnosis_aliases=report.diagnosis_aliases,
                    title=report.title,
                    pmcid=report.pmcid,
                ),
                file=str(path),
                row=line_number,
            )


ADAPTER = Adapter(
    name="case_reports",
    title="Case reports (JSONL with figures)",
    layout="case_reports.jsonl: {case_id, pmcid, title, age, sex, chief_complaint, history, exam, diagnosis, "
    "diagnosis_aliases, licence, figures: [{file, caption, modality}]}; figure files relative to the root",
    licence="per article (PMC Open Access subset: CC BY / CC BY-NC and others)",
    read=read,
)
