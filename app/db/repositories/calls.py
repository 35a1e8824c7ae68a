"""Calls and their events: store, look up for attribution, list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, bindparam, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import UTCDateTime
from app.db.models import Call, CallEvent, Lease, Pool, TrackingNumber, VisitorSession

# What a visit's marketing channel is made of (app.services.marketing reads these).
CHANNEL_FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "gclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "fbclid",
    "referrer",
)


class NumberRoute(NamedTuple):
    """A tracking number and what its pool says about calls to it."""

    number_id: int
    e164: str
    active: bool
    pool_id: int
    pool_name: str
    destination: str
    match_window_seconds: int
    whisper: bool
    record_calls: bool
    source: str | None
    medium: str | None
    campaign: str | None


_ROUTE = select(
    TrackingNumber.id,
    TrackingNumber.e164,
    TrackingNumber.active,
    Pool.id,
    Pool.name,
    Pool.destination,
    Pool.match_window_seconds,
    Pool.whisper,
    Pool.record_calls,
    Pool.source,
    Pool.medium,
    Pool.campaign,
).join(Pool, Pool.id == TrackingNumber.pool_id)


def _route(row: Sequence[Any]) -> NumberRoute:
    return NumberRoute(*row)


# The voice webhook's statements are built once: building a statement costs more Python
# than running it, and Core statements on the session's connection skip the ORM's layer.
_ROUTE_OF = _ROUTE.where(TrackingNumber.e164 == bindparam("e164"))


async def route_of(db: AsyncSession, e164: str) -> NumberRoute | None:
    """The number (active or retired) and its pool's call settings."""
    conn = await db.connection()
    row = (await conn.execute(_ROUTE_OF, {"e164": e164})).first()
    return _route(row) if row is not None else None


async def routes_after(db: AsyncSession, *, after_id: int, limit: int) -> list[NumberRoute]:
    """Numbers (retired ones too: they still ring) with their pools' settings, by id."""
    stmt = _ROUTE.where(TrackingNumber.id > after_id).order_by(TrackingNumber.id).limit(limit)
    return [_route(row) for row in await db.execute(stmt)]


@dataclass(frozen=True)
class LeaseAt:
    """The lease that may cover a call, its pool's match window, and its visit."""

    lease_id: int
    ends_at: datetime
    match_window_seconds: int
    session_id: str
    session: VisitorSession | None


_LEASE_AT = (
    select(
        Lease.id,
        Lease.ends_at,
        Pool.match_window_seconds,
        Lease.session_id,
        *[getattr(VisitorSession, name) for name in CHANNEL_FIELDS],
    )
    .join(Pool, Pool.id == Lease.pool_id)
    .outerjoin(VisitorSession, VisitorSession.id == Lease.session_id)
    .where(
        Lease.number_id == bindparam("number_id"),
        Lease.started_at <= bindparam("at", type_=UTCDateTime()),
    )
    .order_by(Lease.started_at.desc())
    .limit(1)
)


async def lease_at(db: AsyncSession, *, number_id: int, at: datetime) -> LeaseAt | None:
    """The latest lease of the number that started at or before `at`, with the match window
    of the pool it was leased from (a number may have moved pools since) and its visit.

    Leases of one number never overlap, so this is the only one that can cover `at`.
    """
    conn = await db.connection()
    row = (await conn.execute(_LEASE_AT, {"number_id": number_id, "at": at})).first()
    if row is None:
        return None
    channel = dict(zip(CHANNEL_FIELDS, row[4:], strict=True))
    return LeaseAt(
        lease_id=int(row[0]),
        ends_at=row[1],
        match_window_seconds=int(row[2]),
        session_id=str(row[3]),
        # A detached copy carrying only what the channel needs (no ORM identity to track).
        session=VisitorSession(id=row[3], **channel),
    )


async def latest_session_of_caller(
    db: AsyncSession, *, caller: str, before: datetime
) -> tuple[str, datetime] | None:
    """The session most recently tied to this caller: by an earlier call or a form's phone."""
    by_call = (
        await db.execute(
            select(Call.session_id, Call.started_at)
            .where(
                Call.from_number == caller,
                Call.started_at < before,
                Call.session_id.is_not(None),
            )
            .order_by(Call.started_at.desc())
            .limit(1)
        )
    ).first()
    by_form = (
        await db.execute(
            select(VisitorSession.id, VisitorSession.last_seen_at)
            .where(VisitorSession.phone == caller, VisitorSession.created_at <= before)
            .order_by(VisitorSession.last_seen_at.desc())
            .limit(1)
        )
    ).first()
    found = [(str(r[0]), r[1]) for r in (by_call, by_form) if r is not None]
    return max(found, key=lambda item: item[1]) if found else None


_CALLED_BEFORE = select(
    exists().where(
        Call.from_number == bindparam("caller"),
        Call.started_at < bindparam("before", type_=UTCDateTime()),
    )
)


