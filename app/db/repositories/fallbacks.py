"""Fallback answers: record them and count them by reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, distinct, exists, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import FallbackEvent, Lease


async def record(
    db: AsyncSession, *, pool_id: int, session_id: str | None, reason: str, now: datetime
) -> None:
    """Remember that the fallback number was served, and why."""
    await db.execute(
        insert(FallbackEvent).values(
            pool_id=pool_id, session_id=session_id, reason=reason, occurred_at=now
        )
    )


async def count_by_reason(
    db: AsyncSession, *, pool_id: int, since: datetime, until: datetime
) -> dict[str, int]:
    """Fallbacks served by the pool in [since, until), per reason."""
    rows = await db.execute(
        select(FallbackEvent.reason, func.count())
        .where(
            FallbackEvent.pool_id == pool_id,
            FallbackEvent.occurred_at >= since,
            FallbackEvent.occurred_at < until,
        )
        .group_by(FallbackEvent.reason)
    )
    return {str(row[0]): int(row[1]) for row in rows}


async def turned_away(db: AsyncSession, *, pool_id: int, since: datetime, until: datetime) -> int:
    """Visits refused a number for want of one in [since, until) that got none later in the
    window either: demand the pool did not serve (bots are not demand)."""
    leased_later = exists().where(
        and_(
            Lease.session_id == FallbackEvent.session_id,
            Lease.pool_id == pool_id,
            Lease.started_at >= since,
            Lease.started_at < until,
        )
    )
    stmt = select(func.count(distinct(FallbackEvent.session_id))).where(
        FallbackEvent.pool_id == pool_id,
        FallbackEvent.occurred_at >= since,
        FallbackEvent.occurred_at < until,
        FallbackEvent.reason.in_(("pool_exhausted", "pool_empty")),
        FallbackEvent.session_id.is_not(None),
        ~leased_later,
    )
    return int((await db.execute(stmt)).scalar_one())
