"""Webhook subscriptions and the delivery log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookSubscription


async def add(db: AsyncSession, **fields: Any) -> WebhookSubscription:
    """Store a new subscription."""
    row = WebhookSubscription(**fields)
    db.add(row)
    await db.flush()
    return row


async def get(db: AsyncSession, subscription_id: int) -> WebhookSubscription | None:
    """A subscription that has not been deleted."""
    row = await db.get(WebhookSubscription, subscription_id)
    return row if row is not None and row.deleted_at is None else None


async def list_live(db: AsyncSession) -> Sequence[WebhookSubscription]:
    """Every subscription not deleted, oldest first."""
    stmt = (
        select(WebhookSubscription)
        .where(WebhookSubscription.deleted_at.is_(None))
        .order_by(WebhookSubscription.id)
    )
    return (await db.scalars(stmt)).all()


async def counts(db: AsyncSession, ids: Sequence[int]) -> dict[tuple[int, str], int]:
    """Pending and failed deliveries per subscription."""
    if not ids:
        return {}
    stmt = (
        select(WebhookDelivery.subscription_id, WebhookDelivery.status, func.count())
        .where(
            WebhookDelivery.subscription_id.in_(ids),
            WebhookDelivery.status.in_(("pending", "failed")),
        )
        .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status)
    )
    rows = (await db.execute(stmt)).all()
    return {(sid, status): int(n) for sid, status, n in rows if sid is not None}


async def cancel_pending(db: AsyncSession, subscription_id: int, now: datetime) -> None:
    """Cancel what a deleted subscription had still to receive."""
    await db.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription_id,
            WebhookDelivery.status == "pending",
        )
        .values(status="cancelled", claimed_by=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


_DELIVERY_COLUMNS = (WebhookDelivery, OutboxEvent.event_id, OutboxEvent.type)


async def deliveries(
    db: AsyncSession,
    *,
    subscription_id: int | None,
    target: str | None,
    status: str | None,
    event_type: str | None,
    before_id: int | None,
    limit: int,
) -> list[tuple[WebhookDelivery, str, str]]:
    """Deliveries newest first, filtered; one more than `limit` tells that more exist."""
    stmt = (
        select(*_DELIVERY_COLUMNS)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if subscription_id is not None:
        stmt = stmt.where(WebhookDelivery.subscription_id == subscription_id)
    if target is not None:
        stmt = stmt.where(WebhookDelivery.target == target)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if event_type is not None:
        stmt = stmt.where(OutboxEvent.type == event_type)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return [(row[0], row[1], row[2]) for row in (await db.execute(stmt)).all()]


async def delivery(
    db: AsyncSession, delivery_id: int, *, for_update: bool = False
) -> tuple[WebhookDelivery, OutboxEvent] | None:
    """One delivery and its event."""
    stmt = (
        select(WebhookDelivery, OutboxEvent)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id)
    )
    if for_update:
        stmt = stmt.with_for_update(of=WebhookDelivery)
    row = (await db.execute(stmt)).first()
    return (row[0], row[1]) if row is not None else None


async def attempts(db: AsyncSession, delivery_id: int) -> Sequence[WebhookAttempt]:
    """Every attempt at a delivery, first first."""
    stmt = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.number)
    )
    return (await db.scalars(stmt)).all()


async def requeue_failed(db: AsyncSession, subscription_id: int, now: datetime) -> int:
    """Make every failed delivery of a subscription due again now; how many."""
    result = await db.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription_id,
            WebhookDelivery.status == "failed",
        )
        .values(status="pending", next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
