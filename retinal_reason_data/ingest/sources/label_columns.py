"""Which raw column each raw label of an adapter's map is a value of, and columns whose values land on two kinds.

A raw label `dme:1` is the value 1 of the column `dme` (IDRiD, Messidor-2 write their graded columns so); a bare
number such as `3` is a value of the adapter's one label column (APTOS, EyePACS, G1020...). Such values mean
something only within their column, so all of them must land on one kind: grades of one ordered scale, or
findings that are not grades. A named label (a JSIEC class folder, an ODIR keyword, an RFMiD flag column) names
a finding in its own right and is a column of its own.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping

from retinal_reason_data.ontology import Ontology

_PREFIXED = re.compile(r"^(?P<column>[A-Za-z_][\w ]*):(?P<value>.+)$")
_NUMBER = re.compile(r"^\d+(\.\d+)?$")
VALUE_COLUMN = "<label>"  # the adapter's one label column, whose cells are numbers


def raw_column(label: str) -> str | None:
    """The column `label` is a value of ('dme' for 'dme:1', VALUE_COLUMN for '3'); None for a named label."""
    match = _PREFIXED.match(label.strip())
    if match:
        return match["column"]
    return VALUE_COLUMN if _NUMBER.match(label.strip()) else None


def mixed_columns(labels: Mapping[str, str], ontology: Ontology) -> list[str]:
    """One message per raw column whose values map onto two scales, or onto a scale and a finding that is not
    a grade: 'column 'dme': dme:0 -> dme.none (scale dme_risk), dme:1 -> oct.dme (not graded)'."""
    by_column: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for label, code in sorted(labels.items()):
        column = raw_column(label)
        if column is not None:
            by_column[column].append((label, code))
    problems = []
    for column, pairs in sorted(by_column.items()):
        kinds = {_kind(code, ontology) for _, code in pairs}
        if len(kinds) > 1:
            listed = ", ".join(f"{label} -> {code} ({_kind(code, ontology)})" for label, code in pairs)
            problems.append(f"column {column!r}: {listed}")
    return problems


def _kind(code: str, ontology: Ontology) -> str:
    entry = ontology.entries.get(code)
    if entry is None:
        return "not in the ontology"
    return f"scale {entry.scale}" if entry.scale else "not graded"
