"""The `datasets` Features of the exported configs, derived from the row models in schema.py (`SftRow`, `RlRow`)
so that a column is declared once: add a field to the model and the export writes it."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from datasets import Features, Image, List, Value
from pydantic import BaseModel

# the images are not a field of the row models (they hold no bytes); they follow the id, as `datasets` Image cells
IMAGES_AFTER = "id"
_VALUES = {str: "string", bool: "bool", int: "int64", float: "float32"}  # float32: pass@k needs no more


def feature_of(annotation: Any) -> Any:
    """The `datasets` feature for one field's type: str, bool, int, float (stored as float32), a list of them,
    or one of them or None (every feature is nullable)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        present = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(present) != 1:
            raise TypeError(f"no feature for a union of {present}")
        return feature_of(present[0])
    if origin is list:
        (element,) = get_args(annotation)
        return List(feature_of(element))
    if annotation in _VALUES:
        return Value(_VALUES[annotation])
    raise TypeError(f"no feature for {annotation!r}")


def row_features(model: type[BaseModel]) -> Features:
    """The Features of a config whose rows `model` describes, in the model's field order with the images after
    the id."""
    columns: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        columns[name] = feature_of(field.annotation)
        if name == IMAGES_AFTER:
            columns["images"] = List(Image())
    return Features(columns)
