"""Callback requests and their attempts: the queue's SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db.models import (
    CALLBACK_ACTIVE_SQL,
    CALLBACK_LIVE_ATTEMPT_SQL,
    CallbackAttempt,
    CallbackRequest,
    Pool,
)

_INSERT = {
    dialect: module.insert(CallbackRequest).on_conflict_do_nothing(
        index_elements=["phone"], index_where=CALLBACK_ACTIVE_SQL
    )
    for dialect, module in (("postgresql", postgresql), ("sqlite", sqlite))
}


async def insert_unless_pending(db: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Queue a request; False when the number already has a pending one."""
    conn = await db.connection()
    result = await conn.execute(_INSERT[conn.dialect.name], dict(values))
    return bool(result.rowcount)


async def pending_for_phone(db: AsyncSession, phone: str) -> CallbackRequest | None:
    """The number's pending request, if any."""
    # The partial index's own predicate, written the same way, so the planner can use it.
    stmt = select(CallbackRequest).where(CallbackRequest.phone == phone, CALLBACK_ACTIVE_SQL)
    return (await db.execute(stmt)).scalar_one_or_none()


async def get(db: AsyncSession, request_id: str) -> CallbackRequest | None:
    """The request with this id, if any."""
    return await db.get(CallbackRequest, request_id)


