"""Fixed-window rate limits per client, in memory or shared through Redis."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

_log = logging.getLogger("calltrack.ratelimit")


@dataclass(frozen=True)
class Decision:
    """Whether a request may go on; if not, how many seconds until it may."""

    allowed: bool
    retry_after: int = 0


class RateLimiter(Protocol):
    """Counts requests per key within a window."""

    async def hit(self, key: str) -> Decision:
        """Count one request of `key` and say whether it is within the limit."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Unlimited:
    """Rate limiting switched off."""

    async def hit(self, key: str) -> Decision:
        """Always allowed."""
        return Decision(True)

    async def close(self) -> None:
        """Nothing to release."""


class MemoryRateLimiter:
    """Per-process counters: right for one server; several servers need Redis."""

    _MAX_KEYS = 200_000

    def __init__(self, limit: int, period: int) -> None:
        self._limit = limit
        self._period = period
        self._counts: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str) -> Decision:
        """Count one request of `key`."""
        now = time.time()
        window = int(now // self._period)
        start, count = self._counts.get(key, (window, 0))
        if start != window:
            start, count = window, 0
        count += 1
        if len(self._counts) >= self._MAX_KEYS:
            self._prune(window)
        self._counts[key] = (start, count)
        if count <= self._limit:
            return Decision(True)
        return Decision(False, max(1, math.ceil((window + 1) * self._period - now)))

    def _prune(self, window: int) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[0] == window}

    async def close(self) -> None:
        """Nothing to release."""


class RedisRateLimiter:
    """Counters shared by every server through Redis (INCR with expiry)."""

    def __init__(self, url: str, limit: int, period: int) -> None:
        self._redis: Redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._limit = limit
        self._period = period

    async def hit(self, key: str) -> Decision:
        """Count one request of `key`; if Redis is unreachable, let it through."""
        now = time.time()
        window = int(now // self._period)
        name = f"calltrack:rl:{window}:{key}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, self._period + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError):
            # Availability of the number beats strict limiting; the outage is logged.
            _log.warning("rate limiter store unreachable; request allowed")
            return Decision(True)
        if int(count) <= self._limit:
            return Decision(True)
        return Decision(False, max(1, math.ceil((window + 1) * self._period - now)))

    async def close(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()


def build(rate: tuple[int, int] | None, redis_url: str | None) -> RateLimiter:
    """The limiter the settings ask for."""
    if rate is None:
        return Unlimited()
    limit, period = rate
    if redis_url:
        return RedisRateLimiter(redis_url, limit, period)
    return MemoryRateLimiter(limit, period)
