"""Site keys of website backends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import SiteKey


async def create(
    db: AsyncSession, *, name: str, key_hash: str, key_prefix: str, now: datetime
) -> SiteKey:
    """Store a new key (only its hash)."""
    key = SiteKey(name=name, key_hash=key_hash, key_prefix=key_prefix, created_at=now)
    db.add(key)
    await db.flush()
    return key


async def find_live(db: AsyncSession, key_hash: str) -> SiteKey | None:
    """The unrevoked key with this hash, if any."""
    stmt = select(SiteKey).where(SiteKey.key_hash == key_hash, SiteKey.revoked_at.is_(None))
    return (await db.execute(stmt)).scalar_one_or_none()


async def list_all(db: AsyncSession) -> Sequence[SiteKey]:
    """Every key, oldest first."""
    return (await db.execute(select(SiteKey).order_by(SiteKey.id))).scalars().all()


async def get(db: AsyncSession, key_id: int) -> SiteKey | None:
    """The key with this id, if any."""
    return await db.get(SiteKey, key_id)
