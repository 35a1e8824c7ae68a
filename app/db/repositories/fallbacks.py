"""Fallback answers: record them and count them by reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import FallbackEvent


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
