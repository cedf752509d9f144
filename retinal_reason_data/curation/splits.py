"""Leakage-safe splits: every patient and every duplicate cluster sits on one side.

A group is the union of same-patient cases and duplicate clusters (a case report and a collection image
that are one photograph make one group). Groups are dealt to splits within strata (task, modality and
label by default), so that each split keeps the mix of the whole: in a stratum, groups are put in a seeded
order and laid end to end on a circle of circumference 1 (each as long as its share of the stratum's
items) from a seeded starting point; a group goes to the split whose ratio interval holds its midpoint.
Every split then gets its ratio of each stratum to within one group, and the same seed and catalog give
the same splits; a split with a positive ratio left empty (a small collection) takes the smallest group of
the largest split. Groups holding a case of a held-out source go to `test_ood` whole.

Adding or removing groups of a stratum can move a few groups of that stratum across a boundary; pin a
release's splits by keeping its catalog, or compare with `rrd report`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from retinal_reason_data.curation.dedup import UnionFind
from retinal_reason_data.recipe import SplitsSpec
from retinal_reason_data.text import stable_hash

SPLIT_ORDER = ("train", "rl", "validation", "test")
OOD_SPLIT = "test_ood"
TRACE_SPLITS = ("train", "validation", "test", OOD_SPLIT)  # splits whose items need a verified trace (sft)


def case_groups(patients: Iterable[tuple[str, str, str]], linked_cases: Iterable[list[str]]) -> dict[str, str]:
    """Case id -> group id, where a group is the union of same-patient cases and duplicate clusters.

    `patients` yields (case id, source, pseudonymous patient id).
    """
    groups = UnionFind()
    for case_id, _source, patient_id in patients:
        # pseudonyms are keyed by patient namespace, so equal pseudonyms are one person across sources
        groups.union(("case", case_id), ("patient", patient_id))
    for cases in linked_cases:
        for other in cases[1:]:
            groups.union(("case", cases[0]), ("case", other))
    return {
        key[1]: stable_hash(groups.find(key))
        for key in list(groups.parent)
        if key[0] == "case"  # type: ignore[index]
    }


def stratum_key(spec: SplitsSpec, task: str, modality: str, label: str) -> str:
    """The stratum of one item under the recipe's `stratify` list."""
    values = {"task": task, "modality": modality, "label": label}
    return "|".join(f"{name}={values[name]}" for name in spec.stratify) or "all"


def assign_splits(
    group_items: Mapping[str, Counter[str]], holdout_groups: Iterable[str], spec: SplitsSpec
) -> dict[str, str]:
    """Group id -> split. `group_items` counts each group's items per stratum; a group belongs to the
    stratum most of its items are in (ties: the first in sorted order)."""
    held_out = set(holdout_groups)
    strata: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for group, counts in group_items.items():
        if group in held_out:
            continue
        stratum = min(counts, key=lambda key: (-counts[key], key))
        strata[stratum].append((group, sum(counts.values())))
    splits = {group: OOD_SPLIT for group in held_out if group in group_items}
    bounds = _bounds(spec)
    for stratum, members in sorted(strata.items()):
        members.sort(key=lambda member: (stable_hash(spec.seed, member[0]), member[0]))
        total = sum(size for _, size in members)
        position = int(stable_hash(spec.seed, "stratum", stratum), 16) / 16**16
        for group, size in members:
            midpoint = (position + size / (2 * total)) % 1.0
            splits[group] = next((name for name, upper in bounds if midpoint < upper), SPLIT_ORDER[-1])
            position += size / total
    _fill_empty_splits(splits, group_items, held_out, spec)
    return splits


def _fill_empty_splits(
    splits: dict[str, str], group_items: Mapping[str, Counter[str]], held_out: set[str], spec: SplitsSpec
) -> None:
    """A split with a positive ratio that got no group takes the smallest group of the split with the most
    groups (small collections would otherwise export an empty test or validation split)."""
    for name in SPLIT_ORDER:
        members: dict[str, list[str]] = defaultdict(list)
        for group, split in splits.items():
            if group not in held_out:
                members[split].append(group)
        if getattr(spec, name) <= 0 or members[name]:
            continue
        donor = max(SPLIT_ORDER, key=lambda split: (len(members[split]), split))
        if len(members[donor]) < 2:
            return
        size = {group: sum(group_items[group].values()) for group in members[donor]}
        moved = min(members[donor], key=lambda group: (size[group], stable_hash(spec.seed, group), group))
        splits[moved] = name


def _bounds(spec: SplitsSpec) -> list[tuple[str, float]]:
    cumulative, bounds = 0.0, []
    for name in SPLIT_ORDER:
        cumulative += getattr(spec, name)
        bounds.append((name, cumulative))
    return bounds


def assign_split(group_id: str, spec: SplitsSpec) -> str:
    """A single group's split from a seeded hash of its id alone (no strata)."""
    position = int(stable_hash(spec.seed, group_id), 16) / 16**16
    return next((name for name, upper in _bounds(spec) if position < upper), SPLIT_ORDER[-1])
