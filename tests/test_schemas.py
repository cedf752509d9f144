"""`schemas/` is generated from the pydantic models; this fails when they drift apart."""

from __future__ import annotations

from pathlib import Path

from retinal_reason_data.schema_files import schema_texts

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def test_schema_files_match_the_models() -> None:
    expected = schema_texts()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMAS.glob("*.schema.json")}
    assert sorted(on_disk) == sorted(expected), "run `make schemas` to regenerate schemas/"
    for name, text in expected.items():
        assert on_disk[name] == text, f"schemas/{name} is stale: run `make schemas`"
