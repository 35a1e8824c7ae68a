"""Visitor sessions: create, refresh, read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import VisitorSession

# First touch wins for marketing context; the latest prospect details win.
CONTEXT_FIELDS = (
    "landing_url",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "fbclid",
    "ga_client_id",
    "user_agent",
    "ip_hash",
)
PROSPECT_FIELDS = ("email", "phone", "fullname")


async def create(
    db: AsyncSession,
    *,
    session_id: str,
    now: datetime,
    site_key_id: int | None,
    fields: Mapping[str, str | None],
) -> None:
    """Insert a new visitor session."""
    values = {k: v for k, v in fields.items() if k in CONTEXT_FIELDS or k in PROSPECT_FIELDS}
    await db.execute(
        insert(VisitorSession).values(
            id=session_id, created_at=now, last_seen_at=now, site_key_id=site_key_id, **values
        )
    )


async def touch(
    db: AsyncSession, *, session_id: str, now: datetime, fields: Mapping[str, str | None]
) -> bool:
    """Record a new visit of a known session; False when the session is unknown.

    The UPDATE also takes the session's row lock, so two requests of one session (two tabs)
    are served one after the other and cannot each lease a number.
    """
    values: dict[str, object] = {"last_seen_at": now}
    for key in CONTEXT_FIELDS:
        if fields.get(key) is not None:
            values[key] = func.coalesce(getattr(VisitorSession, key), fields[key])
    for key in PROSPECT_FIELDS:
        if fields.get(key) is not None:
            values[key] = fields[key]
    result = await db.execute(
        update(VisitorSession).where(VisitorSession.id == session_id).values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


async def get(db: AsyncSession, session_id: str) -> VisitorSession | None:
    """The session with this id, if any."""
    stmt = select(VisitorSession).where(VisitorSession.id == session_id)
    return (await db.execute(stmt)).scalar_one_or_none()
