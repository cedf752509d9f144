"""Validation of an adapter's recipe `options`, with errors that name the source and the option."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from retinal_reason_data.recipe import RecipeError

Model = TypeVar("Model", bound=BaseModel)


class SourceOptionsError(RecipeError):
    """A source's `options` that its adapter cannot use."""


def parse_options(model: type[Model], values: dict[str, Any], source: str, adapter: str) -> Model:
    """`values` validated by `model`; a SourceOptionsError naming each wrong option otherwise."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            option = ".".join(str(part) for part in error["loc"]) or "(options)"
            if error["type"] == "extra_forbidden":
                message = f"unknown option (known: {', '.join(sorted(model.model_fields))})"
            elif error["type"] == "missing":
                message = "required option is missing"
            else:
                message = f"{error['msg']} (got {error.get('input')!r})"
            problems.append(f"  option '{option}': {message}")
        raise SourceOptionsError(
            f"source {source!r} (adapter {adapter}): invalid options\n" + "\n".join(problems)
        ) from None
