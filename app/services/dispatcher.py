"""The outbox dispatcher: fans events out to their targets and delivers them, with retries.

Delivery is at least once. A delivery is claimed (its due time pushed past the request's
timeout) before it is sent, so a dispatcher that dies mid-send leaves a claim that lapses
and another sends it again; receivers deduplicate by the event id. Dispatchers in several
processes share the tables through SKIP LOCKED on PostgreSQL. A target that is down only
delays its own deliveries: each is retried with exponential backoff, and after the last
attempt it stays in the log as failed, to be retried by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.db.repositories import outbox as repo
from app.services import delivery_requests as requests
from app.services import event_payloads
from app.settings import Settings

log = logging.getLogger("calltrack.webhooks")

FAN_OUT_BATCH = 100
PRUNE_BATCH = 1000
PRUNE_EVERY_SECONDS = 3600.0


def backoff(
    attempt: int, *, base: float, cap: float, rand: float, retry_after: float | None = None
) -> float:
    """Seconds before the next try after `attempt` failed: doubling, jittered ±20%, capped."""
    delay: float = min(base * 2.0 ** max(0, attempt - 1), cap) * (0.8 + 0.4 * rand)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header in seconds, whether given as seconds or as an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


class Dispatcher:
    """Fans out due events and delivers due deliveries."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Clock,
        http: httpx.AsyncClient | None = None,
        name: str | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.clock = clock
        self.name = name or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self._rand = rand
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._claim = timedelta(seconds=settings.outbox_timeout_seconds * 2 + 5)
        self._pruned_at: float | None = None

    def wake(self) -> None:
        """Look for work now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then let sends in flight finish and hand back claims."""
        log.info("webhook dispatcher %s started", self.name)
        errors = 0
        poll = self.settings.outbox_poll_seconds
        try:
            while not stop.is_set():
                claimed = 0
                try:
                    claimed = await self._tick()
                    errors = 0
                except Exception:
                    errors += 1
                    log.exception("webhook dispatcher: a round failed")
                if claimed:
                    # A backlog: go again as soon as a send frees a slot, not a poll later.
                    await self._idle(stop, poll, until_free=True)
                else:
                    await self._idle(stop, poll * min(30, 2 ** min(errors, 5)))
        finally:
            await self._stop()

    async def run_once(self) -> int:
        """One round, waiting for its sends; how many deliveries were attempted (for tests)."""
        started = await self._tick()
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        return started

    async def aclose(self) -> None:
        """Close the HTTP client if this dispatcher made it."""
        if self._own_http:
            await self.http.aclose()

    async def prune(self) -> int:
        """Forget deliveries finished, and events sent, more than the retention ago; how many."""
        before = self.clock() - timedelta(days=self.settings.outbox_retention_days)
        total = 0
        for _ in range(1000):  # bounded: a huge backlog is worked off over several rounds
            async with self.sessionmaker() as db:
                gone = await repo.prune(db, before=before, limit=PRUNE_BATCH)
                await db.commit()
            total += gone
            if gone < PRUNE_BATCH:
                break
        return total

    async def _tick(self) -> int:
        if self._pruned_at is None or time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            if pruned := await self.prune():
                log.info("webhook dispatcher: %d old deliveries and events forgotten", pruned)
        while await self._fan_out() == FAN_OUT_BATCH:
            pass
        free = self.settings.outbox_concurrency - len(self._tasks)
        if free <= 0:
            return 0
        now = self.clock()
        async with self.sessionmaker() as db:
            claimed = await repo.claim_due(
                db, now=now, until=now + self._claim, worker=self.name, limit=free
            )
            await db.commit()
        for item in claimed:
            task = asyncio.create_task(self._deliver(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    async def _fan_out(self) -> int:
        """Render due events and queue a delivery per target; how many events were done."""
        now = self.clock()
        async with self.sessionmaker() as db:
            events = await repo.due_events(db, now=now, limit=FAN_OUT_BATCH)
            for event in events:
                rendered = await event_payloads.render(
                    db,
                    event_id=event.event_id,
                    kind=event.type,
                    subject=event.subject,
                    created_at=event.created_at,
                )
                event.fanned_out_at = now
                if rendered is None:
                    continue
                targets: list[tuple[str, int | None]] = [
                    (f"webhook:{sid}", sid)
                    for sid in await repo.subscribers(
                        db, event_type=event.type, since=event.created_at
                    )
                ]
                if self.settings.ga4_enabled and rendered.ga_client_id:
                    targets.append((requests.GA4_TARGET, None))
                if not targets:
                    continue  # nobody listens: the visitor's details are not copied here
                event.payload = json.dumps(rendered.body, separators=(",", ":"))
                await repo.add_deliveries(
                    db,
                    [
                        {
                            "event_id": event.id,
                            "target": target,
                            "subscription_id": sid,
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for target, sid in targets
                    ],
                )
            await db.commit()
        return len(events)

    def _outgoing(self, item: repo.Claimed, now: datetime) -> requests.Outgoing:
        if item.target == requests.GA4_TARGET:
            settings = self.settings
            if settings.ga4_measurement_id is None or settings.ga4_api_secret is None:
                raise requests.Undeliverable("GA4 is no longer configured")
            return requests.ga4(
                endpoint=settings.ga4_endpoint,
                measurement_id=settings.ga4_measurement_id,
                api_secret=settings.ga4_api_secret.get_secret_value(),
                payload=item.payload,
                now=now,
            )
        if item.url is None or item.secret is None:
            raise requests.Undeliverable("the subscription no longer exists")
        return requests.webhook(
            url=item.url,
            secret=item.secret,
            payload=item.payload,
            event_id=item.event_id,
            kind=item.event_type,
            attempt=item.attempts + 1,
            now=now,
        )

    async def _send(
        self, out: requests.Outgoing, now: datetime
    ) -> tuple[int | None, str | None, float | None]:
        """(status code, error, Retry-After seconds); the body is never read or kept."""
        try:
            async with self.http.stream(
                "POST",
                out.url,
                content=out.body,
                headers=out.headers,
                params=out.secret_params or None,
                timeout=self.settings.outbox_timeout_seconds,
            ) as response:
                wait = retry_after_seconds(response.headers.get("retry-after"), now)
                return response.status_code, None, wait
        except Exception as exc:  # any failure is this attempt's outcome, never the loop's
            text = f"{type(exc).__name__}: {exc}"
            # An error's text may quote the request URL, and GA4's carries the API secret.
            for secret in out.secret_params.values():
                text = text.replace(secret, "***")
            return None, text, None

    async def _deliver(self, item: repo.Claimed) -> None:
        now = self.clock()
        started = time.perf_counter()
        attempt = item.attempts + 1
        code: int | None
        error: str | None
        wait: float | None
        try:
            out = self._outgoing(item, now)
        except requests.Undeliverable as exc:
            code, error, wait = None, str(exc), None
            final = True
        else:
            code, error, wait = await self._send(out, now)
            final = False
        elapsed = int((time.perf_counter() - started) * 1000)
        ok = code is not None and 200 <= code < 300
        if code is not None and not ok:
            error = f"HTTP {code}"
        give_up = final or (not ok and attempt >= self.settings.outbox_max_attempts)
        next_at = None
        if not ok and not give_up:
            delay = backoff(
                attempt,
                base=self.settings.outbox_retry_seconds,
                cap=self.settings.outbox_retry_max_seconds,
                rand=self._rand(),
                retry_after=wait,
            )
            next_at = now + timedelta(seconds=delay)
        outcome = repo.Outcome(
            started_at=now,
            duration_ms=elapsed,
            status_code=code,
            error=error,
            status="delivered" if ok else "failed" if give_up else "pending",
            next_attempt_at=next_at,
        )
        try:
            async with self.sessionmaker() as db:
                kept = await repo.finish_attempt(
                    db, delivery_id=item.id, worker=self.name, outcome=outcome, now=self.clock()
                )
                await db.commit()
        except Exception:
            log.exception("delivery %d: its outcome was not stored (it is sent again)", item.id)
            return
        if not kept:
            return
        if ok:
            log.info("delivery %d (%s) to %s delivered", item.id, item.event_type, item.target)
        elif give_up:
            log.warning(
                "delivery %d to %s failed for good after %d attempts: %s",
                item.id,
                item.target,
                attempt,
                error,
            )
        else:
            log.info(
                "delivery %d to %s failed (%s); retried at %s", item.id, item.target, error, next_at
            )

    async def _idle(self, stop: asyncio.Event, seconds: float, *, until_free: bool = False) -> None:
        if until_free and len(self._tasks) < self.settings.outbox_concurrency:
            return  # slots are free already: claim more at once
        waits: list[asyncio.Future[object]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        if until_free and self._tasks:
            waits.append(
                asyncio.ensure_future(
                    asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                )
            )
        try:
            timeout = seconds * (0.75 + 0.5 * self._rand())
            await asyncio.wait(waits, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for waiting in waits:
                waiting.cancel()
        self._wake.clear()

    async def _stop(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(
                set(self._tasks), timeout=self.settings.outbox_timeout_seconds + 1
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            async with self.sessionmaker() as db:
                await repo.release_claims_of(db, worker=self.name, at=self.clock())
                await db.commit()
        except Exception:
            log.exception("webhook dispatcher %s: claims not handed back (they lapse)", self.name)
        await self.aclose()
        log.info("webhook dispatcher %s stopped", self.name)
