"""The ASGI application: create_app() wires settings, database, middleware and routers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app import __version__, ratelimit
from app.api import callback, dashboard, demo, health, public, snippet, v1, web_to_call
from app.api.webhooks import callbacks as callback_webhooks
from app.api.webhooks import cloudonix as cloudonix_webhooks
from app.db.session import make_engine, make_sessionmaker
from app.emulator import EmulatorConfig, create_emulator
from app.emulator.webcalls import sip_gateway
from app.errors import install_error_handlers
from app.metrics import Metrics
from app.middleware import AccessMiddleware, ApiCors, EmulatorGuard
from app.providers.voice.base import VoiceProvider
from app.providers.voice.cloudonix import build_cloudonix
from app.services.callback_worker import build_worker
from app.services.desk import CallDesk
from app.services.dispatcher import Dispatcher
from app.services.pools import PoolCache
from app.services.web_to_call import WebCallKeeper
from app.settings import Settings, get_settings
from app.state import AppState, Clock, utc_now


def _operation_id(route: APIRoute) -> str:
    # Stable operationIds: the endpoint function's name, not a generated path slug.
    return route.name


def _voice(settings: Settings, http: httpx.AsyncClient, emulator_key: str) -> VoiceProvider:
    if settings.voice_provider == "cloudonix":
        return build_cloudonix(settings, http)
    # The adapter is the production one; only its address and key point at the emulator.
    return build_cloudonix(
        settings, http, base_url=settings.service_url + "/emulator", api_key=emulator_key
    )


def create_app(settings: Settings | None = None, *, clock: Clock = utc_now) -> FastAPI:
    """Build the service; resources are opened by the lifespan, not at import."""
    settings = settings or get_settings()
    metrics = Metrics()
    webhook_token = settings.webhook_token.get_secret_value() if settings.webhook_token else None
    emulator = None
    emulator_key = (
        settings.emulator_api_key.get_secret_value()
        if settings.emulator_api_key
        else "XI" + secrets.token_hex(16)  # Cloudonix keys: 34 characters, "XI" first
    )
    if settings.voice_provider == "emulator":
        # The emulator and the webhooks live in this process: a random token both know is
        # as good as a configured one, and no default secret exists anywhere.
        webhook_token = webhook_token or secrets.token_urlsafe(24)
        emulator = create_emulator(
            EmulatorConfig(
                api_key=emulator_key,
                domain=settings.voice_domain,
                webhook_token=webhook_token,
                rate_requests=settings.cloudonix_rate_requests,
                rate_period=settings.cloudonix_rate_period,
                speed=settings.emulator_speed,
                clock=clock,
                # A fixed address: derived from a request's Host header, it would let anyone
                # point the emulator, and the webhook token it carries, at another host.
                service_url=settings.service_url,
            ),
            prefix="",
            sip=sip_gateway,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        limiter = ratelimit.build(settings.rate_limit, settings.redis_url)
        callback_limiter = ratelimit.build(settings.callback_rate, settings.redis_url)
        sessionmaker = make_sessionmaker(engine)
        http = httpx.AsyncClient(follow_redirects=False)
        voice = _voice(settings, http, emulator_key)
        desk = CallDesk(
            sessionmaker=sessionmaker,
            settings=settings,
            metrics=metrics,
            clock=clock,
            provider="cloudonix",
        )
        app.state.ct = state = AppState(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            pool_cache=PoolCache(settings.pool_cache_seconds),
            limiter=limiter,
            metrics=metrics,
            clock=clock,
            http=http,
            voice=voice,
            desk=desk,
            webhook_token=webhook_token,
            callback_limiter=callback_limiter,
        )
        stop = asyncio.Event()
        upkeep = asyncio.create_task(desk.run(stop), name="calltrack-voice-desk")
        worker = None
        if settings.callback_worker:
            state.callback_worker = build_worker(settings, sessionmaker, voice, clock)
            if state.callback_worker is not None:
                worker = asyncio.create_task(
                    state.callback_worker.run(stop), name="calltrack-callback-worker"
                )
        state.web_call_keeper = keeper = WebCallKeeper(
            sessionmaker=sessionmaker,
            provider=voice,
            clock=clock,
            every=settings.web_to_call_keeper_seconds,
        )
        keeping = asyncio.create_task(keeper.run(stop), name="calltrack-web-call-keeper")
        dispatching = None
        if settings.outbox_worker:
            state.dispatcher = Dispatcher(sessionmaker=sessionmaker, settings=settings, clock=clock)
            dispatching = asyncio.create_task(
                state.dispatcher.run(stop), name="calltrack-webhook-dispatcher"
            )
        try:
            yield
        finally:
            stop.set()
            if dispatching is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatching
            # A clean-up round may be waiting on the platform's pacing: it is cut short (the
            # next start finds the same subscribers due).
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            if worker is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await desk.close()
            if emulator is not None:
                await emulator.aclose()
            await voice.aclose()
            await http.aclose()
            await limiter.close()
            await callback_limiter.close()
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
    app.include_router(callback.router)
    app.include_router(web_to_call.router)
    app.include_router(v1.router)
    app.include_router(health.router)
    app.include_router(cloudonix_webhooks.router)
    app.include_router(callback_webhooks.router)
    app.include_router(snippet.router)
    app.include_router(dashboard.router)
    if emulator is not None:
        app.include_router(demo.router)
        admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        app.mount("/emulator", EmulatorGuard(emulator, admin_token=admin))
    if settings.cors_origins:
        app.add_middleware(
            ApiCors,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
            # A page backs off by it when rate-limited.
            expose_headers=["Retry-After"],
            max_age=600,
        )
    app.add_middleware(AccessMiddleware, metrics=metrics)
    return app
