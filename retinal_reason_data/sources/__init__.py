"""Source adapters: one per collection layout."""

from __future__ import annotations

from retinal_reason_data.sources import aptos2019, case_reports, ffa_ir, oct2017
from retinal_reason_data.sources.base import Adapter, RawCase, RawImage

ADAPTERS: dict[str, Adapter] = {
    module.ADAPTER.name: module.ADAPTER for module in (aptos2019, oct2017, ffa_ir, case_reports)
}


def get_adapter(name: str) -> Adapter:
    """The adapter registered under `name`, or a clear error listing the known ones."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"unknown adapter {name!r}; known adapters: {', '.join(sorted(ADAPTERS))}") from None


__all__ = ["ADAPTERS", "Adapter", "RawCase", "RawImage", "get_adapter"]
