"""Dashboard aggregates: calls per local day and source, counted in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db.models import Call


@dataclass(frozen=True)
class DayCount:
    """Calls of one day (an index into the window's days) credited to one source."""

    day: int
    source: str | None
    calls: int
    answered: int


def _day_index(
    column: ColumnElement[Any], edges: Sequence[datetime], low: int, high: int
) -> ColumnElement[int]:
    # The local day of an instant, as a binary search over the days' starting instants in
    # UTC: about log2(days) comparisons a row, on every database, with no time zone
    # arithmetic in SQL (SQLite has none; the edges already carry the zone's DST changes).
    if low == high:
        return literal(low, Integer)
    middle = (low + high + 1) // 2
    return case(
        (column < edges[middle], _day_index(column, edges, low, middle - 1)),
        else_=_day_index(column, edges, middle, high),
    )


async def calls_by_day(db: AsyncSession, edges: Sequence[datetime]) -> list[DayCount]:
    """Calls that started within [edges[0], edges[-1]), per day and source; day i runs
    from edges[i] to edges[i + 1]. Answered as the attribution report counts it."""
    answered = or_(Call.answered_at.is_not(None), Call.talk_seconds > 0)
    days = len(edges) - 1
    rows = (
        select(
            _day_index(Call.started_at.expression, edges, 0, days - 1).label("day"),
            Call.source.label("source"),
            case((answered, 1), else_=0).label("answered"),
        )
        .where(Call.started_at >= edges[0], Call.started_at < edges[-1])
        .subquery()
    )
    # Grouped outside: PostgreSQL would not match the CASE in GROUP BY to the one selected,
    # their parameters being numbered apart.
    stmt = select(rows.c.day, rows.c.source, func.count(), func.sum(rows.c.answered)).group_by(
        rows.c.day, rows.c.source
    )
    found: dict[tuple[int, str | None], DayCount] = {}
    for day, source, count, answered_count in await db.execute(stmt):
        key = (int(day), source or None)  # '' and NULL are both "no source", as in reports
        before = found.get(key)
        calls, done = int(count), int(answered_count or 0)
        if before is not None:
            calls, done = calls + before.calls, done + before.answered
        found[key] = DayCount(day=key[0], source=key[1], calls=calls, answered=done)
    return sorted(found.values(), key=lambda c: (c.day, c.source or ""))
