"""The callback worker: claims due requests from the queue and moves each one a step.

Several workers, in one process or on many machines, share the `callback_request` table:
a claim is an UPDATE of rows picked with FOR UPDATE SKIP LOCKED, and it pushes the row's
due time out by the claim timeout, so a crashed worker's claims lapse and are taken over.

An attempt is recorded (and committed) before the platform is asked to call, and a
request found mid-call is checked with the platform, never dialled again: a customer is
called at most once per attempt. Platform failures (429, 5xx, timeouts) do not use up a
request's attempts; after a few in a row the worker pauses as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.db.repositories import callbacks as repo
from app.providers.voice.base import VoiceProvider
from app.services import callback_plan as plan
from app.services.callback_breaker import Breaker
from app.services.callback_calls import CallPlacer, WebhookUrls
from app.services.callback_flow import Policy
from app.settings import Settings

log = logging.getLogger("calltrack.callbacks")


class CallbackWorker:
    """Claims due callback requests and drives each one step."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: VoiceProvider,
        settings: Settings,
        clock: Clock,
        base_url: str,
        name: str | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.provider = provider
        self.policy = Policy.of(settings)
        self.clock = clock
        self.name = name or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.breaker = Breaker(rand)
        self._rand = rand
        self.calls = CallPlacer(
            sessionmaker=sessionmaker,
            provider=provider,
            policy=self.policy,
            clock=clock,
            urls=WebhookUrls(base_url.rstrip("/")),
            breaker=self.breaker,
        )
        self._poll = settings.callback_poll_seconds
        self._concurrency = settings.callback_concurrency
        self._drain = settings.callback_drain_seconds
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look at the queue now (a request was just queued)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then finish or hand back what is claimed."""
        log.info("callback worker %s started", self.name)
        errors = 0
        try:
            while not stop.is_set():
                try:
                    await self._tick()
                    errors = 0
                except Exception:
                    errors += 1
                    log.exception("callback worker: claiming failed")
                await self._idle(stop, self._poll * min(30, 2 ** min(errors, 5)))
        finally:
            await self._stop()

    async def run_once(self) -> int:
        """Claim and handle one batch, waiting for it; how many were claimed (for tests)."""
        started = await self._tick()
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        return started

    async def _tick(self) -> int:
        free = self._concurrency - len(self._tasks)
        if free <= 0 or self.breaker.paused():
            return 0
        token = secrets.token_hex(8)
        now = self.clock()
        async with self.sessionmaker() as db:
            ids = await repo.claim_due(
                db,
                now=now,
                until=now + self.policy.claim,
                worker=self.name,
                token=token,
                limit=free,
            )
            await db.commit()
        for request_id in ids:
            task = asyncio.create_task(self._handle(request_id, token))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(ids)

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        waits: list[asyncio.Future[object]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        if self._tasks and len(self._tasks) >= self._concurrency:
            # At capacity: a finished task frees a slot, so wake up for it too.
            waits.append(asyncio.ensure_future(asyncio.wait(set(self._tasks))))
        try:
            # Jittered, so worker processes started together do not poll in lockstep.
            timeout = max(seconds * (0.75 + 0.5 * self._rand()), self.breaker.paused())
            await asyncio.wait(waits, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for waiting in waits:
                waiting.cancel()
        self._wake.clear()

    async def _stop(self) -> None:
        """Let calls being placed finish, then hand back every claim still held."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._drain)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            async with self.sessionmaker() as db:
                # Due again after the orphan wait, not at once: a call cut off mid-request
                # may have been placed, and its session updates deserve the time to arrive.
                due = self.clock() + self.policy.orphan
                released = await repo.release_claims_of(db, worker=self.name, at=due)
                await db.commit()
            if released:
                log.info("callback worker %s handed back %d claims", self.name, released)
        except Exception:
            log.exception("callback worker %s: claims not handed back (they lapse)", self.name)
        log.info("callback worker %s stopped", self.name)

    async def _handle(self, request_id: str, token: str) -> None:
        try:
            async with self.sessionmaker() as db:
                step = await plan.prepare(
                    db,
                    request_id=request_id,
                    token=token,
                    now=self.clock(),
                    policy=self.policy,
                    provider=self.provider.name,
                )
                await db.commit()
            if isinstance(step, plan.Dial):
                await self.calls.dial(step, token)
            elif isinstance(step, plan.Check):
                await self.calls.check(step, token)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("callback %s: step failed; it is looked at again later", request_id)
            with contextlib.suppress(Exception):
                async with self.sessionmaker() as db:
                    await plan.release(db, request_id=request_id, token=token)
                    await db.commit()


def build_worker(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    voice: VoiceProvider,
    clock: Clock,
) -> CallbackWorker | None:
    """The callback worker, unless the platform could not reach its webhooks."""
    base = settings.callback_webhook_base
    if base is None:
        log.error(
            "callbacks are queued but not called: set CALLTRACK_PUBLIC_URL so the voice "
            "platform can reach the callback webhooks"
        )
        return None
    return CallbackWorker(
        sessionmaker=sessionmaker, provider=voice, settings=settings, clock=clock, base_url=base
    )
