"""Report aggregates: each query groups one kind of record by the report's dimension."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Select, case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db.models import Call, CallbackRequest, Lease, MediaSpend, Pool, VisitorSession

Dimension = Literal["source", "medium", "campaign", "landing_page", "pool"]
Rows = Select[*tuple[Any, ...]]
Key = str | None


@dataclass
class CallFigures:
    """One group's calls."""

    calls: int = 0
    first_time: int = 0
    answered: int = 0
    talk_seconds: int = 0


def _session_key(dimension: Dimension) -> ColumnElement[Any]:
    column: ColumnElement[Any] = getattr(VisitorSession, dimension)
    return column


def _key(value: object) -> Key:
    return None if value is None or value == "" else str(value)


async def _grouped(db: AsyncSession, stmt: Rows) -> dict[Key, int]:
    counts: dict[Key, int] = {}
    for key, count in (await db.execute(stmt)).all():
        counts[_key(key)] = counts.get(_key(key), 0) + int(count)
    return counts


async def sessions(
    db: AsyncSession, dimension: Dimension, start: datetime, end: datetime
) -> dict[Key, int]:
    """Visits that began in [start, end); by pool, the visits that leased from it then."""
    if dimension == "pool":
        stmt: Rows = (
            select(Pool.name, func.count(distinct(Lease.session_id)))
            .select_from(Lease)
            .join(Pool, Pool.id == Lease.pool_id)
            .where(Lease.started_at >= start, Lease.started_at < end)
            .group_by(Pool.name)
        )
        return await _grouped(db, stmt)
    key = _session_key(dimension)
    stmt = (
        select(key, func.count())
        .where(VisitorSession.created_at >= start, VisitorSession.created_at < end)
        .group_by(key)
    )
    return await _grouped(db, stmt)


async def leases(
    db: AsyncSession, dimension: Dimension, start: datetime, end: datetime
) -> dict[Key, int]:
    """Tracking numbers leased (leases started) in [start, end)."""
    key = Pool.name.expression if dimension == "pool" else _session_key(dimension)
    stmt = (
        select(key, func.count())
        .select_from(Lease)
        .where(Lease.started_at >= start, Lease.started_at < end)
        .group_by(key)
    )
    if dimension == "pool":
        stmt = stmt.join(Pool, Pool.id == Lease.pool_id)
    else:
        stmt = stmt.join(VisitorSession, VisitorSession.id == Lease.session_id)
    return await _grouped(db, stmt)


def _call_key(dimension: Dimension) -> ColumnElement[Any]:
    if dimension == "pool":
        return Pool.name.expression
    if dimension == "landing_page":
        return VisitorSession.landing_page.expression
    column: ColumnElement[Any] = getattr(Call, dimension)
    return column


async def calls(
    db: AsyncSession, dimension: Dimension, start: datetime, end: datetime
) -> dict[Key, CallFigures]:
    """Calls that started in [start, end), by the channel they were credited to."""
    key = _call_key(dimension)
    answered = or_(Call.answered_at.is_not(None), Call.talk_seconds > 0)
    stmt = (
        select(
            key,
            func.count(),
            func.coalesce(func.sum(case((Call.first_time.is_(True), 1), else_=0)), 0),
            func.coalesce(func.sum(case((answered, 1), else_=0)), 0),
            func.coalesce(func.sum(case((answered, func.coalesce(Call.talk_seconds, 0)))), 0),
        )
        .select_from(Call)
        .where(Call.started_at >= start, Call.started_at < end)
        .group_by(key)
    )
    if dimension == "pool":
        stmt = stmt.outerjoin(Pool, Pool.id == Call.pool_id)
    elif dimension == "landing_page":
        stmt = stmt.outerjoin(VisitorSession, VisitorSession.id == Call.session_id)
    figures: dict[Key, CallFigures] = {}
    for value, count, first, answered_count, talk in (await db.execute(stmt)).all():
        group = figures.setdefault(_key(value), CallFigures())
        group.calls += int(count)
        group.first_time += int(first)
        group.answered += int(answered_count)
        group.talk_seconds += int(talk)
    return figures


async def callbacks(
    db: AsyncSession, dimension: Dimension, start: datetime, end: datetime
) -> dict[Key, tuple[int, int]]:
    """Callbacks requested in [start, end), and how many of them were completed."""
    key = Pool.name.expression if dimension == "pool" else _session_key(dimension)
    completed = func.sum(case((CallbackRequest.status == "completed", 1), else_=0))
    stmt = (
        select(key, func.count(), func.coalesce(completed, 0))
        .select_from(CallbackRequest)
        .where(CallbackRequest.created_at >= start, CallbackRequest.created_at < end)
        .group_by(key)
    )
    if dimension == "pool":
        stmt = stmt.join(Pool, Pool.id == CallbackRequest.pool_id)
    else:
        stmt = stmt.outerjoin(VisitorSession, VisitorSession.id == CallbackRequest.session_id)
    found: dict[Key, tuple[int, int]] = {}
    for value, count, done in (await db.execute(stmt)).all():
        before = found.get(_key(value), (0, 0))
        found[_key(value)] = (before[0] + int(count), before[1] + int(done))
    return found


async def spend_currencies(db: AsyncSession, first: date, last: date) -> list[str]:
    """The currencies spend was imported in for these days."""
    stmt = (
        select(MediaSpend.currency)
        .where(MediaSpend.day >= first, MediaSpend.day <= last)
        .distinct()
        .order_by(MediaSpend.currency)
    )
    return [str(c) for c in (await db.execute(stmt)).scalars()]


async def spend(
    db: AsyncSession, dimension: Dimension, first: date, last: date, currency: str
) -> Mapping[Key, int]:
    """Spend in micros of `currency` for days first..last, by source, medium or campaign."""
    if dimension not in ("source", "medium", "campaign"):
        return {}  # spend is bought by channel, not by page or pool
    key: ColumnElement[Any] = getattr(MediaSpend, dimension)
    stmt: Rows = (
        select(key, func.sum(MediaSpend.cost_micros))
        .where(MediaSpend.day >= first, MediaSpend.day <= last, MediaSpend.currency == currency)
        .group_by(key)
    )
    return await _grouped(db, stmt)
