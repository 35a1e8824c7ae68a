"""Pools: create, read, update."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Pool


async def get_by_name(db: AsyncSession, name: str) -> Pool | None:
    """The pool with this name, if any."""
    return (await db.execute(select(Pool).where(Pool.name == name))).scalar_one_or_none()


async def list_all(db: AsyncSession) -> Sequence[Pool]:
    """Every pool, by name."""
    return (await db.execute(select(Pool).order_by(Pool.name))).scalars().all()


async def create(db: AsyncSession, *, now: datetime, **fields: Any) -> Pool:
    """Insert a pool and flush it."""
    pool = Pool(created_at=now, updated_at=now, **fields)
    db.add(pool)
    await db.flush()
    return pool


async def update(db: AsyncSession, pool: Pool, *, now: datetime, **fields: Any) -> Pool:
    """Change some fields of a pool and flush it."""
    for key, value in fields.items():
        setattr(pool, key, value)
    pool.updated_at = now
    await db.flush()
    return pool


async def name_of(db: AsyncSession, pool_id: int) -> str:
    """The name of the pool with this id."""
    return str(await db.scalar(select(Pool.name).where(Pool.id == pool_id)))
