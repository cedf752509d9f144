"""Case reports on a real gold set: the real `pmc_oa` adapter and the complex-item builder over hand-annotated PMC
articles, compared with the annotations.

    .venv/bin/python benchmarks/case_reports_gold.py [GOLD.jsonl ...] [--json]

Default: the openly licensed sets in the repository (tests/data/real/case_reports/gold.jsonl, two full-text PMC
articles, and .../abstracts/gold.jsonl, 29 ophthalmic case-report abstracts wrapped in JATS). Each record's
`file` is relative to its JSONL's folder (default `articles/<id>.nxml`); figure files that are absent (the usual
case: the sources kept the XML only) get blank placeholder images, and an article without any figure (an abstract)
one uncaptioned placeholder figure, so that the adapter and the item builder run to the end. The adapter runs as a user
with non-ophthalmic case reports would run it: `ophthalmic_only: false`, every modality kept.

Per case: whether it yields a complex item (or why not: the quarantine reason and detail, or the leakage guard),
the exported answer against the gold diagnosis (right / wrong / absent; synonyms and the article's abbreviations
count as right), whether the exported question or a caption gives the gold diagnosis away, and age, sex and chief
complaint against the gold. Prints a Markdown table and the totals (figures for benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from retinal_reason_data.ingest.casereports.clinical import Extracted, case_sections, extract
from retinal_reason_data.ingest.casereports.gold import GoldRecord, judge_answer, leaks, sex_code
from retinal_reason_data.ingest.casereports.jats import Article, read_articles
from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ontology import UnmappedLabel, default_ontology
from retinal_reason_data.recipe import ComplexTasks
from retinal_reason_data.schema import Case, Finding, ImageRef, Modality, Provenance, Quarantine, QuestionType
from retinal_reason_data.tasks.complex import LeakError, complex_items
from retinal_reason_data.text import normalise_term, stable_hash

REPO = Path(__file__).resolve().parent.parent
GOLD_FOLDER = REPO / "tests" / "data" / "real" / "case_reports"
DEFAULT_GOLD = [GOLD_FOLDER / "gold.jsonl", GOLD_FOLDER / "abstracts" / "gold.jsonl"]
OPTIONS = {"ophthalmic_only": False, "modalities": [str(m) for m in Modality]}
COMPLAINT_OVERLAP = 0.5  # share of the gold complaint's words found in the chief complaint sentence


@dataclass
class CaseResult:
    """What the adapter and the item builder made of one gold case."""

    article: str
    case: int
    placeholder_figure: bool = False  # an abstract without figures: one uncaptioned placeholder was added
    item: bool = False
    why_not: str = ""
    answer: str | None = None
    answer_aliases: list[str] = field(default_factory=list)
    verdict: str = "absent"  # right | wrong | absent
    gold_diagnosis: str = ""
    leaked: list[str] = field(default_factory=list)
    age: int | None = None
    gold_age: int | None = None
    sex: str | None = None
    gold_sex: str | None = None
    complaint_found: bool | None = None
    question: str = ""
    captions: list[str] = field(default_factory=list)

    @property
    def age_right(self) -> bool | None:
        return None if self.gold_age is None else self.age == self.gold_age

    @property
    def sex_right(self) -> bool | None:
        return None if self.gold_sex is None else self.sex == self.gold_sex


def load_gold(path: Path) -> list[GoldRecord]:
    """Every record of a gold JSONL file (a bad line stops with the file, the line and what is wrong)."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(GoldRecord.model_validate_json(line))
        except ValueError as exc:
            raise SystemExit(f"{path} line {number}: not a gold record ({exc})") from None
    return records


PLACEHOLDER_FIGURE = (
    '<fig id="gold-placeholder"><label>Figure</label><caption><p></p></caption>'
    '<graphic xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="gold-placeholder"/></fig>'
)