async def called_before(db: AsyncSession, *, caller: str, before: datetime) -> bool:
    """Whether this caller made any call that started before `before`."""
    conn = await db.connection()
    result = await conn.execute(_CALLED_BEFORE, {"caller": caller, "before": before})
    return bool(result.scalar_one())


def _insert_unless_there(model: type[Any], *keys: str) -> dict[str, Any]:
    """INSERT ... ON CONFLICT (keys) DO NOTHING, built once per dialect."""
    return {
        dialect: module.insert(model).on_conflict_do_nothing(index_elements=list(keys))
        for dialect, module in (("postgresql", postgresql), ("sqlite", sqlite))
    }


async def _inserted(db: AsyncSession, stmts: dict[str, Any], values: Mapping[str, Any]) -> bool:
    conn = await db.connection()
    result = await conn.execute(stmts[conn.dialect.name], dict(values))
    return bool(result.rowcount)


_INSERT_CALL = _insert_unless_there(Call, "provider", "provider_call_id")
_INSERT_EVENT = _insert_unless_there(CallEvent, "provider_call_id", "event_key")


async def insert_call(db: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Store a new call; False when the provider's call id is already stored."""
    return await _inserted(db, _INSERT_CALL, values)


async def fill_forwarded_to(
    db: AsyncSession, *, provider: str, call_id: str, forwarded_to: str
) -> None:
    """Set where the call was forwarded, unless already known."""
    await db.execute(
        update(Call)
        .where(
            Call.provider == provider,
            Call.provider_call_id == call_id,
            Call.forwarded_to.is_(None),
        )
        .values(forwarded_to=forwarded_to)
    )


async def attribution_of(db: AsyncSession, *, provider: str, call_id: str) -> str | None:
    """How a stored call was attributed, if it is stored."""
    stmt = select(Call.attribution).where(
        Call.provider == provider, Call.provider_call_id == call_id
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def get_for_update(db: AsyncSession, *, provider: str, call_id: str) -> Call | None:
    """The call with this provider id, locked until the transaction ends."""
    stmt = (
        select(Call)
        .where(Call.provider == provider, Call.provider_call_id == call_id)
        .with_for_update()
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def insert_event(
    db: AsyncSession, *, call_id: str, key: str, kind: str, status: str | None, now: datetime
) -> bool:
    """Remember an event; False when the same event was applied before."""
    values = {
        "provider_call_id": call_id,
        "event_key": key,
        "kind": kind,
        "status": status,
        "received_at": now,
    }
    return await _inserted(db, _INSERT_EVENT, values)


@dataclass(frozen=True)
class CallFilter:
    """What to list of the calls."""

    since: datetime | None = None
    until: datetime | None = None
    pool_id: int | None = None
    attribution: str | None = None
    source: str | None = None


def _conditions(f: CallFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.since is not None:
        conditions.append(Call.started_at >= f.since)
    if f.until is not None:
        conditions.append(Call.started_at < f.until)
    if f.pool_id is not None:
        conditions.append(Call.pool_id == f.pool_id)
    if f.attribution is not None:
        conditions.append(Call.attribution == f.attribution)
    if f.source is not None:
        conditions.append(Call.source == f.source)
    return conditions


async def page(
    db: AsyncSession, *, f: CallFilter, after: tuple[datetime, int] | None, limit: int
) -> Sequence[tuple[Call, str | None]]:
    """Calls newest first with their pool's name, after a (started_at, id) cursor."""
    stmt = select(Call, Pool.name).outerjoin(Pool, Pool.id == Call.pool_id).where(*_conditions(f))
    if after is not None:
        at, call_id = after
        stmt = stmt.where(or_(Call.started_at < at, and_(Call.started_at == at, Call.id < call_id)))
    stmt = stmt.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit)
    return [(row[0], row[1]) for row in await db.execute(stmt)]


async def get_detail(
    db: AsyncSession, call_id: int
) -> tuple[Call, str | None, VisitorSession | None, Lease | None, str | None] | None:
    """A call with its pool's name, its session, its lease and the leased number."""
    stmt = (
        select(Call, Pool.name, VisitorSession, Lease, TrackingNumber.e164)
        .outerjoin(Pool, Pool.id == Call.pool_id)
        .outerjoin(VisitorSession, VisitorSession.id == Call.session_id)
        .outerjoin(Lease, Lease.id == Call.lease_id)
        .outerjoin(TrackingNumber, TrackingNumber.id == Call.number_id)
        .where(Call.id == call_id)
    )
    row = (await db.execute(stmt)).first()
    if row is None:
        return None
    return row[0], row[1], row[2], row[3], row[4]


async def get_by_provider_id(db: AsyncSession, *, provider: str, call_id: str) -> Call | None:
    """The call with this provider id, if stored."""
    stmt = select(Call).where(Call.provider == provider, Call.provider_call_id == call_id)
    return (await db.execute(stmt)).scalar_one_or_none()
