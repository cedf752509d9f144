"""The release check: no group, patient or duplicate cluster may sit in two splits.

It re-derives each from the catalog's tables (assignments, items, cases, image_clusters) rather than
trusting the code that made the splits, and the export refuses to write a release that fails it.
"""

from __future__ import annotations

from collections import defaultdict

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.catalog.curation import groups_in_several_splits, iter_case_splits, near_clusters

EXAMPLES = 5


class LeakageError(RuntimeError):
    """A release in which something crosses splits; the message names what and where."""


def crossings(catalog: Catalog) -> list[str]:
    """Every group, patient and near-duplicate cluster found in more than one split, described in words."""
    problems: list[str] = []
    rows = groups_in_several_splits(catalog)
    problems += [f"group {group} is in splits {', '.join(splits)}" for group, splits in rows]
    case_splits: dict[str, set[str]] = defaultdict(set)
    for case_id, split in iter_case_splits(catalog):
        case_splits[case_id].add(split)
    cluster_of = near_clusters(catalog)
    patient_splits: dict[str, set[str]] = defaultdict(set)  # pseudonyms are keyed by patient namespace
    cluster_splits: dict[str, set[str]] = defaultdict(set)
    for case in catalog.iter_cases(ordered=False):  # streamed: a batch of cases in memory, not every case
        splits = case_splits.get(case.case_id)
        if not splits:
            continue
        patient_splits[case.patient_id] |= splits
        for image in case.images:
            cluster_splits[cluster_of.get(image.sha256, image.sha256)] |= splits
    problems += [
        f"patient {patient} is in splits {', '.join(sorted(splits))}"
        for patient, splits in sorted(patient_splits.items())
        if len(splits) > 1
    ]
    problems += [
        f"duplicate cluster {cluster} is in splits {', '.join(sorted(splits))}"
        for cluster, splits in sorted(cluster_splits.items())
        if len(splits) > 1
    ]
    return problems


def check_release(catalog: Catalog) -> None:
    """Raise LeakageError when any group, patient or duplicate cluster crosses splits."""
    problems = crossings(catalog)
    if problems:
        shown = "; ".join(problems[:EXAMPLES])
        more = f" (and {len(problems) - EXAMPLES} more)" if len(problems) > EXAMPLES else ""
        raise LeakageError(f"{catalog.path}: refusing to export, {len(problems)} leaks across splits: {shown}{more}")
