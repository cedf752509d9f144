"""The synthesis progress bar: requests/s, tokens/s, cost so far and ETA (a status line when not a terminal)."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

STATUS_EVERY_S = 30.0


class Progress:
    """Counts replies as they land; `tick()` (called a few times a second) refreshes the figures."""

    def __init__(self, total: int, desc: str, label: str = "teacher", failed_word: str = "unverified") -> None:
        self.bar = tqdm(total=total, desc=desc, unit="req", leave=False, disable=None, dynamic_ncols=True)
        self.total = total
        self.label, self.failed_word = label, failed_word  # the status line: '<label>: ... N <failed_word>'
        self.started = time.perf_counter()
        self.replies = 0
        self.tokens = 0
        self.cost = 0.0
        self.failed = 0
        self._last_status = self.started

    def add_total(self, more: int) -> None:
        self.total += more
        self.bar.total = self.total
        self.bar.refresh()

    def update(self, tokens: int, cost: float, failed: bool) -> None:
        self.replies += 1
        self.tokens += tokens
        self.cost += cost
        self.failed += failed
        self.bar.update()

    def line(self) -> str:
        """'1,234/40,000 requests, 41.2 req/s, 23,100 tok/s, cost 1.23, ETA 16 min'."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = self.replies / elapsed
        left = max(0, self.total - self.replies)
        eta = _duration(left / rate) if rate > 0 and self.total else "?"
        return (
            f"{self.replies:,}/{self.total:,} requests, {rate:.1f} req/s, {self.tokens / elapsed:,.0f} tok/s, "
            f"cost {self.cost:.2f}, {self.failed:,} {self.failed_word}, ETA {eta}"
        )

    def tick(self) -> None:
        now = time.perf_counter()
        elapsed = max(now - self.started, 1e-9)
        if not self.bar.disable:
            self.bar.set_postfix_str(f"{self.tokens / elapsed:,.0f} tok/s, cost {self.cost:.2f}", refresh=False)
        elif now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            print(f"{self.label}: {self.line()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
