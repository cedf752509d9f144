"""JSON Schema files of the public models, generated from pydantic (`rrd schemas`)."""

from __future__ import annotations

import json
from pathlib import Path

from retinal_reason_data.schema import PUBLIC_MODELS


def schema_texts() -> dict[str, str]:
    """File name -> JSON Schema text, exactly as `rrd schemas` writes it."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in PUBLIC_MODELS.items()
    }


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_texts().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
