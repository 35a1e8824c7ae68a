"""What the app holds for its lifetime: settings, engine, caches, clients."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import Clock, utc_now
from app.metrics import Metrics
from app.providers.voice.base import VoiceProvider
from app.ratelimit import RateLimiter
from app.services.callback_worker import CallbackWorker
from app.services.desk import CallDesk
from app.services.dispatcher import Dispatcher
from app.services.pools import PoolCache
from app.services.web_to_call import WebCallKeeper
from app.settings import Settings

__all__ = ["AppState", "Clock", "utc_now"]


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
    http: httpx.AsyncClient
    voice: VoiceProvider
    desk: CallDesk
    webhook_token: str | None
    callback_limiter: RateLimiter
    callback_worker: CallbackWorker | None = None
    dispatcher: Dispatcher | None = None
    web_call_keeper: WebCallKeeper | None = None
