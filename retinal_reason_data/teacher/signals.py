"""Ctrl-C and SIGTERM during a run of the request engine: the first stops gracefully, a second at once."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any


def install_stop_signals(loop: asyncio.AbstractEventLoop, engine: Any) -> list[int]:
    """Ctrl-C (and SIGTERM) stop gracefully: nothing new is sent, replies in flight land and are kept; a second
    one stops at once. Returns the signals installed (remove them with `loop.remove_signal_handler`)."""

    def on_signal() -> None:
        if engine.stopping:
            print("\nstopping now; requests in flight are dropped (asked again on the next run)", file=sys.stderr)
        else:
            print(
                "\nstopping: waiting for the requests in flight (Ctrl-C again to stop at once); "
                "every reply received is kept",
                file=sys.stderr,
            )
        engine.stop()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or not a POSIX loop
            pass
    return installed