async def get_for_update(db: AsyncSession, request_id: str) -> CallbackRequest | None:
    """The request, row-locked until the transaction ends (PostgreSQL)."""
    stmt = (
        select(CallbackRequest)
        .where(CallbackRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def claim_due(
    db: AsyncSession, *, now: datetime, until: datetime, worker: str, token: str, limit: int
) -> list[str]:
    """Claim up to `limit` due requests for `worker`; their ids, oldest due first.

    SKIP LOCKED lets workers on several machines share the queue without waiting on each
    other; SQLite has one writer at a time, so the same statement is safe there without it.
    """
    conn = await db.connection()
    due = (
        select(CallbackRequest.id)
        .where(CALLBACK_ACTIVE_SQL, CallbackRequest.next_attempt_at <= now)
        .order_by(CallbackRequest.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(CallbackRequest)
        .where(CallbackRequest.id.in_(due.scalar_subquery()))
        .values(
            claimed_by=worker,
            claim_token=token,
            claimed_until=until,
            next_attempt_at=until,
        )
        .returning(CallbackRequest.id, CallbackRequest.next_attempt_at)
        .execution_options(synchronize_session=False)
    )
    rows = (await db.execute(stmt)).all()
    return [row[0] for row in sorted(rows, key=lambda r: r[1])]


async def release_claims_of(db: AsyncSession, *, worker: str, at: datetime) -> int:
    """Hand back every request `worker` still holds, due at `at`."""
    stmt = (
        update(CallbackRequest)
        .where(CallbackRequest.claimed_by == worker)
        .values(claimed_by=None, claim_token=None, claimed_until=None, next_attempt_at=at)
        .execution_options(synchronize_session=False)
    )
    result = await db.execute(stmt)
    return int(getattr(result, "rowcount", 0))


async def pool_of(db: AsyncSession, pool_id: int) -> Pool:
    """The request's pool."""
    pool = await db.get(Pool, pool_id)
    assert pool is not None  # a foreign key
    return pool


async def add_attempt(db: AsyncSession, **values: Any) -> CallbackAttempt:
    """Record an attempt and flush it, so it has an id before anything is dialled."""
    attempt = CallbackAttempt(**values)
    db.add(attempt)
    await db.flush()
    return attempt


async def attempt_for_update(db: AsyncSession, attempt_id: int) -> CallbackAttempt | None:
    """The attempt, re-read from the database."""
    stmt = (
        select(CallbackAttempt)
        .where(CallbackAttempt.id == attempt_id)
        .execution_options(populate_existing=True)
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def current_attempt(db: AsyncSession, request: CallbackRequest) -> CallbackAttempt | None:
    """The attempt the request is waiting on, if any, re-read from the database."""
    if request.current_attempt_id is None:
        return None
    return await attempt_for_update(db, request.current_attempt_id)


async def attempts_of(db: AsyncSession, request_id: str) -> Sequence[CallbackAttempt]:
    """A request's attempts, first first."""
    stmt = (
        select(CallbackAttempt)
        .where(CallbackAttempt.request_id == request_id)
        .order_by(CallbackAttempt.id)
    )
    return (await db.execute(stmt)).scalars().all()


@dataclass(frozen=True)
class RequestFilter:
    """What the ops listing filters on."""

    since: datetime | None = None
    until: datetime | None = None
    pool_id: int | None = None
    status: str | None = None


def _conditions(f: RequestFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.since is not None:
        conditions.append(CallbackRequest.created_at >= f.since)
    if f.until is not None:
        conditions.append(CallbackRequest.created_at < f.until)
    if f.pool_id is not None:
        conditions.append(CallbackRequest.pool_id == f.pool_id)
    if f.status is not None:
        conditions.append(CallbackRequest.status == f.status)
    return conditions


async def page(
    db: AsyncSession, *, f: RequestFilter, after: tuple[datetime, str] | None, limit: int
) -> Sequence[tuple[CallbackRequest, str]]:
    """Requests newest first with their pool's name, after the cursor's (created_at, id)."""
    conditions = _conditions(f)
    if after is not None:
        at, rid = after
        conditions.append(
            or_(
                CallbackRequest.created_at < at,
                and_(CallbackRequest.created_at == at, CallbackRequest.id < rid),
            )
        )
    stmt = (
        select(CallbackRequest, Pool.name)
        .join(Pool, Pool.id == CallbackRequest.pool_id)
        .where(*conditions)
        .order_by(CallbackRequest.created_at.desc(), CallbackRequest.id.desc())
        .limit(limit)
    )
    return [(row[0], row[1]) for row in (await db.execute(stmt)).all()]


async def oldest_since(
    db: AsyncSession, *, phone: str, since: datetime
) -> tuple[datetime, int] | None:
    """The oldest request time for the number since `since`, and how many there were."""
    stmt = select(func.min(CallbackRequest.created_at), func.count()).where(
        CallbackRequest.phone == phone, CallbackRequest.created_at >= since
    )
    oldest, count = (await db.execute(stmt)).one()
    if not count:
        return None
    if isinstance(oldest, str):  # SQLite aggregates lose the column type
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return oldest, int(count)


async def customer_rings_since(db: AsyncSession, *, phone: str, since: datetime) -> list[datetime]:
    """When the number's phone was rung (an agent answered and dialled it), oldest first."""
    stmt = (
        select(CallbackAttempt.agent_answered_at)
        .join(CallbackRequest, CallbackRequest.id == CallbackAttempt.request_id)
        .where(
            CallbackRequest.phone == phone,
            CallbackAttempt.agent_answered_at.is_not(None),
            CallbackAttempt.agent_answered_at > since,
        )
        .order_by(CallbackAttempt.agent_answered_at)
    )
    return [row for row in (await db.execute(stmt)).scalars() if row is not None]


async def extend_claim(
    db: AsyncSession, *, request_id: str, attempt_id: int, token: str, until: datetime
) -> bool:
    """Keep a claim alive while its worker waits on the platform to place a call.

    Only while nothing has moved the request on: an event that did (a busy agent) set the
    due time it needs, which a later extension must not push back.
    """
    stmt = (
        update(CallbackRequest)
        .where(
            CallbackRequest.id == request_id,
            CallbackRequest.claim_token == token,
            CallbackRequest.current_attempt_id == attempt_id,
            CallbackRequest.status == "calling_agent",
        )
        .values(claimed_until=until, next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )
    result = await db.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


async def busy_agents(db: AsyncSession, agents: Sequence[str]) -> set[str]:
    """Those of `agents` on a callback call right now (an attempt of theirs is live)."""
    stmt = (
        select(CallbackAttempt.agent)
        .where(CallbackAttempt.agent.in_(agents), CALLBACK_LIVE_ATTEMPT_SQL)
        .distinct()
    )
    return set((await db.execute(stmt)).scalars())


async def lock_pool(db: AsyncSession, pool_id: int) -> None:
    """Take the pool's row lock until the transaction ends (PostgreSQL; SQLite has one writer).

    Workers choosing agents for the same pool do so one at a time, so two of them never see
    the same agent free and ring them both.
    """
    # NO KEY UPDATE: rows that merely reference the pool (new requests, calls) do not wait.
    stmt = select(Pool.id).where(Pool.id == pool_id).with_for_update(key_share=True)
    await db.execute(stmt)
