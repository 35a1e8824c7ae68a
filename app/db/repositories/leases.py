"""The lease: claim a free number, renew a held one, read the history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Integer,
    String,
    TextClause,
    bindparam,
    column,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from app.db.base import UTCDateTime
from app.db.models import Lease, TrackingNumber
from app.db.repositories import sessions


@dataclass(frozen=True)
class Held:
    """A number held by a session."""

    number_id: int
    e164: str
    lease_id: int
    leased_until: datetime


_BINDS: dict[str, TypeEngine[Any]] = {
    "pool_id": Integer(),
    "number_id": Integer(),
    "lease_id": Integer(),
    "session_id": String(),
    "now": UTCDateTime(),
    "since": UTCDateTime(),
    "until": UTCDateTime(),
    "available_at": UTCDateTime(),
}


def _typed(sql: str) -> TextClause:
    """A SQL text whose parameters carry their types (timestamps go through UTCDateTime)."""
    used: list[BindParameter[Any]] = [
        bindparam(name, type_=type_) for name, type_ in _BINDS.items() if f":{name}" in sql
    ]
    return text(sql).bindparams(*used)


# One statement: pick the least recently released free number, write the history row and
# move the number's current lease, all under the row lock that SKIP LOCKED took. SKIP LOCKED
# lets concurrent claims take different numbers instead of queueing on one.
_PICK = """pick AS (
        SELECT id FROM tracking_number
        WHERE pool_id = :pool_id AND active AND available_at <= :now
        ORDER BY available_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )"""
_MOVE = """
    UPDATE tracking_number AS t
    SET leased_session_id = :session_id, leased_until = :until, available_at = :available_at
    FROM ins
    WHERE t.id = ins.number_id
    RETURNING t.id, t.e164, ins.id
"""
_PG_CLAIM = _typed(
    f"""
    WITH {_PICK}, ins AS (
        INSERT INTO lease (number_id, pool_id, session_id, started_at, ends_at)
        SELECT id, :pool_id, :session_id, :now, :until FROM pick
        RETURNING id, number_id
    ){_MOVE}"""  # noqa: S608  (constant fragments, no input)
)

# SQLite has one writer (the service opens every transaction with BEGIN IMMEDIATE), so the
# same pick needs no row lock there; it cannot modify data inside a CTE, hence two steps.
_SQLITE_CLAIM = _typed(
    """
    UPDATE tracking_number
    SET leased_session_id = :session_id, leased_until = :until, available_at = :available_at
    WHERE id = (
        SELECT id FROM tracking_number
        WHERE pool_id = :pool_id AND active AND available_at <= :now
        ORDER BY available_at
        LIMIT 1
    )
    RETURNING id, e164
    """
)


_SESSION_COLUMNS = (
    "id",
    "created_at",
    "last_seen_at",
    "site_key_id",
    *sessions.CONTEXT_FIELDS,
    *sessions.PROSPECT_FIELDS,
    *sessions.DERIVED_FIELDS,
)

# A new visitor's session and its claim in one round trip: the session row is inserted by a
# CTE in front of the claim (its foreign key is checked at the end of the statement, when the
# row exists). The session is stored even when no number is free.
_PG_CLAIM_NEW_SESSION = _typed(
    # Built from the constant column names above, never from input.
    f"""
    WITH visit AS (
        INSERT INTO visitor_session ({", ".join(_SESSION_COLUMNS)})
        VALUES ({", ".join(":s_" + c for c in _SESSION_COLUMNS)})
        RETURNING id
    ), {_PICK}, ins AS (
        INSERT INTO lease (number_id, pool_id, session_id, started_at, ends_at)
        SELECT pick.id, :pool_id, visit.id, :now, :until FROM pick, visit
        RETURNING id, number_id
    ){_MOVE}"""  # noqa: S608
).bindparams(
    bindparam("s_created_at", type_=UTCDateTime()),
    bindparam("s_last_seen_at", type_=UTCDateTime()),
    bindparam("s_site_key_id", type_=Integer()),
)


async def claim_for_new_session(
    db: AsyncSession,
    *,
    session_row: Mapping[str, object],
    pool_id: int,
    now: datetime,
    until: datetime,
    available_at: datetime,
) -> Held | None:
    """Store a new visitor session and lease it a number; None if no number was taken."""
    session_id = str(session_row["id"])
    if db.get_bind().dialect.name != "postgresql":
        await sessions.insert_row(db, session_row)
        return await claim(
            db,
            pool_id=pool_id,
            session_id=session_id,
            now=now,
            until=until,
            available_at=available_at,
        )
    params: dict[str, object] = {f"s_{c}": session_row.get(c) for c in _SESSION_COLUMNS}
    params.update(
        pool_id=pool_id, session_id=session_id, now=now, until=until, available_at=available_at
    )
    row = (await db.execute(_PG_CLAIM_NEW_SESSION, params)).first()
    if row is None:
        return None
    return Held(number_id=row[0], e164=row[1], lease_id=row[2], leased_until=until)


async def claim(
    db: AsyncSession,
    *,
    pool_id: int,
    session_id: str,
    now: datetime,
    until: datetime,
    available_at: datetime,
) -> Held | None:
    """Lease the least recently released free number of a pool, or None if none was taken."""
    params = {
        "pool_id": pool_id,
        "session_id": session_id,
        "now": now,
        "until": until,
        "available_at": available_at,
    }
    if db.get_bind().dialect.name == "postgresql":
        row = (await db.execute(_PG_CLAIM, params)).first()
        if row is None:
            return None
        return Held(number_id=row[0], e164=row[1], lease_id=row[2], leased_until=until)
    row = (await db.execute(_SQLITE_CLAIM, params)).first()
    if row is None:
        return None
    lease = Lease(
        number_id=row[0], pool_id=pool_id, session_id=session_id, started_at=now, ends_at=until
    )
    db.add(lease)
    await db.flush()
    return Held(number_id=row[0], e164=row[1], lease_id=lease.id, leased_until=until)


_RENEW_NUMBER = _typed(
    """
    UPDATE tracking_number
    SET leased_until = CASE WHEN active THEN :until ELSE leased_until END,
        available_at = CASE WHEN active THEN :available_at ELSE available_at END
    WHERE id = :number_id AND leased_session_id = :session_id AND leased_until > :now
    RETURNING e164, leased_until
    """
).columns(column("e164", String()), column("leased_until", UTCDateTime()))

_RENEW_LEASE = _typed("UPDATE lease SET ends_at = :until WHERE id = :lease_id")


async def renew(
    db: AsyncSession,
    *,
    pool_id: int,
    session_id: str,
    now: datetime,
    until: datetime,
    available_at: datetime,
) -> Held | None:
    """Extend the session's live lease in the pool; a retired number is not extended."""
    current = (
        await db.execute(
            select(Lease.id, Lease.number_id)
            .where(Lease.session_id == session_id, Lease.pool_id == pool_id, Lease.ends_at > now)
            .order_by(Lease.ends_at.desc())
            .limit(1)
        )
    ).first()
    if current is None:
        return None
    lease_id, number_id = current
    params = {
        "number_id": number_id,
        "session_id": session_id,
        "now": now,
        "until": until,
        "available_at": available_at,
    }
    row = (await db.execute(_RENEW_NUMBER, params)).first()
    if row is None:
        return None
    e164, leased_until = row
    await db.execute(_RENEW_LEASE, {"until": leased_until, "lease_id": lease_id})
    return Held(number_id=number_id, e164=e164, lease_id=lease_id, leased_until=leased_until)


