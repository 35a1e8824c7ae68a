"""The ASGI application: create_app() wires settings, database, middleware and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware

from app import __version__, ratelimit
from app.api import health, public, v1
from app.db.session import make_engine, make_sessionmaker
from app.errors import install_error_handlers
from app.metrics import Metrics
from app.middleware import AccessMiddleware
from app.services.pools import PoolCache
from app.settings import Settings, get_settings
from app.state import AppState, Clock, utc_now


def _operation_id(route: APIRoute) -> str:
    # Stable operationIds: the endpoint function's name, not a generated path slug.
    return route.name


def create_app(settings: Settings | None = None, *, clock: Clock = utc_now) -> FastAPI:
    """Build the service; resources are opened by the lifespan, not at import."""
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        limiter = ratelimit.build(settings.rate_limit, settings.redis_url)
        app.state.ct = AppState(
            settings=settings,
            engine=engine,
            sessionmaker=make_sessionmaker(engine),
            pool_cache=PoolCache(settings.pool_cache_seconds),
            limiter=limiter,
            metrics=metrics,
            clock=clock,
        )
        try:
            yield
        finally:
            await limiter.close()
            await engine.dispose()

    app = FastAPI(
        title="calltrack",
        version=__version__,
        summary="Call tracking: ephemeral tracking numbers, attribution and callbacks.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    install_error_handlers(app)
    app.include_router(public.router)
    app.include_router(v1.router)
    app.include_router(health.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
            max_age=600,
        )
    app.add_middleware(AccessMiddleware, metrics=metrics)
    return app
