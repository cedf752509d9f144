"""Source adapters: one module per collection layout, each exposing `ADAPTER`; found automatically."""

from __future__ import annotations

import difflib
import functools
import importlib
import pkgutil

from retinal_reason_data.ingest.sources.base import Adapter, RawCase, RawImage
from retinal_reason_data.recipe import Recipe, RecipeError


def _discover() -> dict[str, Adapter]:
    found: dict[str, Adapter] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        adapter = getattr(module, "ADAPTER", None)
        if isinstance(adapter, Adapter):
            if adapter.name in found:
                raise RuntimeError(f"two adapters are named {adapter.name!r}")
            found[adapter.name] = adapter
    return found


@functools.cache
def adapters() -> dict[str, Adapter]:
    """Every adapter by name, discovered on first use: importing one module of this package (`base`, say, from the
    case-report readers that the adapters themselves import) does not import every adapter."""
    return _discover()


def __getattr__(name: str) -> object:  # `ADAPTERS`, discovered when first asked for
    if name == "ADAPTERS":
        return adapters()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UnknownAdapter(RecipeError, KeyError):
    """A recipe names an adapter that does not exist; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def get_adapter(name: str) -> Adapter:
    """The adapter registered under `name`, or a clear error listing the known ones."""
    known = adapters()
    try:
        return known[name]
    except KeyError:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownAdapter(
            f"unknown adapter {name!r}{hint}; known adapters: {', '.join(sorted(known))} (`rrd sources` lists "
            "their layouts)"
        ) from None


def check_adapters(recipe: Recipe) -> None:
    """Every source of the recipe names a known adapter (UnknownAdapter naming the recipe and the source)."""
    for index, spec in enumerate(recipe.sources):
        try:
            get_adapter(spec.adapter)
        except UnknownAdapter as exc:
            raise UnknownAdapter(f"{recipe.path}: key 'sources.{index}.adapter': {exc}") from None


__all__ = ["ADAPTERS", "Adapter", "RawCase", "RawImage", "UnknownAdapter", "check_adapters", "get_adapter"]
