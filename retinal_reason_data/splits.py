"""Leakage-safe splits: every patient and every duplicate cluster sits on one side."""

from __future__ import annotations

from collections.abc import Iterable

from retinal_reason_data.dedup import UnionFind
from retinal_reason_data.recipe import SplitsSpec
from retinal_reason_data.text import stable_hash

SPLIT_ORDER = ("train", "rl", "validation", "test")


def case_groups(patients: Iterable[tuple[str, str, str]], linked_cases: Iterable[list[str]]) -> dict[str, str]:
    """Case id -> group id, where a group is the union of same-patient cases and duplicate clusters.

    `patients` yields (case id, source, pseudonymous patient id).
    """
    groups = UnionFind()
    for case_id, source, patient_id in patients:
        groups.union(("case", case_id), ("patient", source, patient_id))
    for cases in linked_cases:
        for other in cases[1:]:
            groups.union(("case", cases[0]), ("case", other))
    return {
        key[1]: stable_hash(groups.find(key))
        for key in list(groups.parent)
        if key[0] == "case"  # type: ignore[index]
    }


def assign_split(group_id: str, spec: SplitsSpec) -> str:
    """A group's split, drawn from a seeded hash of its id against the recipe's ratios."""
    position = int(stable_hash(spec.seed, group_id), 16) / 16**16
    cumulative = 0.0
    for name in SPLIT_ORDER:
        cumulative += getattr(spec, name)
        if position < cumulative:
            return name
    return SPLIT_ORDER[-1]
