"""Web-To-Call credentials: who each short-lived subscriber stands for, and its clean-up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Call, Pool, WebCredential


async def add(db: AsyncSession, **fields: object) -> WebCredential:
    """Store a credential (before the platform is asked to create its subscriber)."""
    row = WebCredential(**fields)
    db.add(row)
    await db.flush()
    return row


async def issued_since(
    db: AsyncSession, session_id: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many credentials the session got since `since`, and the oldest of them."""
    row = (
        await db.execute(
            select(func.count(), func.min(WebCredential.created_at)).where(
                WebCredential.session_id == session_id, WebCredential.created_at >= since
            )
        )
    ).one()
    return int(row[0]), row[1]


@dataclass(frozen=True)
class WebCaller:
    """What a subscriber's call needs: its visit, and its pool's forwarding settings."""

    credential_id: int
    session_id: str
    pool_id: int
    destination: str
    caller_id: str
    record_calls: bool


async def caller_of(db: AsyncSession, msisdn: str) -> WebCaller | None:
    """The visit and pool behind a subscriber identity, whatever its expiry."""
    row = (
        await db.execute(
            select(
                WebCredential.id,
                WebCredential.session_id,
                Pool.id,
                Pool.destination,
                Pool.fallback_number,
                Pool.record_calls,
            )
            .join(Pool, Pool.id == WebCredential.pool_id)
            .where(WebCredential.msisdn == msisdn)
        )
    ).first()
    if row is None:
        return None
    return WebCaller(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


async def set_call(db: AsyncSession, credential_id: int, call_id: str) -> None:
    """Remember the call made with a credential (the first one)."""
    await db.execute(
        update(WebCredential)
        .where(WebCredential.id == credential_id, WebCredential.call_id.is_(None))
        .values(call_id=call_id)
        .execution_options(synchronize_session=False)
    )


async def to_delete(db: AsyncSession, *, now: datetime, limit: int) -> Sequence[str]:
    """Subscribers whose call has ended, or that expired with no call under way."""
    call_ended = (
        select(Call.id)
        .where(Call.provider_call_id == WebCredential.call_id, Call.ended_at.is_not(None))
        .exists()
    )
    stmt = (
        select(WebCredential.msisdn)
        .where(
            WebCredential.deleted_at.is_(None),
            or_(
                call_ended,
                (WebCredential.expires_at <= now) & WebCredential.call_id.is_(None),
            ),
        )
        .limit(limit)
    )
    return (await db.scalars(stmt)).all()


async def mark_deleted(db: AsyncSession, msisdn: str, now: datetime) -> None:
    """Note that the platform no longer has this subscriber."""
    await db.execute(
        update(WebCredential)
        .where(WebCredential.msisdn == msisdn)
        .values(deleted_at=now)
        .execution_options(synchronize_session=False)
    )
