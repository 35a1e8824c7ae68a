"""Tracking numbers of a pool: add, retire, count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Pool, TrackingNumber

_CHUNK = 1000  # keeps IN lists and multi-row inserts under SQLite's variable limit


@dataclass(frozen=True)
class Existing:
    """A number already known to the service."""

    e164: str
    pool_name: str
    active: bool


async def find_existing(db: AsyncSession, numbers: Sequence[str]) -> list[Existing]:
    """Which of these numbers are already stored, in any pool."""
    found: list[Existing] = []
    for start in range(0, len(numbers), _CHUNK):
        chunk = numbers[start : start + _CHUNK]
        rows = await db.execute(
            select(TrackingNumber.e164, Pool.name, TrackingNumber.active)
            .join(Pool, Pool.id == TrackingNumber.pool_id)
            .where(TrackingNumber.e164.in_(chunk))
        )
        found.extend(Existing(e164=r[0], pool_name=r[1], active=r[2]) for r in rows)
    return found


async def insert_new(
    db: AsyncSession, *, pool_id: int, numbers: Sequence[str], now: datetime
) -> None:
    """Insert numbers that were never stored; they are free from now on."""
    for start in range(0, len(numbers), _CHUNK):
        rows = [
            {"pool_id": pool_id, "e164": n, "active": True, "available_at": now, "created_at": now}
            for n in numbers[start : start + _CHUNK]
        ]
        await db.execute(insert(TrackingNumber), rows)


async def reactivate(
    db: AsyncSession, *, pool_id: int, numbers: Sequence[str], now: datetime
) -> None:
    """Bring retired numbers back into a pool; a lease still running keeps its rest time."""
    for start in range(0, len(numbers), _CHUNK):
        chunk = numbers[start : start + _CHUNK]
        await db.execute(
            update(TrackingNumber)
            .where(TrackingNumber.e164.in_(chunk), TrackingNumber.active.is_(False))
            .values(pool_id=pool_id, active=True, retired_at=None)
        )
        await db.execute(
            update(TrackingNumber)
            .where(TrackingNumber.e164.in_(chunk), TrackingNumber.available_at < now)
            .values(available_at=now)
        )


async def retire(db: AsyncSession, *, pool_id: int, e164: str, now: datetime) -> bool:
    """Stop leasing a number; its current lease runs to its end. False if not active here."""
    result = await db.execute(
        update(TrackingNumber)
        .where(
            TrackingNumber.pool_id == pool_id,
            TrackingNumber.e164 == e164,
            TrackingNumber.active.is_(True),
        )
        .values(active=False, retired_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


async def count_active(db: AsyncSession, pool_id: int) -> int:
    """How many numbers of the pool can be leased."""
    stmt = select(func.count()).where(
        TrackingNumber.pool_id == pool_id, TrackingNumber.active.is_(True)
    )
    return int((await db.execute(stmt)).scalar_one())


async def count_leased(db: AsyncSession, pool_id: int, now: datetime) -> int:
    """How many numbers of the pool are held by a live lease now."""
    stmt = select(func.count()).where(
        TrackingNumber.pool_id == pool_id, TrackingNumber.leased_until > now
    )
    return int((await db.execute(stmt)).scalar_one())


async def any_free(db: AsyncSession, pool_id: int, now: datetime) -> bool:
    """Whether some number of the pool could be claimed now."""
    stmt = (
        select(TrackingNumber.id)
        .where(
            TrackingNumber.pool_id == pool_id,
            TrackingNumber.active.is_(True),
            TrackingNumber.available_at <= now,
        )
        .limit(1)
    )
    return (await db.execute(stmt)).first() is not None
