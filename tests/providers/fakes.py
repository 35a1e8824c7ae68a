"""Test doubles for the providers: a fake monotonic clock whose sleep moves time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class FakeTime:
    """A monotonic clock and an asyncio-compatible sleep that advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, move time forward and let other tasks run."""
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def max_in_window(times: Sequence[float], period: float) -> int:
    """The largest number of timestamps in any half-open window [t, t + period)."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        count = sum(1 for t in ordered[i:] if t < start + period)
        best = max(best, count)
    return best
