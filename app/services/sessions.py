"""Read a visitor session with its leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Lease, VisitorSession
from app.db.repositories import leases, pools, sessions, site_keys
from app.errors import NotFound


async def get_with_leases(
    db: AsyncSession, session_id: str
) -> tuple[VisitorSession, str | None, list[tuple[Lease, str, str]]]:
    """The session, the name of its site key, and its leases with number and pool name."""
    visit = await sessions.get(db, session_id)
    if visit is None:
        raise NotFound("no such session", field="session_id")
    key_name = None
    if visit.site_key_id is not None:
        key = await site_keys.get(db, visit.site_key_id)
        key_name = key.name if key else None
    names = {p.id: p.name for p in await pools.list_all(db)}
    rows = await leases.for_session(db, session_id)
    return visit, key_name, [(lease, e164, names.get(lease.pool_id, "")) for lease, e164 in rows]


def is_live(lease: Lease, now: datetime) -> bool:
    """Whether the lease still holds its number."""
    return lease.started_at <= now < lease.ends_at
