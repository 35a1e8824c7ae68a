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
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.db.models import Call
from app.db.repositories import calls as calls_repo
from app.db.repositories import web_calls as web_calls_repo
from app.db.session import READ_ONLY
from app.metrics import Metrics
from app.services import calls
from app.services.calls import DialResult, InboundCall, Progress
from app.services.routing import Announce, Decision, Forward, RoutingCache, decide
from app.settings import Settings

T = TypeVar("T")
_log = logging.getLogger("calltrack.voice")
# Errors that mean "the database is not answering", as opposed to a bug of ours. OSError
# covers refused and reset connections and TimeoutError (our own deadline among them).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    OSError,
)
MAX_PENDING = 10_000
ROUTE_CHUNK = 500


def _sqlstate(exc: DBAPIError) -> str | None:
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def database_unavailable(exc: BaseException) -> bool:
    """Whether an error means "the database is not answering" (worth queueing and retrying).

    Anything else (bad data, a bug) would fail again on every replay and hold up the queue.
    """
    if isinstance(exc, UNAVAILABLE):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state is not None:
        # 08 connection, 53 resources, 57 shutdown/cancel; 55000 "not accepting
        # connections"; 40001/40P01 serialization failure and deadlock: all transient.
        return state[:2] in {"08", "53", "57"} or state in {"55000", "40001", "40P01"}
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return isinstance(exc.orig, OSError) or isinstance(cause, OSError)


