"""Question builders: basic tasks from labels, complex tasks from case reports."""

from __future__ import annotations

from collections.abc import Iterator

from retinal_reason_data.ontology import Ontology
from retinal_reason_data.recipe import TasksSpec
from retinal_reason_data.schema import Case, Item
from retinal_reason_data.tasks.basic import basic_items
from retinal_reason_data.tasks.complex import LeakError, complex_items


def items_for_case(case: Case, ontology: Ontology, spec: TasksSpec, seed: int) -> Iterator[Item | LeakError]:
    """Every question the recipe asks of one case; a leaking vignette comes back as its LeakError."""
    if spec.basic.enabled:
        yield from basic_items(case, ontology, spec.basic, seed)
    if spec.complex.enabled:
        try:
            yield from complex_items(case, ontology, spec.complex, seed)
        except LeakError as exc:
            yield exc


__all__ = ["LeakError", "items_for_case"]
