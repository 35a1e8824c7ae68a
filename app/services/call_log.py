"""Read calls for the ops API: filtered pages and one call in full."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Call, Lease, VisitorSession
from app.db.repositories import calls, pools
from app.db.repositories.calls import CallFilter
from app.errors import InvalidInput, NotFound
from app.services import cursors

MAX_ID = 2**63 - 1


def utc(value: datetime | None, *, field: str) -> datetime | None:
    """A query's time in UTC; naive or unrepresentable times are the caller's error."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput(f"{field}: give a UTC offset, e.g. ...Z", field=field)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"{field}: out of range", field=field) from exc


def encode_cursor(call: Call) -> str:
    """An opaque cursor after this call."""
    return cursors.encode(call.started_at, call.id)


def _call_id(text: str) -> int:
    value = int(text)
    if not 0 < value < MAX_ID:
        raise ValueError("out of range")
    return value


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (started_at, id) a cursor points after."""
    return cursors.decode(cursor, _call_id)


async def page(
    db: AsyncSession,
    *,
    since: datetime | None,
    until: datetime | None,
    pool: str | None,
    attribution: str | None,
    source: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[tuple[Call, str | None]], str | None]:
    """Calls newest first, and the cursor of the next page (None at the end)."""
    if since is not None and until is not None and since >= until:
        raise InvalidInput("from must be before to", field="query.from")
    pool_id = None
    if pool is not None:
        found = await pools.get_by_name(db, pool)
        if found is None:
            raise InvalidInput(f"pool {pool!r} does not exist", field="query.pool")
        pool_id = found.id
    f = CallFilter(
        since=since, until=until, pool_id=pool_id, attribution=attribution, source=source
    )
    after = decode_cursor(cursor) if cursor else None
    rows = await calls.page(db, f=f, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1][0]) if more and rows else None


async def detail(
    db: AsyncSession, call_id: int
) -> tuple[Call, str | None, VisitorSession | None, Lease | None, str | None]:
    """One call with its pool name, session, lease and leased number."""
    found = await calls.get_detail(db, call_id)
    if found is None:
        raise NotFound(f"call {call_id} does not exist", field="call_id")
    return found
