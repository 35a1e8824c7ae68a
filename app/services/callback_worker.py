"""The callback worker: claims due requests from the queue and places their calls.

Several workers, in one process or on many machines, share the `callback_request` table:
a claim is an UPDATE of rows picked with FOR UPDATE SKIP LOCKED, and it pushes the row's
due time out by the claim timeout, so a crashed worker's claims lapse and are taken over.

An attempt is recorded (and committed) before the platform is asked to call, and a
request found mid-call is reconciled with the platform, never dialled again: a customer
is called at most once per attempt. Platform failures (429, 5xx, timeouts) do not use up
a request's attempts; after a few in a row the worker pauses as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.db.models import CallbackAttempt, CallbackRequest, Pool
from app.db.repositories import callbacks as repo
from app.providers.voice import cxml
from app.providers.voice.base import (
    CallInfo,
    CallNotFound,
    Originate,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderRetryable,
    VoiceProvider,
)
from app.services import callback_plan as plan
from app.services.callback_flow import LIVE_ATTEMPT, Policy, agent_failed, customer_failed
from app.services.callback_plan import Change
from app.settings import Settings

log = logging.getLogger("calltrack.callbacks")

# Consecutive platform failures after which the worker stops claiming for a while.
TRIP_AFTER = 3
MAX_PAUSE = 300.0
# The platform's own faults (not an agent's number it refused): they pause the worker.
_OUR_FAULT = frozenset({401, 403})


@dataclass(frozen=True)
class WebhookUrls:
    """Where the platform reports on a callback's calls."""

    base: str

    def session_update(self, attempt_id: int) -> str:
        """The agent leg's session updates."""
        return f"{self.base}/webhooks/cloudonix/callbacks/{attempt_id}/session-update"

    def dial_action(self, attempt_id: int) -> str:
        """The customer leg's dial result."""
        return f"{self.base}/webhooks/cloudonix/callbacks/{attempt_id}/dial-action"


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
        self.urls = WebhookUrls(base_url.rstrip("/"))
        self.name = name or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.rand = rand
        self._poll = settings.callback_poll_seconds
        self._concurrency = settings.callback_concurrency
        self._drain = settings.callback_drain_seconds
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures = 0
        self._paused_until = 0.0

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
                await self._idle(stop, self._poll * min(30, 2**errors if errors else 1))
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
        if free <= 0 or time.monotonic() < self._paused_until:
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
        pause = self._paused_until - time.monotonic()
        try:
            await asyncio.wait(waits, timeout=max(seconds, pause), return_when="FIRST_COMPLETED")
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
        with contextlib.suppress(Exception):
            async with self.sessionmaker() as db:
                released = await repo.release_claims_of(db, worker=self.name, at=self.clock())
                await db.commit()
            if released:
                log.info("callback worker %s handed back %d claims", self.name, released)
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
                await self._dial(step, token)
            elif isinstance(step, plan.Check):
                await self._check(step, token)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("callback %s: step failed; it is looked at again later", request_id)
            with contextlib.suppress(Exception):
                async with self.sessionmaker() as db:
                    await plan.release(db, request_id=request_id, token=token)
                    await db.commit()

    async def _settle(self, request_id: str, attempt_id: int, token: str, change: Change) -> None:
        """Apply `change` under the request's lock, then let go of the claim."""
        async with self.sessionmaker() as db:
            await plan.settle(
                db,
                request_id=request_id,
                token=token,
                attempt_id=attempt_id,
                now=self.clock(),
                change=change,
            )
            await db.commit()

    async def _dial(self, step: plan.Dial, token: str) -> None:
        document = (
            cxml.Response()
            .say(step.whisper)
            .dial(
                step.customer,
                caller_id=step.caller_id,
                action=self.urls.dial_action(step.attempt_id),
                timeout=self.policy.customer_ring,
                time_limit=self.policy.time_limit,
            )
            .render()
        )
        order = Originate(
            destination=step.agent,
            caller_id=step.caller_id,
            cxml=document,
            status_callback=self.urls.session_update(step.attempt_id),
            timeout_seconds=self.policy.agent_ring,
        )
        policy = self.policy
        try:
            info = await self.provider.originate(order)
        except ProviderRetryable as exc:
            await self._platform_failed(step, token, exc, exc.retry_after)
        except ProviderRejected as exc:
            if exc.status is None or exc.status in _OUR_FAULT or exc.status >= 500:
                await self._platform_failed(step, token, exc, None)
                return
            self._failures = 0
            reason = f"refused by the platform ({exc.status})"

            def refused(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
                agent_failed(r, a, p, reason=reason, now=now, policy=policy)

            await self._settle(step.request_id, step.attempt_id, token, refused)
        except ProviderOutcomeUnknown:
            # The call may be ringing: wait to hear of it, never dial again blind.
            log.warning("callback %s: the platform's answer was lost", step.request_id)

            def unknown(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
                plan.await_word(r, a, now=now, policy=policy)

            await self._settle(step.request_id, step.attempt_id, token, unknown)
        else:
            self._failures = 0

            def ringing(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
                plan.placed(r, a, info.call_id, now=now, policy=policy)

            await self._settle(step.request_id, step.attempt_id, token, ringing)

    async def _platform_failed(
        self, step: plan.Dial, token: str, exc: ProviderError, retry_after: float | None
    ) -> None:
        """The platform failed us, not the agent: the attempt does not count."""
        self._failures += 1
        wait = max(retry_after or 0.0, min(MAX_PAUSE, 2.0**self._failures) * (0.5 + self.rand()))
        if self._failures >= TRIP_AFTER:
            pause = min(MAX_PAUSE, 5.0 * 2 ** (self._failures - TRIP_AFTER)) * (0.5 + self.rand())
            pause = max(pause, retry_after or 0.0)
            self._paused_until = time.monotonic() + pause
            log.warning(
                "voice platform failing (%s, %d in a row): the callback worker pauses %.0f s",
                exc.status or type(exc).__name__,
                self._failures,
                pause,
            )
        error = f"platform: {exc}"
        previous = step.previous_status

        def failed(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
            plan.not_placed(r, a, error, due=now + timedelta(seconds=wait), previous=previous)

        await self._settle(step.request_id, step.attempt_id, token, failed)

    async def _check(self, step: plan.Check, token: str) -> None:
        """Ask the platform how an overdue call went, and conclude if it has ended."""
        policy = self.policy
        info: CallInfo | None = None
        if step.call_id is not None and not step.leg_over:
            try:
                info = await self.provider.get_call(step.call_id)
            except CallNotFound:
                info = None
            except ProviderError as exc:
                log.warning("callback %s: could not check its call: %s", step.request_id, exc)
                await self._settle(step.request_id, step.attempt_id, token, _look_again(policy))
                return
            if info is not None and not info.state.final:
                await self._settle(step.request_id, step.attempt_id, token, _look_again(policy))
                return
        answered = info is not None and info.answered_at is not None
        reason = info.state.value if info is not None else "lost"

        def conclude(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
            if a.status not in LIVE_ATTEMPT:
                return  # a webhook settled it meanwhile
            if a.status == "agent_answered" or answered:
                customer_failed(r, a, p, status="no-result", now=now, policy=policy)
            else:
                agent_failed(r, a, p, reason=reason, now=now, policy=policy)

        await self._settle(step.request_id, step.attempt_id, token, conclude)


def _look_again(policy: Policy) -> Change:
    def change(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
        plan.look_again(r, now=now, policy=policy)

    return change
