"""Source adapters: one module per collection layout, each exposing `ADAPTER`; found automatically."""

from __future__ import annotations

import importlib
import pkgutil

from retinal_reason_data.sources.base import Adapter, RawCase, RawImage


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


ADAPTERS: dict[str, Adapter] = _discover()


def get_adapter(name: str) -> Adapter:
    """The adapter registered under `name`, or a clear error listing the known ones."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"unknown adapter {name!r}; known adapters: {', '.join(sorted(ADAPTERS))}") from None


__all__ = ["ADAPTERS", "Adapter", "RawCase", "RawImage", "get_adapter"]
