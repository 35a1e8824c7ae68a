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
# Derived from the context by the services (channel and landing page, for reports).
DERIVED_FIELDS = ("source", "medium", "campaign", "landing_page")


async def create(
    db: AsyncSession,
    *,
    session_id: str,
    now: datetime,
    site_key_id: int | None,
    fields: Mapping[str, str | None],
) -> None:
    """Insert a new visitor session."""
    await insert_row(
        db, new_row(session_id=session_id, now=now, site_key_id=site_key_id, fields=fields)
    )


async def insert_row(db: AsyncSession, row: Mapping[str, object]) -> None:
    """Insert a session row made by new_row()."""
    await db.execute(_INSERT, dict(row))


# One statement for every new session (all columns bound), compiled once and then reused:
# building an ORM insert with per-request .values() cost more CPU than the database work.
_INSERT = insert(VisitorSession.metadata.tables["visitor_session"])


def new_row(
    *, session_id: str, now: datetime, site_key_id: int | None, fields: Mapping[str, str | None]
) -> dict[str, object]:
    """Every column of a new session row."""
    row: dict[str, object] = {
        key: fields.get(key) for key in (*CONTEXT_FIELDS, *PROSPECT_FIELDS, *DERIVED_FIELDS)
    }
    row.update(id=session_id, created_at=now, last_seen_at=now, site_key_id=site_key_id)
    return row


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


async def set_derived(db: AsyncSession, session_id: str, values: Mapping[str, str | None]) -> None:
    """Store the session's derived report columns."""
    derived = {key: values.get(key) for key in DERIVED_FIELDS}
    await db.execute(
        update(VisitorSession).where(VisitorSession.id == session_id).values(**derived)
    )
