"""The voice desk: answers the platform at once, even when the database cannot.

Each webhook's work runs in its own short transaction under a deadline
(CALLTRACK_VOICE_DB_TIMEOUT). When the database is slow or down the caller is still
forwarded, from the in-memory routing table, and the event waits in a bounded queue in
memory that is replayed, in order, once the database answers again. Replaying is safe
because every handler is idempotent. Events still queued when the process stops, or pushed
out of a full queue, are logged as lost with the platform's call id, so they can be
recovered from the platform's own records. This is a choice: a durable spool on local disk
would survive a crash too, but not the loss of the machine, and would need its own care.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.db.models import Call
from app.db.repositories import calls as calls_repo
from app.metrics import Metrics
from app.services import calls
from app.services.calls import DialResult, InboundCall, Progress
from app.services.routing import Announce, Decision, Forward, RoutingCache, decide
from app.settings import Settings

T = TypeVar("T")
_log = logging.getLogger("calltrack.voice")
# Errors that mean "the database is not answering", as opposed to a bug of ours.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    PoolTimeout,
    TimeoutError,
    OSError,
    ConnectionError,
)
MAX_PENDING = 10_000


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, UNAVAILABLE):
        return True
    # Drivers report refused, dropped and closed connections under several DBAPI classes;
    # only these three mean the statement itself, or the data, is wrong.
    return isinstance(exc, DBAPIError) and not isinstance(
        exc, IntegrityError | DataError | ProgrammingError
    )


@dataclass(frozen=True)
class Pending:
    """An event the database could not take yet."""

    kind: str
    call_id: str
    to_number: str | None
    event: InboundCall | Progress | DialResult


class CallDesk:
    """Routes, records and updates calls for the webhooks of one voice platform."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: Metrics,
        clock: Clock,
        provider: str,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self.provider = provider
        self.routing = RoutingCache()
        self.pending: deque[Pending] = deque()
        self._drain_lock = asyncio.Lock()
        self._routes_stale = True
        self._abandoned: set[asyncio.Task[Any]] = set()

    async def _unit(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._sessionmaker() as db:
            result = await work(db)
            await db.commit()
            return result

    async def _txn(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` in a transaction, giving up on it after the voice deadline.

        The work runs as its own task: on a deadline the caller is answered at once, while
        the abandoned task unwinds on its own (a rollback stuck behind SQLite's lock or a
        dead connection must not hold up the answer to the platform).
        """
        task = asyncio.create_task(self._unit(work))
        done, _ = await asyncio.wait({task}, timeout=self._settings.voice_db_timeout)
        if task in done:
            return task.result()
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)
        raise TimeoutError("the database did not answer within the voice deadline")

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.debug("abandoned database work failed", exc_info=task.exception())

    def _region(self) -> str:
        return self._settings.default_region

    def _decide(self, route: calls_repo.NumberRoute | None, caller: str | None) -> Decision:
        return decide(
            route,
            caller=caller,
            default_destination=self._settings.default_destination,
            unknown_message=self._settings.unknown_number_message,
        )

    async def _record_inbound(self, db: AsyncSession, call: InboundCall) -> tuple[Decision, bool]:
        to = calls.normalise(call.to_number, self._region())
        caller = calls.normalise(call.from_number, self._region())
        route = await calls_repo.route_of(db, to) if to else None
        if route is not None and route.active:
            self.routing.put(route)
        known = await calls_repo.get_by_provider_id(
            db, provider=self.provider, call_id=call.call_id
        )
        stored = await calls.record(
            db,
            provider=self.provider,
            call_id=call.call_id,
            from_number=caller,
            to_number=to,
            caller_name=call.caller_name,
            direction=call.direction,
            started_at=calls.start_of(call.reported_start, call.received_at),
            route=route,
            now=self._clock(),
        )
        decision = self._decide(route, caller)
        if isinstance(decision, Forward) and stored.forwarded_to is None:
            stored.forwarded_to = decision.destination
            await db.flush()
        if known is None:
            self._metrics.calls.labels(attribution=stored.attribution).inc()
        return decision, known is None

    async def answer(self, call: InboundCall) -> Decision:
        """Decide what the platform does with a call, recording it when the database allows."""
        try:
            decision, _ = await self._txn(lambda db: self._record_inbound(db, call))
            return decision
        except Exception as exc:
            if not _unavailable(exc):
                _log.exception("voice webhook failed; forwarding from the routing table")
            self._defer(Pending("voice", call.call_id, call.to_number, call), exc)
        to = calls.normalise(call.to_number, self._region())
        route = self.routing.get(to) if to else None
        decision = self._decide(route, calls.normalise(call.from_number, self._region()))
        # The whisper is read from the stored call, which does not exist yet: skip it.
        if isinstance(decision, Forward) and decision.whisper:
            decision = Forward(
                destination=decision.destination,
                caller_id=decision.caller_id,
                record=decision.record,
                tracked=decision.tracked,
            )
        return decision

    async def _apply_progress(self, db: AsyncSession, event: Progress) -> Call | None:
        to = calls.normalise(event.to_number, self._region())
        route = await calls_repo.route_of(db, to) if to and event.direction == "inbound" else None
        return await calls.apply_progress(
            db, provider=self.provider, event=event, route=route, now=self._clock()
        )

    async def progress(self, event: Progress) -> bool:
        """Apply a session update or CDR; False when it was queued for later."""
        try:
            await self._txn(lambda db: self._apply_progress(db, event))
            return True
        except Exception as exc:
            if not _unavailable(exc):
                raise
            self._defer(Pending(event.kind, event.call_id, event.to_number, event), exc)
            return False

    async def dial_result(self, result: DialResult) -> bool:
        """Remember how the forwarded leg ended; False when it was queued for later."""
        try:
            await self._txn(
                lambda db: calls.apply_dial_result(
                    db, provider=self.provider, result=result, now=self._clock()
                )
            )
            return True
        except Exception as exc:
            if not _unavailable(exc):
                raise
            self._defer(Pending("dial", result.call_id, None, result), exc)
            return False

    async def whisper_text(self, call_id: str) -> str:
        """What the answering agent hears before the caller is connected."""

        async def read(db: AsyncSession) -> Call | None:
            return await calls_repo.get_by_provider_id(db, provider=self.provider, call_id=call_id)

        try:
            call = await self._txn(read)
        except Exception as exc:
            if not _unavailable(exc):
                raise
            call = None
        if call is None or call.source is None:
            return "Incoming call."
        parts = [call.source]
        if call.medium and not call.medium.startswith("("):
            parts.append(call.medium)
        if call.campaign:
            parts.append(f"campaign {call.campaign}")
        return "Call from " + ", ".join(parts) + "."

    def _defer(self, item: Pending, exc: BaseException) -> None:
        self._metrics.voice_deferred.labels(kind=item.kind).inc()
        _log.warning(
            "database unavailable; event queued",
            extra={"kind": item.kind, "call_id": item.call_id, "error": type(exc).__name__},
        )
        if len(self.pending) >= MAX_PENDING:
            self._lost(self.pending.popleft(), "queue full")
        self.pending.append(item)

    def _lost(self, item: Pending, why: str) -> None:
        self._metrics.voice_lost.labels(kind=item.kind).inc()
        # No caller number here: logs carry no personal data, and the platform's call id
        # is enough to fetch the rest from the platform.
        _log.error(
            "call event lost",
            extra={
                "why": why,
                "kind": item.kind,
                "call_id": item.call_id,
                "tracking_number": item.to_number,
            },
        )

    async def _replay(self, item: Pending) -> None:
        event = item.event
        if isinstance(event, InboundCall):
            await self._txn(lambda db: self._record_inbound(db, event))
        elif isinstance(event, Progress):
            await self._txn(lambda db: self._apply_progress(db, event))
        else:
            await self._txn(
                lambda db: calls.apply_dial_result(
                    db, provider=self.provider, result=event, now=self._clock()
                )
            )

    async def drain(self) -> int:
        """Replay queued events in order until one fails; returns how many were applied."""
        applied = 0
        async with self._drain_lock:
            while self.pending:
                item = self.pending[0]
                try:
                    await self._replay(item)
                except Exception as exc:
                    if _unavailable(exc):
                        break
                    _log.exception("queued event failed on replay")
                    self.pending.popleft()
                    self._lost(item, "replay failed")
                    continue
                self.pending.popleft()
                applied += 1
        return applied

    async def refresh_routes(self) -> None:
        """Reload the routing table from the database."""

        async def read(db: AsyncSession) -> list[calls_repo.NumberRoute]:
            return await calls_repo.all_routes(db)

        # Generous: 100,000 numbers load in well under a second, but never hang upkeep.
        async with asyncio.timeout(30), self._sessionmaker() as db:
            routes = await read(db)
        self.routing.replace(routes)

    def routes_changed(self) -> None:
        """Numbers or pools changed: reload the routing table on the next tick."""
        self._routes_stale = True

    async def run(self, stop: asyncio.Event) -> None:
        """Background upkeep: replay queued events each second, reload routes when due."""
        refresh_every = self._settings.routing_refresh_seconds
        since_refresh = 0.0
        while not stop.is_set():
            due = refresh_every > 0 and since_refresh >= refresh_every
            if self._routes_stale or due:
                try:
                    self._routes_stale = False
                    await self.refresh_routes()
                    since_refresh = 0.0
                except Exception as exc:
                    self._routes_stale = True
                    if not _unavailable(exc):
                        _log.exception("routing table refresh failed")
            if self.pending:
                await self.drain()
            self._metrics.voice_pending.set(len(self.pending))
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                since_refresh += 1.0

    async def close(self) -> None:
        """Last replay attempt; whatever is still queued is logged as lost."""
        if self.pending:
            try:
                await self.drain()
            except Exception:
                _log.exception("final replay failed")
        while self.pending:
            self._lost(self.pending.popleft(), "shutdown")
        if self._abandoned:
            await asyncio.wait(self._abandoned, timeout=5)


__all__ = ["Announce", "CallDesk", "Decision", "Forward", "Pending"]
