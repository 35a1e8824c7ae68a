"""Webhook subscriptions for CRMs, and the delivery log ops read and act on."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.db.repositories import webhooks as repo
from app.errors import Conflict, InvalidInput, NotFound
from app.services import outbox, signing

MAX_ID = 2**62


def check_url(url: str, *, allow_http: bool) -> str:
    """The URL when deliveries may go there: https, or http to this machine (or when allowed)."""
    url = url.strip()
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise InvalidInput("url: must not contain spaces or control characters", field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - parsing the port is the check: it raises when malformed
    except ValueError as exc:
        raise InvalidInput(f"url: not a valid URL ({exc})", field="url") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidInput("url: must be an absolute http(s) URL", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "url: must not carry credentials; the signature proves the sender", field="url"
        )
    if parts.fragment:
        raise InvalidInput("url: must not have a fragment", field="url")
    if parts.scheme == "http" and not allow_http and not _loopback(host):
        raise InvalidInput(
            "url: must use https (set CALLTRACK_WEBHOOKS_ALLOW_HTTP=true to allow http)",
            field="url",
        )
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Subscription:
    """A subscription as the API shows it."""

    row: WebhookSubscription
    pending: int
    failed: int

    def fields(self) -> dict[str, Any]:
        """The API's fields."""
        row = self.row
        return {
            "id": row.id,
            "url": row.url,
            "events": [kind for kind in row.events.split(",") if kind],
            "description": row.description,
            "active": row.active,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "pending_deliveries": self.pending,
            "failed_deliveries": self.failed,
        }


async def _shown(db: AsyncSession, rows: Sequence[WebhookSubscription]) -> list[Subscription]:
    found = await repo.counts(db, [row.id for row in rows])
    return [
        Subscription(row, found.get((row.id, "pending"), 0), found.get((row.id, "failed"), 0))
        for row in rows
    ]


async def _get(db: AsyncSession, subscription_id: int) -> WebhookSubscription:
    row = await repo.get(db, subscription_id)
    if row is None:
        raise NotFound(f"webhook {subscription_id} does not exist", field="webhook_id")
    return row


async def create(
    db: AsyncSession,
    *,
    url: str,
    events: Sequence[str],
    description: str | None,
    active: bool,
    allow_http: bool,
    now: datetime,
) -> Subscription:
    """Subscribe a URL to events; the secret is made here and shown once."""
    row = await repo.add(
        db,
        url=check_url(url, allow_http=allow_http),
        events=",".join(events),
        description=description,
        secret=signing.new_secret(),
        active=active,
        created_at=now,
        updated_at=now,
    )
    outbox.wanted.forget()
    return Subscription(row, 0, 0)


async def list_all(db: AsyncSession) -> list[Subscription]:
    """Every live subscription."""
    return await _shown(db, await repo.list_live(db))


async def get(db: AsyncSession, subscription_id: int) -> Subscription:
    """One subscription with its delivery counts."""
    return (await _shown(db, [await _get(db, subscription_id)]))[0]


async def update(
    db: AsyncSession,
    subscription_id: int,
    *,
    changes: dict[str, Any],
    allow_http: bool,
    now: datetime,
) -> Subscription:
    """Change a subscription; fields left out keep their value."""
    row = await _get(db, subscription_id)
    if changes.get("url") is not None:
        row.url = check_url(changes["url"], allow_http=allow_http)
    if changes.get("events") is not None:
        row.events = ",".join(changes["events"])
    if "description" in changes:
        row.description = changes["description"]
    if changes.get("active") is not None:
        row.active = changes["active"]
    row.updated_at = now
    await db.flush()
    outbox.wanted.forget()
    return await get(db, subscription_id)


async def rotate_secret(db: AsyncSession, subscription_id: int, *, now: datetime) -> Subscription:
    """A new secret; deliveries from now on are signed with it."""
    row = await _get(db, subscription_id)
    row.secret = signing.new_secret()
    row.updated_at = now
    await db.flush()
    return await get(db, subscription_id)


async def delete(db: AsyncSession, subscription_id: int, *, now: datetime) -> None:
    """Stop sending for good; what was still pending is cancelled, the log stays."""
    row = await _get(db, subscription_id)
    row.deleted_at = now
    row.active = False
    row.updated_at = now
    await repo.cancel_pending(db, subscription_id, now)
    outbox.wanted.forget()


def delivery_fields(delivery: WebhookDelivery, event_id: str, event_type: str) -> dict[str, Any]:
    """The API's fields of a delivery."""
    return {
        "id": delivery.id,
        "event_id": event_id,
        "event_type": event_type,
        "target": delivery.target,
        "subscription_id": delivery.subscription_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


def _cursor_id(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit()) or not 0 < int(cursor) <= MAX_ID:
        raise InvalidInput("cursor: not a cursor this API gave out", field="query.cursor")
    return int(cursor)


async def deliveries(
    db: AsyncSession,
    *,
    subscription_id: int | None,
    target: str | None,
    status: str | None,
    event_type: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the delivery log, newest first, and the cursor of the next page."""
    rows = await repo.deliveries(
        db,
        subscription_id=subscription_id,
        target=target,
        status=status,
        event_type=event_type,
        before_id=_cursor_id(cursor),
        limit=limit,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [delivery_fields(*row) for row in rows]
    return items, str(rows[-1][0].id) if more and rows else None


async def _delivery(
    db: AsyncSession, delivery_id: int, *, for_update: bool = False
) -> tuple[WebhookDelivery, OutboxEvent]:
    found = await repo.delivery(db, delivery_id, for_update=for_update)
    if found is None:
        raise NotFound(f"delivery {delivery_id} does not exist", field="delivery_id")
    return found


async def delivery_detail(
    db: AsyncSession, delivery_id: int
) -> tuple[dict[str, Any], Sequence[WebhookAttempt]]:
    """A delivery's fields with its payload, and its attempts."""
    delivery, event = await _delivery(db, delivery_id)
    fields = delivery_fields(delivery, event.event_id, event.type)
    fields["payload"] = json.loads(event.payload) if event.payload else None
    return fields, await repo.attempts(db, delivery_id)


async def retry(db: AsyncSession, delivery_id: int, *, now: datetime) -> dict[str, Any]:
    """Send a failed (or cancelled, or waiting) delivery again now."""
    delivery, event = await _delivery(db, delivery_id, for_update=True)
    if delivery.status == "delivered":
        raise Conflict(f"delivery {delivery_id} was delivered already", field="delivery_id")
    if (
        delivery.subscription_id is not None
        and await repo.get(db, delivery.subscription_id) is None
    ):
        raise Conflict(f"delivery {delivery_id}: its webhook was deleted", field="delivery_id")
    if delivery.status != "pending" or delivery.claimed_by is None:
        delivery.status = "pending"
        delivery.next_attempt_at = now
        delivery.updated_at = now
    await db.flush()
    return delivery_fields(delivery, event.event_id, event.type)


async def retry_failed(db: AsyncSession, subscription_id: int, *, now: datetime) -> int:
    """Send every failed delivery of a subscription again (its endpoint is back); how many."""
    await _get(db, subscription_id)
    return await repo.requeue_failed(db, subscription_id, now)
