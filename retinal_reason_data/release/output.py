"""What every release format writer shares: its report, a fresh folder, a streamed JSON array."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pydantic import BaseModel, Field


class FormatReport(BaseModel):
    """What one format wrote: files (manifest entries), rows per file or split, rows left out and why."""

    files: list[dict[str, Any]] = Field(default_factory=list)
    rows: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def fresh_folder(path: Path) -> Path:
    """An empty folder at `path` (what an earlier export left there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


class JsonArrayWriter:
    """Writes a JSON array one record at a time (the file is valid JSON once closed); counts records."""

    def __init__(self, path: Path, indent: int | None = None) -> None:
        self.path = path
        self.count = 0
        self._indent = indent
        self._handle: IO[str] = path.open("w", encoding="utf-8", newline="\n")
        self._handle.write("[")

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(",\n" if self.count else "\n")
        self._handle.write(json.dumps(record, ensure_ascii=False, indent=self._indent))
        self.count += 1

    def close(self) -> None:
        self._handle.write("\n]\n" if self.count else "]\n")
        self._handle.close()

    def __enter__(self) -> JsonArrayWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
