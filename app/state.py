"""What the app holds for its lifetime: settings, engine, caches, clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.metrics import Metrics
from app.ratelimit import RateLimiter
from app.services.pools import PoolCache
from app.settings import Settings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass
class AppState:
    """Resources owned by the app's lifespan."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    pool_cache: PoolCache
    limiter: RateLimiter
    metrics: Metrics
    clock: Clock
