"""Teacher backends behind one contract: what a kind of teacher is and can do, found by its recipe name.

Stages ask a backend's traits (`is_model`: it reads case reports, judges near misses, has endpoints, limits and a
cost) and call its `identity` and `run`; none asks which kind it has. A new backend is one entry here (its runner
may live in a module of its own, named by a dotted path and imported when used) and a conformance test row.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the recipe imports this module for the names: keep its imports light
    from retinal_reason_data.recipe import Recipe, TeacherSpec

Identity = Callable[["TeacherSpec", int], tuple[str, dict[str, object]]]


def _offline_identity(spec: TeacherSpec, seed: int) -> tuple[str, dict[str, object]]:
    from retinal_reason_data.teacher.offline import MODEL_NAME

    return MODEL_NAME, {"error_rate": spec.offline_error_rate, "seed": seed}


def _model_identity(spec: TeacherSpec, seed: int) -> tuple[str, dict[str, object]]:
    from retinal_reason_data.teacher.requests import generation_params

    return spec.model, {**generation_params(spec), "image_max_side": spec.image_max_side}


@dataclass(frozen=True)
class Backend:
    """One kind of teacher: its recipe name, whether it is a model, how its requests are fingerprinted, the
    function that answers every pending attempt (`module:function`, called with recipe, catalog, ontology, report,
    progress). A backend that is no model gets the card's notice that its traces are templated."""

    kind: str
    is_model: bool
    identity: Identity
    runner: str

    def run(self, *args: Any) -> None:
        module, function = self.runner.split(":")
        getattr(importlib.import_module(module), function)(*args)


BACKENDS: dict[str, Backend] = {
    backend.kind: backend
    for backend in (
        Backend("offline", False, _offline_identity, "retinal_reason_data.teacher.synthesize:synthesize_offline"),
        Backend("openai", True, _model_identity, "retinal_reason_data.teacher.synthesize:synthesize_remote"),
    )
}
BACKEND_NAMES = tuple(BACKENDS)


def backend_of(recipe: Recipe) -> Backend:
    """The backend a recipe's teacher names (the recipe has validated the name)."""
    return BACKENDS[recipe.teacher.kind]