def stage_articles(records: list[GoldRecord], gold_folder: Path, work: Path) -> tuple[Path, set[str]]:
    """Copy each article file once into `work/articles/<stem>/`, with placeholder images for absent figures; an
    article without any figure (an abstract wrapped in JATS) gets one uncaptioned placeholder figure, so that the
    adapter and the item builder run. Returns the folder and the articles given a placeholder figure."""
    root = work / "articles"
    placeholders: set[str] = set()
    for source in sorted({gold_folder / record.path for record in records}):
        folder = root / source.stem
        folder.mkdir(parents=True, exist_ok=True)
        data = source.read_bytes()
        with source.open("rb") as handle:
            articles = list(read_articles(handle, str(source)))
        if len(articles) == 1 and not articles[0].figures:
            data = data.replace(b"</body>", PLACEHOLDER_FIGURE.encode() + b"</body>", 1)
            placeholders.add(_name(articles[0]))
            articles = list(read_articles(iter([data]), str(source)))
        (folder / source.name).write_bytes(data)
        for article in articles:
            for figure in article.figures:
                for href in figure.hrefs:
                    name = Path(href).name
                    target = folder / (name if Path(name).suffix else f"{name}.jpg")
                    if not (source.parent / target.name).is_file() and not target.exists():
                        Image.new("RGB", (32, 32), (90, 90, 90)).save(target, format="JPEG")
    return root, placeholders


def as_case(raw: RawCase) -> Case:
    """The case intake would store (labels mapped where the ontology knows them, free text otherwise)."""
    ontology = default_ontology()
    findings = []
    for label in raw.labels:
        try:
            findings.append(ontology.map_label(label, {}))
        except UnmappedLabel:
            continue
    images = [
        ImageRef(path=str(i.path), sha256=f"{n:064d}", phash="0" * 64, width=32, height=32, modality=i.modality,
                 caption=i.caption)
        for n, i in enumerate(raw.images)
    ]  # fmt: skip
    return Case(
        case_id=raw.local_id,
        source="pmc_oa",
        patient_id=raw.local_id,
        age=raw.age,
        sex=raw.sex,
        images=images,
        findings=[Finding(code=f.code, raw_label=f.raw_label, grade=f.grade) for f in findings],
        context=raw.context,
        provenance=Provenance(file=raw.file, row=raw.row, licence=raw.licence or "unknown"),
    )


def _name(article: Article) -> str:
    """How the adapters name an article (its PMCID, else 'doi:<DOI>', else a hash of its title)."""
    return article.pmcid or (f"doi:{article.doi}" if article.doi else f"article-{stable_hash(article.title)}")


def rule_readings(gold_folder: Path, records: list[GoldRecord]) -> tuple[dict[str, list[Extracted]], dict[str, str]]:
    """The rules' reading of each case section of every gold article (age, sex and complaint, whether or not an
    item is made), by article name; and each record's article name (the file's only article, else the one with
    the record's PMCID or DOI)."""
    readings: dict[str, list[Extracted]] = {}
    names: dict[str, str] = {}
    for record in records:
        source = gold_folder / record.path
        with source.open("rb") as handle:
            articles = list(read_articles(handle, str(source)))
        wanted = [
            a for a in articles if (record.pmcid and a.pmcid == record.pmcid) or (record.doi and a.doi == record.doi)
        ]
        article = wanted[0] if wanted else articles[0] if len(articles) == 1 else None
        if article is None:
            raise SystemExit(f"{source}: no article of the file is {record.id} (give its pmcid or doi)")
        names[record.id] = _name(article)
        sections = case_sections(article)
        readings[_name(article)] = [extract(article, s, default_ontology(), len(sections) > 1) for s in sections]
    return readings, names


def complaint_found(found: str | None, gold: str | None) -> bool | None:
    if not gold:
        return None
    wanted = {w for w in normalise_term(gold).split() if len(w) > 3}
    have = set(normalise_term(found or "").split())
    return bool(wanted) and len(wanted & have) / len(wanted) >= COMPLAINT_OVERLAP


