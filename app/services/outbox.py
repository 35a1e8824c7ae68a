"""Recording events for CRMs and GA4 in the transaction that makes them happen.

An event is a row in `outbox_event`, written with the change it reports, so it exists if
and only if the change was committed: a crash can neither lose it nor invent it. The
dispatcher (services/dispatcher.py) renders and delivers it later.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction, object_session

from app.db.repositories import outbox as repo

CALL_COMPLETED = "call.completed"
CALLBACK_COMPLETED = "callback.completed"
SESSION_CREATED = "session.created"
EVENT_TYPES = (CALL_COMPLETED, CALLBACK_COMPLETED, SESSION_CREATED)

_PENDING = "calltrack.outbox"
# How long this process trusts what it knows of the subscriptions (see `wanted`).
WANTED_TTL_SECONDS = 5.0


def new_event_id() -> str:
    """A public, unguessable event id; receivers deduplicate by it."""
    return "evt_" + secrets.token_hex(12)


def _row(kind: str, subject: str, now: datetime, due_at: datetime | None) -> dict[str, Any]:
    return {
        "event_id": new_event_id(),
        "type": kind,
        "subject": subject,
        "created_at": now,
        "due_at": due_at or now,
    }


async def record(
    db: AsyncSession, kind: str, subject: str, *, now: datetime, due_at: datetime | None = None
) -> None:
    """Record an event in `db`'s transaction; recording it again changes nothing."""
    await repo.record(db, _row(kind, subject, now, due_at))


def record_with(obj: object, kind: str, subject: str, *, now: datetime) -> None:
    """Record an event with the next flush of the session holding `obj`.

    For code that changes ORM objects without awaiting: the row is written by the flush
    that writes the change, so both commit or neither does.
    """
    session = object_session(obj)
    if session is None:
        return  # a detached object's change is not stored either: nothing happened
    session.info.setdefault(_PENDING, []).append(_row(kind, subject, now, None))


@event.listens_for(Session, "before_flush")
def _write_pending(session: Session, context: UOWTransaction, instances: object) -> None:
    rows = session.info.pop(_PENDING, None)
    if rows:
        repo.record_sync(session.connection(), rows)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


class _Wanted:
    """Which event types any subscription wants, as this process last read it.

    session.created fires on the lease path, the hottest in the service; when nobody
    subscribes, recording it would only cost. A subscription made on another server is
    seen here within WANTED_TTL_SECONDS; one made here, at once.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[float, frozenset[str]]] = {}

    async def get(self, db: AsyncSession) -> frozenset[str]:
        bind = db.get_bind()
        key = str(bind.engine.url)
        hit = self._known.get(key)
        if hit is not None and time.monotonic() - hit[0] < WANTED_TTL_SECONDS:
            return hit[1]
        kinds = frozenset(await repo.wanted_types(db))
        self._known[key] = (time.monotonic(), kinds)
        return kinds

    def forget(self) -> None:
        self._known.clear()


wanted = _Wanted()


async def session_created(db: AsyncSession, session_id: str, *, now: datetime) -> None:
    """Record session.created when some subscription wants it."""
    if SESSION_CREATED in await wanted.get(db):
        await record(db, SESSION_CREATED, session_id, now=now)


async def call_ended(
    db: AsyncSession, call_id: int, *, now: datetime, final: bool, settle: timedelta
) -> None:
    """Record call.completed; it waits `settle` for the CDR unless this is the CDR."""
    await record(db, CALL_COMPLETED, str(call_id), now=now, due_at=now if final else now + settle)