async def for_session(db: AsyncSession, session_id: str) -> Sequence[tuple[Lease, str]]:
    """Every lease of a session with its number, newest first."""
    rows = await db.execute(
        select(Lease, TrackingNumber.e164)
        .join(TrackingNumber, TrackingNumber.id == Lease.number_id)
        .where(Lease.session_id == session_id)
        .order_by(Lease.started_at.desc())
    )
    return [(r[0], r[1]) for r in rows]


async def peak_concurrent(
    db: AsyncSession, *, pool_id: int, since: datetime, until: datetime
) -> int:
    """Most leases of the pool alive at one instant within [since, until)."""
    stmt = _typed(
        """
        SELECT COALESCE(MAX(running), 0) FROM (
            SELECT SUM(delta) OVER (ORDER BY at, delta ROWS UNBOUNDED PRECEDING) AS running
            FROM (
                SELECT CASE WHEN started_at < :since THEN :since ELSE started_at END AS at,
                       1 AS delta
                FROM lease WHERE pool_id = :pool_id AND ends_at > :since AND started_at < :until
                UNION ALL
                SELECT CASE WHEN ends_at > :until THEN :until ELSE ends_at END AS at, -1 AS delta
                FROM lease WHERE pool_id = :pool_id AND ends_at > :since AND started_at < :until
            ) AS events
        ) AS sweep
        """
    )
    return int(
        (await db.execute(stmt, {"pool_id": pool_id, "since": since, "until": until})).scalar_one()
    )


async def count_started(db: AsyncSession, *, pool_id: int, since: datetime, until: datetime) -> int:
    """Leases of the pool that began in [since, until)."""
    stmt = select(func.count()).where(
        Lease.pool_id == pool_id, Lease.started_at >= since, Lease.started_at < until
    )
    return int((await db.execute(stmt)).scalar_one())


# Seconds from a lease's start to its end, or to now for a lease still running. SQLite keeps
# timestamps as text, which julianday() reads to the millisecond; PostgreSQL subtracts them.
_HELD_SECONDS = {
    "sqlite": "(julianday(MIN(ends_at, :now)) - julianday(started_at)) * 86400.0",
    "postgresql": "EXTRACT(EPOCH FROM (LEAST(ends_at, :now) - started_at))",
}


async def held_seconds(
    db: AsyncSession, *, pool_id: int, since: datetime, until: datetime, now: datetime
) -> float:
    """Total seconds the leases of the pool begun in [since, until) held their number,
    counting a lease still running up to now; renewals extend a lease, not add one."""
    held = _HELD_SECONDS[db.get_bind().dialect.name]
    stmt = _typed(
        f"""
        SELECT COALESCE(SUM({held}), 0) FROM lease
        WHERE pool_id = :pool_id AND started_at >= :since AND started_at < :until
        """  # noqa: S608  (a constant fragment per dialect, no input)
    )
    params = {"pool_id": pool_id, "since": since, "until": until, "now": now}
    return float((await db.execute(stmt, params)).scalar_one())
