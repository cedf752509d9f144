"""journal.jsonl: every reply of a run folder, one JSON line each, keyed by fingerprint (the cache and the resume).

Append-only: a reply is written and flushed as it lands, so a run killed at any moment keeps every reply that
arrived, and the next run asks only for the fingerprints without a reply. A call that failed after its retries is
journaled too (with its failure class), but does not count as answered: a rerun asks again. A last line cut off by
a kill is dropped when the journal is opened again (and the file cut back to its last whole line).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)
JOURNAL = "journal.jsonl"


class Journal:
    """The replies of a run folder by fingerprint; `add` appends one and flushes it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / JOURNAL
        self.entries: dict[str, dict[str, Any]] = {}
        self._file: IO[str] | None = None
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) < len(data):  # a line cut off by a kill: nothing of it was acknowledged
            log.warning("%s: dropped an unfinished last line (%d bytes)", self.path, len(data) - len(whole))
            with self.path.open("r+b") as handle:
                handle.truncate(len(whole))
        for number, line in enumerate(whole.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                fingerprint = entry["fingerprint"]
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: not a journal entry; skipped", self.path, number)
                continue
            self._keep(fingerprint, entry)

    def _keep(self, fingerprint: str, entry: dict[str, Any]) -> None:
        known = self.entries.get(fingerprint)
        if known is None or known.get("response") is None:  # a reply is never replaced by a later failure
            self.entries[fingerprint] = entry

    def answered(self, fingerprint: str) -> bool:
        entry = self.entries.get(fingerprint)
        return entry is not None and entry.get("response") is not None

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        return self.entries.get(fingerprint)

    def add(self, entry: dict[str, Any]) -> None:
        """Append one entry (it must hold `fingerprint`) and flush it to the operating system."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        entry = {**entry, "logged_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self._file.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        self._file.flush()
        self._keep(entry["fingerprint"], entry)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
