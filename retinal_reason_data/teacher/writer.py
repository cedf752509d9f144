"""Commits teacher replies as they arrive: small batches, one transaction each, within a short window.

A reply is held in memory for at most `window_s` (or until `max_rows` are waiting) and then committed
on a writer thread with its own catalog cursor, so the event loop never waits for the disk. A process
killed at any moment loses only replies that were not committed yet; their fingerprints are not in the
catalog, so the next run simply asks for them again, and asks for nothing that was committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from retinal_reason_data.catalog import Catalog
from retinal_reason_data.schema import Generation

log = logging.getLogger(__name__)


class ReplyWriter:
    """Buffers generations and failed-call events; `run()` commits them until `close()`."""

    def __init__(
        self,
        catalog: Catalog,
        window_s: float = 0.2,
        max_rows: int = 1000,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.window_s = window_s
        self.max_rows = max_rows
        self.on_error = on_error
        self.committed = 0
        self.error: BaseException | None = None
        self._generations: list[Generation] = []
        self._events: list[dict[str, Any]] = []
        self._cursor = catalog.db.cursor()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="rrd-writer")
        self._lock = asyncio.Lock()
        self._full = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def add(self, generation: Generation | None, events: list[dict[str, Any]] | None = None) -> None:
        """Queue a reply (and the failed calls before it) for the next commit."""
        if generation is not None:
            self._generations.append(generation)
        if events:
            self._events.extend(events)
        if len(self._generations) + len(self._events) >= self.max_rows:
            self._full.set()

    async def _run(self) -> None:
        while not self._closing:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.window_s)
            self._full.clear()
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - reported to the engine, raised by close()
                self.error = exc
                if self.on_error:
                    self.on_error(exc)
                return

    async def flush(self) -> None:
        """Commit everything queued so far (returns once it is on disk)."""
        async with self._lock:
            generations, events = self._generations, self._events
            if not generations and not events:
                return
            self._generations, self._events = [], []
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._thread, self._commit, generations, events)
            self.committed += len(generations)
            log.info("teacher: committed %d replies (%d in this run)", len(generations), self.committed)

    def _commit(self, generations: list[Generation], events: list[dict[str, Any]]) -> None:
        self.catalog.add_generations(generations, events, db=self._cursor)

    async def close(self) -> None:
        """Commit what is left and stop; raises the commit error, if one happened."""
        self._closing = True
        self._full.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.error is None:
            await self.flush()
        self._thread.shutdown(wait=True)
        self._cursor.close()
        if self.error is not None:
            raise self.error
