"""Phantom writers keyed by adapter name: the one table that says which layout writer imitates which source.

Production code never imports this package at module level; `ingest.stage.ensure_phantom` (the one place
that writes a demo or test layout) looks a writer up here when a recipe asks for a phantom.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from retinal_reason_data.phantoms import layouts, layouts_cfp, layouts_other, layouts_pmc

PhantomWriter = Callable[[Path, int, int], None]
"""Writes `cases` phantom cases of a source's on-disk layout at `root`, deterministic for `seed`."""

WRITERS: dict[str, PhantomWriter] = {
    "aptos2019": layouts.write_aptos2019,
    "case_reports": layouts.write_case_reports,
    "chaksu": layouts_other.write_chaksu,
    "ddr": layouts_cfp.write_ddr,
    "deepdrid": layouts_cfp.write_deepdrid,
    "eyepacs": layouts_cfp.write_eyepacs,
    "eyeq": layouts_cfp.write_eyeq,
    "ffa_ir": layouts.write_ffa_ir,
    "g1020": layouts_other.write_g1020,
    "idrid": layouts_cfp.write_idrid,
    "image_folder": layouts_other.write_image_folder,
    "jsiec": layouts_cfp.write_jsiec,
    "manifest": layouts_other.write_manifest,
    "messidor2": layouts_cfp.write_messidor2,
    "mm_retinal_reason": layouts_other.write_mm_retinal_reason,
    "mm_retinal_v1": layouts_other.write_mm_retinal_v1,
    "multicare": layouts_pmc.write_multicare,
    "oct2017": layouts.write_oct2017,
    "octdl": layouts_other.write_octdl,
    "octid": layouts_other.write_octid,
    "odir5k": layouts_cfp.write_odir5k,
    "origa": layouts_other.write_origa,
    "papila": layouts_other.write_papila,
    "pmc_oa": layouts_pmc.write_pmc_oa,
    "pmc_patients": layouts_pmc.write_pmc_patients,
    "refuge": layouts_other.write_refuge,
    "rfmid": layouts_cfp.write_rfmid,
}


class NoPhantomWriter(ValueError):
    """No phantom writer imitates the named adapter; the message lists the adapters that have one."""


def writer_for(adapter_name: str) -> PhantomWriter:
    """The phantom writer for the adapter named `adapter_name` (NoPhantomWriter naming the known ones)."""
    try:
        return WRITERS[adapter_name]
    except KeyError:
        raise NoPhantomWriter(
            f"adapter {adapter_name!r} has no phantom generator; adapters with one: {', '.join(sorted(WRITERS))}"
        ) from None
