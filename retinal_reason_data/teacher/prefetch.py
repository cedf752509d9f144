"""Requests prepared ahead on worker threads and handed to the event loop through a bounded queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import suppress
from typing import Any

DONE = object()  # what a producer puts last; an exception it puts is raised in the consumer


async def drain(queue: asyncio.Queue[Any], producer: Coroutine[Any, Any, None]) -> AsyncIterator[Any]:
    """Run `producer` (which fills `queue`, then puts DONE or the exception that stopped it) and yield what it
    puts; the producer is cancelled when the consumer stops early."""
    task = asyncio.get_running_loop().create_task(producer)
    try:
        while True:
            item = await queue.get()
            if item is DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
