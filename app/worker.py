"""`calltrack worker`: the callback worker and the webhook dispatcher as a process of their own."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import httpx

from app.clock import utc_now
from app.db.session import make_engine, make_sessionmaker
from app.providers.voice.base import VoiceProvider
from app.providers.voice.cloudonix import build_cloudonix
from app.services.callback_worker import build_worker
from app.services.dispatcher import Dispatcher
from app.settings import Settings

log = logging.getLogger("calltrack.callbacks")


def _voice(settings: Settings, http: httpx.AsyncClient) -> VoiceProvider | None:
    if settings.voice_provider == "cloudonix":
        return build_cloudonix(settings, http)
    # The emulator runs inside `calltrack serve`; the worker reaches it like Cloudonix.
    if settings.emulator_url is None or settings.emulator_api_key is None:
        print(
            "error: with the emulator, set CALLTRACK_EMULATOR_URL and CALLTRACK_EMULATOR_API_KEY "
            "(the same key `calltrack serve` was given)",
            file=sys.stderr,
        )
        return None
    return build_cloudonix(
        settings,
        http,
        base_url=settings.emulator_url.rstrip("/"),
        api_key=settings.emulator_api_key.get_secret_value(),
    )


async def run(settings: Settings) -> int:
    """Work the callback queue and the outbox until SIGTERM or SIGINT; claims are handed back."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
    try:
        voice = _voice(settings, http)
        if voice is None:
            return 2
        worker = build_worker(settings, make_sessionmaker(engine), voice, utc_now)
        if worker is None:
            return 2
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        dispatcher = Dispatcher(
            sessionmaker=make_sessionmaker(engine), settings=settings, clock=utc_now
        )
        try:
            await asyncio.gather(worker.run(stop), dispatcher.run(stop))
        finally:
            await voice.aclose()
        return 0
    finally:
        await http.aclose()
        await engine.dispose()
