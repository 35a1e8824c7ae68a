"""Click-to-call: lease an ephemeral tracking number to a visitor session."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import fallbacks, leases, numbers, sessions
from app.services import outbox, visits
from app.services.pools import PoolConfig

# A claim can come back empty while numbers are free (a concurrent claim moved the row it
# was about to take); that is retried, never reported as an exhausted pool.
CLAIM_ATTEMPTS = 4


@dataclass(frozen=True)
class Assignment:
    """The number a visitor is shown, and whether it is tracked."""

    e164: str
    session_id: str | None
    expires_at: datetime | None
    tracked: bool
    renewed: bool = False
    fallback_reason: str | None = None


def new_session_id() -> str:
    """An unguessable visitor session id."""
    return secrets.token_urlsafe(18)


async def assign(
    db: AsyncSession,
    *,
    pool: PoolConfig,
    session_id: str | None,
    fields: Mapping[str, str | None],
    site_key_id: int | None,
    is_bot: bool,
    now: datetime,
) -> Assignment:
    """Renew the session's lease, or lease it a free number, or serve the fallback."""
    if is_bot:
        # Crawlers would drain the pool and pile up sessions: no session, no lease.
        return await fallback(db, pool=pool, session_id=None, reason="bot", now=now)

    until = now + timedelta(seconds=pool.lease_ttl_seconds)
    # A released number rests for the cooldown, so late callers still match its last visitor.
    available_at = until + timedelta(seconds=pool.cooldown_seconds)

    async def claim(sid: str) -> leases.Held | None:
        return await leases.claim(
            db, pool_id=pool.id, session_id=sid, now=now, until=until, available_at=available_at
        )

    if session_id is not None and await sessions.touch(
        db, session_id=session_id, now=now, fields=fields
    ):
        await visits.refresh_channel(db, session_id, fields)
        held = await leases.renew(
            db,
            pool_id=pool.id,
            session_id=session_id,
            now=now,
            until=until,
            available_at=available_at,
        )
        if held is not None:
            return Assignment(held.e164, session_id, held.leased_until, tracked=True, renewed=True)
        held = await claim(session_id)
    else:
        # An unknown id (expired storage, another database) starts a new visit, never an error.
        session_id = new_session_id()
        row = sessions.new_row(
            session_id=session_id, now=now, site_key_id=site_key_id, fields=fields
        )
        held = await leases.claim_for_new_session(
            db, session_row=row, pool_id=pool.id, now=now, until=until, available_at=available_at
        )
        await outbox.session_created(db, session_id, now=now)
    for _ in range(CLAIM_ATTEMPTS - 1):
        if held is not None or not await numbers.any_free(db, pool.id, now):
            break
        held = await claim(session_id)
    if held is not None:
        return Assignment(held.e164, session_id, held.leased_until, tracked=True)
    reason = "pool_exhausted" if await numbers.count_active(db, pool.id) else "pool_empty"
    return await fallback(db, pool=pool, session_id=session_id, reason=reason, now=now)


async def fallback(
    db: AsyncSession, *, pool: PoolConfig, session_id: str | None, reason: str, now: datetime
) -> Assignment:
    """Serve the pool's fallback number and remember why."""
    await fallbacks.record(db, pool_id=pool.id, session_id=session_id, reason=reason, now=now)
    return Assignment(pool.fallback_number, session_id, None, tracked=False, fallback_reason=reason)
