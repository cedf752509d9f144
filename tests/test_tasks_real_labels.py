"""Questions on real labels: APTOS 2019 and EyeQ-labelled EyePACS grades read through the real adapters (the
folders in ../shared/realdata), and IDRiD and Messidor-2 phantoms built through the pipeline (two scales per
case): every item's stem and options are right for its case's grades."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.ingest.sources import get_adapter
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ingest.sources.eyepacs import DR_GRADES
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.pipeline import BuildReport, build_items, ingest
from retinal_reason_data.recipe import BasicTasks, load_recipe
from retinal_reason_data.schema import Case, ImageRef, Item, Provenance, QuestionType
from retinal_reason_data.tasks.basic import basic_items
from tests.conftest import write_recipe
from tests.helpers.questions import check_findings, check_graded

ONTOLOGY = default_ontology()
ALL_TYPES = BasicTasks()


def _read(adapter: str, root: Path, tmp: Path, **options: object) -> tuple[list[RawCase], Counter[str]]:
    cases, refused = [], Counter()
    for record in get_adapter(adapter).read(root, "real", SourceOptions(work_dir=tmp / "work", values=options)):
        if isinstance(record, RawCase):
            cases.append(record)
        else:
            refused[record.reason] += 1
    return cases, refused


def _as_case(raw: RawCase, labels: Mapping[str, str]) -> Case:
    """The case intake would make, without opening the image (the questions depend on labels only)."""
    images = [
        ImageRef(path=str(i.path), sha256="0" * 64, phash="0" * 64, width=1, height=1, modality=i.modality)
        for i in raw.images
    ]
    findings = [ONTOLOGY.map_label(label, labels) for label in raw.labels]
    return Case(
        case_id=f"real:{raw.local_id}",
        source="real",
        patient_id=raw.raw_patient_id or raw.local_id,
        images=images,
        findings=findings,
        provenance=Provenance(file=raw.file, row=raw.row, licence="research"),
    )


def _every_type(case: Case) -> Iterator[Item]:
    """The item the recipe's defaults choose, then one of each type."""
    yield from basic_items(case, ONTOLOGY, ALL_TYPES, seed=0)
    for question_type in QuestionType:
        yield from basic_items(case, ONTOLOGY, BasicTasks(types=[question_type]), seed=0)


def _check_dr_items(case: Case) -> int:
    (code,) = [f.code for f in case.findings]
    items = list(_every_type(case))
    assert len(items) == 5, case.case_id  # the only facet is its DR grade: one item per call
    for item in items:
        check_graded(item, "icdr", code)
    return len(items)


def test_aptos_grades_through_the_aptos_adapter(realdata: Path, tmp_path: Path) -> None:
    """The 17 APTOS photographs sit in grade_<g>/ folders beside the full train.csv; the adapter reads them
    through a train_images/ folder of links, and every grade it reads agrees with the folder."""
    folder = realdata / "APTOS2019"
    root = tmp_path / "aptos"
    (root / "train_images").mkdir(parents=True)
    (root / "train.csv").symlink_to(folder / "train.csv")
    grade_of_folder = {}
    for image in sorted(folder.glob("grade_*/*.png")):
        (root / "train_images" / image.name).symlink_to(image)
        grade_of_folder[image.stem] = image.parent.name.removeprefix("grade_")
    raws, refused = _read("aptos2019", root, tmp_path)
    with (folder / "train.csv").open(newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    assert len(raws) == len(grade_of_folder) == 17 and refused == {"image_missing": rows - 17}
    labels = get_adapter("aptos2019").labels
    checked, grades = 0, Counter()
    for raw in raws:
        assert raw.labels == [grade_of_folder[raw.local_id]], raw.local_id
        case = _as_case(raw, labels)
        grades[case.findings[0].code] += 1
        checked += _check_dr_items(case)
    assert len(grades) == 5 and checked == 5 * 17  # every ICDR grade is among them (3/5/2/3/4)


def test_eyeq_labelled_eyepacs_grades_through_the_manifest_adapter(realdata: Path, tmp_path: Path) -> None:
    """1,614 EyePACS photographs with EyeQ's DR grade, patient and eye (labels.csv), read by the manifest adapter
    with EyePACS's grade map, as a recipe would."""
    root = realdata / "EyePACS_256px_EyeQ_labelled"
    raws, refused = _read(
        "manifest",
        root,
        tmp_path,
        file="labels.csv",
        image_column="image",
        image_root="images",
        label_columns=["dr_grade"],
        patient_column="patient_id",
        eye_column="eye",
        modality="CFP",
    )
    assert len(raws) == 1614 and not refused
    grades, types = Counter(), Counter()
    for raw in raws:
        case = _as_case(raw, DR_GRADES)
        grades[case.findings[0].code] += 1
        _check_dr_items(case)
        for item in basic_items(case, ONTOLOGY, ALL_TYPES, seed=0):
            types[item.question_type] += 1
    assert set(grades) == set(ONTOLOGY.scales["icdr"].grades)
    assert set(types) == set(QuestionType), "the recipe's mix reaches every type on DR grades"


def test_idrid_and_messidor2_cases_get_a_question_per_scale_through_the_pipeline(tmp_path: Path) -> None:
    """Phantom IDRiD (DR + DME risk) and Messidor-2 (DR + referable DME) ingested and questioned as a build
    does: each graded case gets one item per scale, with distinct ids, and never a mixed one."""
    sources = [
        {"adapter": "idrid", "root": "raw/idrid", "phantom": {"cases": 14, "seed": 5}},
        {"adapter": "messidor2", "root": "raw/messidor2", "phantom": {"cases": 14, "seed": 6}},
    ]
    recipe = load_recipe(write_recipe(tmp_path, sources=sources, tasks={"complex": {"enabled": False}}))
    catalog = Catalog(recipe.catalog_path)
    try:
        report = BuildReport()
        ingest(recipe, catalog, report)
        build_items(recipe, catalog, report)
        by_case: dict[str, list[Item]] = {}
        cases = {case.case_id: case for case in catalog.iter_cases()}
        for item in catalog.iter_items():
            by_case.setdefault(item.case_id, []).append(item)
    finally:
        catalog.close()
    scale_pairs = {"idrid": {"icdr", "dme_risk"}, "messidor2": {"icdr", "dme_referable"}}
    seen = Counter()
    for case_id, case in cases.items():
        items = by_case.get(case_id, [])
        graded = {ONTOLOGY.entry(f.code).scale: f.code for f in case.findings if ONTOLOGY.entry(f.code).scale}
        if not graded:
            assert case.gradable is False and not items  # Messidor-2's ungradable image: no grade, no question
            continue
        assert set(graded) == scale_pairs[case.source], case_id
        assert len({item.item_id for item in items}) == len(items)
        asked = {}
        for item in items:
            named = {key for key, scale in ONTOLOGY.scales.items() if scale.name.lower() in item.question.lower()}
            if named:
                (scale_key,) = named
                check_graded(item, scale_key, graded[scale_key])
                asked[scale_key] = item
            else:
                others = {f.code for f in case.findings if not ONTOLOGY.entry(f.code).scale}
                check_findings(item, others, {f.code for f in case.findings})
        assert set(asked) == set(graded), case_id  # a question per scale, each about its own grade
        seen[case.source] += 1
    assert seen["idrid"] >= 10 and seen["messidor2"] >= 10, seen
