"""Client-side pacing: at most N requests in any sliding window of `period` seconds.

Cloudonix allows 10 requests per domain per 10 seconds and answers 429 beyond that, so every
request of a domain goes through one shared Pacer. A caller over the limit waits for a slot
instead of failing. Waiters are served in arrival order: one lock (asyncio.Lock hands itself
to its waiters first-in, first-out) is held by the caller at the head of the queue while it
sleeps until its slot, so nobody can overtake it and the slot decision is made by one task at
a time. A 429 from the platform means its window and ours disagree (another process shares
the key, or clocks drift); `hold()` then keeps every caller back until the platform's
Retry-After has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    """A sliding-window request pacer shared by all requests to one rate-limited account."""

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        margin: float = 0.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if period <= 0 or margin < 0:
            raise ValueError("period must be positive and margin non-negative")
        self.limit = limit
        self.period = period
        # Slots are granted when a request leaves, but the platform counts arrivals; the margin
        # absorbs the difference in network delay between two requests one window apart.
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._granted: deque[float] = deque(maxlen=limit)
        self._hold_until = float("-inf")
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds until the next slot would be free, ignoring callers already queued."""
        now = self._clock()
        wait = self._hold_until - now
        if len(self._granted) >= self.limit:
            wait = max(wait, self._granted[0] + self.period + self.margin - now)
        return max(wait, 0.0)

    async def acquire(self) -> None:
        """Wait for a slot and take it."""
        async with self._lock:
            # A loop, not one sleep: a hold() may arrive while we sleep.
            while (wait := self.delay()) > 0:
                await self._sleep(wait)
            self._granted.append(self._clock())

    def hold(self, seconds: float | None = None) -> None:
        """Keep every caller back for `seconds` (default: one slot's share of the period)."""
        if seconds is None:
            seconds = self.period / self.limit
        self._hold_until = max(self._hold_until, self._clock() + max(seconds, 0.0))