def evaluate(gold_path: Path) -> list[CaseResult]:
    """Run the adapter and the item builder over one gold file; a result per gold case."""
    records = load_gold(gold_path)
    readings, names = rule_readings(gold_path.parent, records)
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        root, placeholders = stage_articles(records, gold_path.parent, work)
        options = SourceOptions(work_dir=work / "work", values=OPTIONS)
        cases: dict[str, list[RawCase]] = {}
        refused: dict[str, Quarantine] = {}
        for record in ADAPTERS["pmc_oa"].read(root, "pmc_oa", options):
            if isinstance(record, RawCase):
                cases.setdefault(record.local_id.rsplit("_", 1)[0], []).append(record)
            else:
                refused.setdefault(str(record.row or "").split(" ")[0], record)
        for record in records:
            found = sorted(cases.get(names[record.id], []), key=lambda raw: raw.local_id)
            count = max(1, len(record.per_case), len(found))
            for number in range(1, count + 1):
                gold = record.case(min(number, max(1, len(record.per_case))))
                result = CaseResult(
                    article=record.id,
                    placeholder_figure=names[record.id] in placeholders,
                    case=number,
                    gold_diagnosis=gold.diagnosis,
                    gold_age=gold.age,
                    gold_sex=sex_code(gold.sex),
                )
                read = readings.get(names[record.id], [])
                if number <= len(read):
                    result.age, result.sex = read[number - 1].age, read[number - 1].sex
                    result.complaint_found = complaint_found(read[number - 1].chief_complaint, gold.chief_complaint)
                raw = found[number - 1] if number <= len(found) else None
                if raw is None:
                    why = refused.get(names[record.id])
                    result.why_not = f"{why.reason}: {why.detail.split(': ', 1)[-1]}" if why else "no case read"
                    results.append(result)
                    continue
                try:
                    items = list(complex_items(as_case(raw), default_ontology(), ComplexTasks(), seed=0))
                except LeakError as exc:
                    result.why_not = f"vignette_leak: {exc}"
                    results.append(result)
                    continue
                open_item = next((item for item in items if item.question_type is QuestionType.OPEN), None)
                if open_item is None:
                    result.why_not = "no open question built"
                    results.append(result)
                    continue
                result.item = True
                result.answer, result.answer_aliases = open_item.answer.text, open_item.answer.aliases
                result.verdict = judge_answer([result.answer, *result.answer_aliases], record, gold)
                result.question, result.captions = open_item.question, open_item.captions
                shown = "\n".join([open_item.question, *open_item.captions])
                result.leaked = leaks(shown, record, gold)
                results.append(result)
    return results


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def report(results: list[CaseResult], name: str) -> str:
    lines = [
        f"**{name}**\n",
        "| article | case | item | answer | verdict | leaks | age | sex | complaint | why no item |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.article} | {r.case} | {'yes' if r.item else 'no'} | {r.answer or ''} | {r.verdict} | "
            f"{len(r.leaked) if r.item else '-'} | {_mark(r.age_right)} ({r.age}/{r.gold_age}) | "
            f"{_mark(r.sex_right)} ({r.sex}/{r.gold_sex}) | {_mark(r.complaint_found)} | {r.why_not[:160]} |"
        )
    items = [r for r in results if r.item]
    ages = [r.age_right for r in results if r.age_right is not None]
    sexes = [r.sex_right for r in results if r.sex_right is not None]
    complaints = [r.complaint_found for r in results if r.complaint_found is not None]
    lines += [
        "",
        f"cases {len(results)}; items {len(items)}; answers right {sum(r.verdict == 'right' for r in items)}, "
        f"wrong {sum(r.verdict == 'wrong' for r in items)}, absent {len(results) - len(items)}; "
        f"exported questions that give the diagnosis away {sum(bool(r.leaked) for r in items)}; "
        f"age right {sum(ages)}/{len(ages)}; sex right {sum(sexes)}/{len(sexes)}; "
        f"chief complaint found {sum(complaints)}/{len(complaints)}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gold", nargs="*", type=Path, default=DEFAULT_GOLD, help="gold JSONL files")
    parser.add_argument("--json", action="store_true", help="every result as JSON instead of the table")
    args = parser.parse_args()
    for path in args.gold:
        results = evaluate(path)
        if args.json:
            print(json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False))
        else:
            print(report(results, str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)) + "\n")
    print(f"(python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