@dataclass(frozen=True)
class Pending:
    """An event the database could not take yet, and the work that applies it."""

    kind: str
    call_id: str
    to_number: str | None
    work: Callable[[AsyncSession], Awaitable[object]]


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
        self._pending_ids: Counter[str] = Counter()
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

    @property
    def _settle(self) -> timedelta:
        return timedelta(seconds=self._settings.outbox_settle_seconds)

    def _region(self) -> str:
        return self._settings.default_region

    def _decide(self, route: calls_repo.NumberRoute | None, caller: str | None) -> Decision:
        return decide(
            route,
            caller=caller,
            default_destination=self._settings.default_destination,
            unknown_message=self._settings.unknown_number_message,
        )

    async def _route(
        self, db: AsyncSession, raw: str | None, direction: str
    ) -> calls_repo.NumberRoute | None:
        to = calls.number_text(raw, self._region())
        if to is None or direction not in calls.CREATES_CALLS:
            return None
        # Always the database when it answers: another server may have changed the pool,
        # and the table would not know for up to a refresh period.
        route = await calls_repo.route_of(db, to)
        if route is not None:
            self.routing.put(route)
        return route

    def _counted(self, attribution: str, created: bool) -> None:
        if created:
            self._metrics.calls.labels(attribution=attribution).inc()

    async def _web_decision(self, db: AsyncSession, call: InboundCall) -> Decision:
        web = await web_calls_repo.caller_of(db, call.from_number) if call.from_number else None
        if web is None:
            # Not one of our visitors' subscribers: nobody to credit, nowhere to send it.
            return Announce(message=self._settings.unknown_number_message)
        if call.claimed_visit is not None and call.claimed_visit != web.session_id:
            # The page's claim is the page's; the subscriber we made for a visit is ours.
            _log.warning(
                "web call %s: the visit it names is not its subscriber's; the subscriber's "
                "is credited",
                call.call_id,
            )
        # The pool's fallback number shows at the business: a browser has no number.
        return Forward(
            destination=web.destination, caller_id=web.caller_id, record=web.record_calls
        )

    async def _record_inbound(self, db: AsyncSession, call: InboundCall) -> Decision:
        web = call.direction == calls.SUBSCRIBER
        route = None if web else await self._route(db, call.to_number, "inbound")
        caller = calls.caller_e164(call.from_number, self._region())
        decision = await self._web_decision(db, call) if web else self._decide(route, caller)
        stored = await calls.record(
            db,
            provider=self.provider,
            call_id=call.call_id,
            from_number=calls.number_text(call.from_number, self._region()),
            caller=caller,
            to_number=calls.number_text(call.to_number, self._region()),
            caller_name=call.caller_name,
            direction=call.direction,
            # Our clock, not the platform's: leases were stamped with ours.
            started_at=call.received_at,
            route=route,
            now=self._clock(),
            forwarded_to=decision.destination if isinstance(decision, Forward) else None,
        )
        self._counted(stored.attribution, stored.created)
        return decision

    def _waiting(self, call_id: str) -> bool:
        # Events of one call apply in arrival order: while an earlier one waits, so do later.
        return self._pending_ids[call_id] > 0

    async def answer(self, call: InboundCall) -> Decision:
        """Decide what the platform does with a call, recording it when the database allows."""
        item = Pending(
            "voice", call.call_id, call.to_number, partial(self._record_inbound, call=call)
        )
        if self._waiting(call.call_id):
            self._defer(item, None)
        else:
            try:
                return await self._txn(partial(self._record_inbound, call=call))
            except Exception as exc:
                if database_unavailable(exc):
                    self._defer(item, exc)
                else:
                    _log.exception("voice webhook failed; forwarding from the routing table")
        to = calls.number_text(call.to_number, self._region())
        route = self.routing.get(to) if to else None
        decision = self._decide(route, calls.caller_e164(call.from_number, self._region()))
        # The whisper is read from the stored call, which does not exist yet: skip it.
        if isinstance(decision, Forward) and decision.whisper:
            decision = replace(decision, whisper=False)
        return decision

    async def _apply_progress(self, db: AsyncSession, event: Progress) -> None:
        route = await self._route(db, event.to_number, event.direction)
        call, created = await calls.apply_progress(
            db,
            provider=self.provider,
            event=event,
            region=self._region(),
            route=route,
            now=self._clock(),
            settle=self._settle,
        )
        if call is not None:
            self._counted(call.attribution, created)

    async def _apply_dial(self, db: AsyncSession, result: DialResult) -> None:
        route = await self._route(db, result.to_number, result.direction)
        call, created = await calls.apply_dial_result(
            db,
            provider=self.provider,
            result=result,
            region=self._region(),
            route=route,
            now=self._clock(),
        )
        if call is not None:
            self._counted(call.attribution, created)

    async def _apply_or_defer(self, item: Pending) -> bool:
        if self._waiting(item.call_id):
            self._defer(item, None)
            return False
        try:
            await self._txn(item.work)
            return True
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            self._defer(item, exc)
            return False

    async def progress(self, event: Progress) -> bool:
        """Apply a session update or CDR; False when it was queued for later."""
        return await self._apply_or_defer(
            Pending(
                event.kind,
                event.call_id,
                event.to_number,
                lambda db: self._apply_progress(db, event),
            )
        )

    async def dial_result(self, result: DialResult) -> bool:
        """Remember how the forwarded leg ended; False when it was queued for later."""
        return await self._apply_or_defer(
            Pending(
                "dial", result.call_id, result.to_number, lambda db: self._apply_dial(db, result)
            )
        )

    async def whisper_text(self, call_id: str) -> str:
        """What the answering agent hears before the caller is connected."""

        async def read(db: AsyncSession) -> Call | None:
            await db.connection(execution_options={READ_ONLY: True})
            return await calls_repo.get_by_provider_id(db, provider=self.provider, call_id=call_id)

        try:
            call = await self._txn(read)
        except Exception as exc:
            if not database_unavailable(exc):
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

    def _defer(self, item: Pending, exc: BaseException | None) -> None:
        self._metrics.voice_deferred.labels(kind=item.kind).inc()
        _log.warning(
            "database unavailable; event queued",
            extra={
                "kind": item.kind,
                "call_id": item.call_id,
                "error": type(exc).__name__ if exc else "earlier event of the call queued",
            },
        )
        if len(self.pending) >= MAX_PENDING:
            self._lost(self._pop(), "queue full")
        self.pending.append(item)
        self._pending_ids[item.call_id] += 1

    def _pop(self) -> Pending:
        item = self.pending.popleft()
        self._pending_ids[item.call_id] -= 1
        if self._pending_ids[item.call_id] <= 0:
            del self._pending_ids[item.call_id]
        return item

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

    async def drain(self) -> int:
        """Replay queued events in order until one fails; returns how many were applied."""
        applied = 0
        async with self._drain_lock:
            while self.pending:
                item = self.pending[0]
                try:
                    await self._txn(item.work)
                except Exception as exc:
                    if database_unavailable(exc):
                        break
                    _log.exception("queued event failed on replay")
                    self._lost(self._pop(), "replay failed")
                    continue
                self._pop()
                applied += 1
        return applied

    async def refresh_routes(self) -> None:
        """Reload the routing table from the database, in chunks.

        Between chunks the event loop answers webhooks: 100,000 numbers read in one go would
        hold it for half a second. The read is read-only, so on SQLite it takes no write lock.
        """
        routes: list[calls_repo.NumberRoute] = []
        async with asyncio.timeout(60), self._sessionmaker() as db:
            await db.connection(execution_options={READ_ONLY: True})
            while True:
                after = routes[-1].number_id if routes else 0
                chunk = await calls_repo.routes_after(db, after_id=after, limit=ROUTE_CHUNK)
                routes += chunk
                if len(chunk) < ROUTE_CHUNK:
                    break
                await asyncio.sleep(0)
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
                    if not database_unavailable(exc):
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
            self._lost(self._pop(), "shutdown")
        if self._abandoned:
            await asyncio.wait(self._abandoned, timeout=5)


__all__ = ["Announce", "CallDesk", "Decision", "Forward", "Pending"]
