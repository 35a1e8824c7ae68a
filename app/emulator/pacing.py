"""Cloudonix's REST pacing: at most N requests per domain in any sliding window of P seconds."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """Counts accepted requests per key; refuses one that would exceed the window."""

    def __init__(
        self, limit: int, period: float, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.period = period
        self._now = now
        self._seen: dict[str, deque[float]] = {}

    def acquire(self, key: str) -> int | None:
        """Admit a request: None when admitted, else the whole seconds to wait (>= 1)."""
        now = self._now()
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - self.period:
            seen.popleft()
        if len(seen) >= self.limit:
            # Refused requests are not counted: a client that waits as told gets through.
            return max(1, math.ceil(seen[0] + self.period - now))
        seen.append(now)
        return None
