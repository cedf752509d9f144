"""Case-report sources: JATS reading speed and memory, the PMC OA adapter end to end, and how often the
rule-based extractor recovers what the phantom articles were written with.

    .venv/bin/python benchmarks/case_reports.py [--articles 300] [--bundle 3000]

Prints a Markdown table (figures for benchmarks/README.md). Phantom articles only: the recovery rates say
that the rules read the structures real articles use, not how well they read any real article.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from retinal_reason_data.ingest.casereports.jats import read_articles
from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.base import RawCase, SourceOptions
from retinal_reason_data.ontology import default_ontology
from retinal_reason_data.phantoms.layouts_pmc import FORMS, TEMPLATES, article_xml, phantom_case, wrap
from retinal_reason_data.phantoms.registry import writer_for
from retinal_reason_data.recipe import ComplexTasks
from retinal_reason_data.schema import Case, ImageRef, Provenance
from retinal_reason_data.tasks.complex import LeakError, complex_items


def _bundle(count: int) -> bytes:
    parts = [
        article_xml(str(5_000_000 + n), [phantom_case(n, 9)], FORMS[n % len(FORMS)], "Eye", f"b{n}")
        for n in range(count)
    ]
    return wrap("".join(parts), "articles").encode("utf-8")


def parse_speed(count: int) -> tuple[float, float, int]:
    data = _bundle(count)
    started, cpu = time.perf_counter(), time.process_time()
    articles = sum(1 for _ in read_articles(io.BytesIO(data), "bundle.xml"))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return articles / seconds, articles / cpu_seconds, len(data) / 1e6, articles


def adapter_run(articles: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "oa"
        started = time.perf_counter()
        writer_for("pmc_oa")(root, articles, 0)
        written = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        cases, refused = [], Counter()
        for record in ADAPTERS["pmc_oa"].read(root, "pmc_oa", SourceOptions(work_dir=Path(folder) / "work")):
            if isinstance(record, RawCase):
                cases.append(record)
            else:
                refused[record.reason] += 1
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    ontology = default_ontology()
    truth_hits = complaint_hits = leaks = items = 0
    templates = {t.diagnosis.lower() for t in TEMPLATES}
    for raw in cases:
        diagnosis = (raw.context.diagnosis or "").lower()
        truth_hits += diagnosis in templates or any(
            alias.lower() in templates for alias in raw.context.diagnosis_aliases
        )
        complaint_hits += bool(raw.context.chief_complaint and "presented with" in raw.context.chief_complaint)
        case = Case(
            case_id=raw.local_id,
            source="pmc_oa",
            patient_id="p",
            images=[
                ImageRef(
                    path=str(i.path),
                    sha256="0" * 64,
                    phash="0" * 64,
                    width=1,
                    height=1,
                    modality=i.modality,
                    caption=i.caption,
                )
                for i in raw.images
            ],
            findings=[],
            context=raw.context,
            provenance=Provenance(file=raw.file, licence="x"),
        )
        try:
            items += len(list(complex_items(case, ontology, ComplexTasks(), 0)))
        except LeakError:
            leaks += 1
    return {
        "articles": articles,
        "write_s": written,
        "read_s": seconds,
        "read_cpu_s": cpu_seconds,
        "cases": len(cases),
        "refused": dict(refused),
        "diagnosis_recovered": truth_hits,
        "complaint_found": complaint_hits,
        "items": items,
        "dropped_for_leaks": leaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--bundle", type=int, default=3000)
    args = parser.parse_args()
    rate, cpu_rate, megabytes, count = parse_speed(args.bundle)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run = adapter_run(args.articles)
    print("| measure | value |\n|---|---|")
    print(
        f"| JATS bundle of {count} articles ({megabytes:.1f} MB) read as a stream | {rate:,.0f} articles/s wall, "
        f"{cpu_rate:,.0f} per CPU second |"
    )
    print(f"| peak resident memory after the bundle (process) | {peak_mb:,.0f} MB |")
    print(
        f"| pmc_oa adapter: {run['articles']} phantom articles (folders, packages, bundles) read | "
        f"{run['cases']} cases in {run['read_s']:.1f} s wall, {run['read_cpu_s']:.1f} s CPU "
        f"({run['cases'] / run['read_cpu_s']:.0f} cases per CPU second) |"
    )
    print(f"| quarantined (the deliberate quirks) | {run['refused']} |")
    print(f"| final diagnosis recovered by the rules | {run['diagnosis_recovered']} of {run['cases']} |")
    print(f"| chief complaint found | {run['complaint_found']} of {run['cases']} |")
    print(f"| complex items built / cases dropped by the leakage guard | {run['items']} / {run['dropped_for_leaks']} |")
    print(
        f"\n(phantom writing took {run['write_s']:.1f} s; load average {os.getloadavg()[0]:.1f}; "
        f"python {sys.version.split()[0]})"
    )


if __name__ == "__main__":
    main()
