"""The outbox: events recorded with the change that caused them, and their deliveries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookSubscription


def _record_statements() -> dict[str, Any]:
    # Recording an event twice keeps the first; a repeat may only bring it forward (a
    # CDR arriving while the event waits for it), never once it has been fanned out.
    table = OutboxEvent.__table__
    built = {}
    for dialect, module in (("postgresql", postgresql), ("sqlite", sqlite)):
        stmt = module.insert(OutboxEvent)
        built[dialect] = stmt.on_conflict_do_update(
            index_elements=["type", "subject"],
            set_={
                "due_at": case(
                    (stmt.excluded.due_at < table.c.due_at, stmt.excluded.due_at),
                    else_=table.c.due_at,
                )
            },
            where=table.c.fanned_out_at.is_(None),
        )
    return built


_RECORD = _record_statements()


def record_sync(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record events on a synchronous connection (from inside a flush)."""
    conn.execute(_RECORD[conn.dialect.name], [dict(row) for row in rows])


async def record(db: AsyncSession, row: Mapping[str, Any]) -> None:
    """Record one event in the caller's transaction."""
    conn = await db.connection()
    await conn.execute(_RECORD[conn.dialect.name], [dict(row)])


async def due_events(db: AsyncSession, *, now: datetime, limit: int) -> list[OutboxEvent]:
    """Events due to be fanned out, locked so that another dispatcher skips them."""
    stmt = (
        select(OutboxEvent)
        .where(OutboxEvent.fanned_out_at.is_(None), OutboxEvent.due_at <= now)
        .order_by(OutboxEvent.due_at, OutboxEvent.id)
        .limit(limit)
    )
    conn = await db.connection()
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await db.scalars(stmt)).all())


async def subscribers(db: AsyncSession, *, event_type: str, since: datetime) -> list[int]:
    """Subscriptions that want `event_type` and existed when the event happened."""
    rows = await db.execute(
        select(WebhookSubscription.id, WebhookSubscription.events).where(
            WebhookSubscription.created_at <= since, WebhookSubscription.deleted_at.is_(None)
        )
    )
    return [sid for sid, events in rows.all() if event_type in events.split(",")]


async def wanted_types(db: AsyncSession) -> set[str]:
    """Every event type some subscription wants."""
    rows = await db.scalars(
        select(WebhookSubscription.events).where(WebhookSubscription.deleted_at.is_(None))
    )
    return {kind for events in rows.all() for kind in events.split(",") if kind}


_ADD_DELIVERY = {
    dialect: module.insert(WebhookDelivery).on_conflict_do_nothing(
        index_elements=["event_id", "target"]
    )
    for dialect, module in (("postgresql", postgresql), ("sqlite", sqlite))
}


async def add_deliveries(db: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Queue deliveries; one already queued for the same event and target stays as it is."""
    if rows:
        conn = await db.connection()
        await conn.execute(_ADD_DELIVERY[conn.dialect.name], [dict(row) for row in rows])


@dataclass(frozen=True)
class Claimed:
    """A delivery in a dispatcher's hands, with what sending it needs."""

    id: int
    target: str
    attempts: int
    event_id: str
    event_type: str
    event_created_at: datetime
    payload: str
    url: str | None
    secret: str | None


async def claim_due(
    db: AsyncSession, *, now: datetime, until: datetime, worker: str, limit: int
) -> list[Claimed]:
    """Claim due deliveries of active targets; a claim lapses at `until` if its holder dies."""
    due = (
        select(WebhookDelivery.id)
        .outerjoin(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            # A paused subscription's deliveries wait for it; GA4's have no subscription.
            (WebhookDelivery.subscription_id.is_(None)) | WebhookSubscription.active,
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    conn = await db.connection()
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(of=WebhookDelivery, skip_locked=True)
    ids = list(
        (
            await db.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=until, claimed_by=worker)
                .returning(WebhookDelivery.id)
                .execution_options(synchronize_session=False)
            )
        ).scalars()
    )
    if not ids:
        return []
    rows = await db.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.target,
            WebhookDelivery.attempts,
            OutboxEvent.event_id,
            OutboxEvent.type,
            OutboxEvent.created_at,
            OutboxEvent.payload,
            WebhookSubscription.url,
            WebhookSubscription.secret,
        )
        .select_from(WebhookDelivery)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .outerjoin(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.id)
    )
    return [
        Claimed(
            id=r[0],
            target=r[1],
            attempts=r[2],
            event_id=r[3],
            event_type=r[4],
            event_created_at=r[5],
            payload=r[6] or "{}",
            url=r[7],
            secret=r[8],
        )
        for r in rows.all()
    ]


async def release_claims_of(db: AsyncSession, *, worker: str, at: datetime) -> None:
    """Hand back what `worker` holds and has not finished, due at `at`."""
    await db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.claimed_by == worker, WebhookDelivery.status == "pending")
        .values(claimed_by=None, next_attempt_at=at)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Outcome:
    """How one attempt went and what follows: delivered, failed for good, or a retry time."""

    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    status: str
    next_attempt_at: datetime | None


async def finish_attempt(
    db: AsyncSession, *, delivery_id: int, worker: str, outcome: Outcome, now: datetime
) -> bool:
    """Log the attempt and move the delivery on; False if the claim was lost meanwhile."""
    delivery = await db.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != "pending" or delivery.claimed_by != worker:
        return False
    delivery.attempts += 1
    db.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            number=delivery.attempts,
            started_at=outcome.started_at,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=outcome.error[:255] if outcome.error else None,
        )
    )
    delivery.status = outcome.status
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:255] if outcome.error else None
    delivery.claimed_by = None
    delivery.updated_at = now
    if outcome.status == "delivered":
        delivery.delivered_at = now
    if outcome.next_attempt_at is not None:
        delivery.next_attempt_at = outcome.next_attempt_at
    return True


FINISHED = ("delivered", "failed", "cancelled")


async def prune(db: AsyncSession, *, before: datetime, limit: int) -> int:
    """Forget up to `limit` deliveries finished before `before`, and events left without any."""
    done = list(
        await db.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status.in_(FINISHED), WebhookDelivery.updated_at < before)
            .limit(limit)
        )
    )
    if done:
        await db.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(done)))
        await db.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(done)))
    orphans = list(
        await db.scalars(
            select(OutboxEvent.id)
            .where(
                OutboxEvent.fanned_out_at < before,
                ~exists().where(WebhookDelivery.event_id == OutboxEvent.id),
            )
            .limit(limit)
        )
    )
    if orphans:
        await db.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(orphans)))
    return len(done) + len(orphans)
