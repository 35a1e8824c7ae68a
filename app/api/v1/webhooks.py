"""Ops API: webhook subscriptions for CRMs, and the delivery log (webhooks and GA4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel

from app.api.deps import AdminDep, NowDep, SessionDep, StateDep
from app.schemas.problem import problem_responses
from app.schemas.webhooks import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    EventType,
    WebhookCreate,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from app.services import webhooks

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)

WebhookId = Annotated[int, Path(ge=1, le=2**31 - 1)]
DeliveryId = Annotated[int, Path(ge=1, le=webhooks.MAX_ID)]


class Requeued(BaseModel):
    """How many failed deliveries were made due again."""

    requeued: int


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    responses=problem_responses(422),
)
async def create_webhook(
    body: WebhookCreate, db: SessionDep, state: StateDep, now: NowDep
) -> WebhookWithSecret:
    """Subscribe a URL to events; the answer holds the signing secret, shown only now."""
    found = await webhooks.create(
        db,
        url=body.url,
        events=body.events,
        description=body.description,
        active=body.active,
        allow_http=state.settings.webhooks_allow_http,
        now=now,
    )
    return WebhookWithSecret.model_validate({**found.fields(), "secret": found.row.secret})


@router.get("", response_model=WebhookList)
async def list_webhooks(db: SessionDep) -> WebhookList:
    """Every subscription, with how many deliveries wait or failed."""
    return WebhookList(
        items=[WebhookOut.model_validate(s.fields()) for s in await webhooks.list_all(db)]
    )


@router.get("/deliveries", response_model=DeliveryPage, responses=problem_responses(422))
async def list_deliveries(
    db: SessionDep,
    webhook_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    target: Annotated[
        str | None, Query(max_length=32, description="'ga4' or 'webhook:<id>'.")
    ] = None,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    event_type: EventType | None = None,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    """The delivery log, newest first: every event sent or to be sent, to CRMs and GA4."""
    items, next_cursor = await webhooks.deliveries(
        db,
        subscription_id=webhook_id,
        target=target,
        status=delivery_status,
        event_type=event_type,
        cursor=cursor,
        limit=limit,
    )
    return DeliveryPage(
        items=[DeliveryOut.model_validate(item) for item in items], next_cursor=next_cursor
    )


@router.get(
    "/deliveries/{delivery_id}", response_model=DeliveryDetail, responses=problem_responses(404)
)
async def get_delivery(delivery_id: DeliveryId, db: SessionDep) -> DeliveryDetail:
    """A delivery with the exact body it sends and every attempt made."""
    fields, attempts = await webhooks.delivery_detail(db, delivery_id)
    return DeliveryDetail.model_validate(
        {**fields, "attempts_made": [AttemptOut.model_validate(a) for a in attempts]}
    )


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=problem_responses(404, 409),
)
async def retry_delivery(
    delivery_id: DeliveryId, db: SessionDep, state: StateDep, now: NowDep
) -> DeliveryOut:
    """Send a delivery again now, whatever became of it, unless it was delivered."""
    fields = await webhooks.retry(db, delivery_id, now=now)
    if state.dispatcher is not None:
        state.dispatcher.wake()
    return DeliveryOut.model_validate(fields)


@router.get("/{webhook_id}", response_model=WebhookOut, responses=problem_responses(404))
async def get_webhook(webhook_id: WebhookId, db: SessionDep) -> WebhookOut:
    """One subscription."""
    return WebhookOut.model_validate((await webhooks.get(db, webhook_id)).fields())


@router.patch("/{webhook_id}", response_model=WebhookOut, responses=problem_responses(404, 422))
async def update_webhook(
    webhook_id: WebhookId, body: WebhookUpdate, db: SessionDep, state: StateDep, now: NowDep
) -> WebhookOut:
    """Change a subscription; `active: false` pauses it and its events wait for it."""
    found = await webhooks.update(
        db,
        webhook_id,
        changes=body.model_dump(exclude_unset=True),
        allow_http=state.settings.webhooks_allow_http,
        now=now,
    )
    return WebhookOut.model_validate(found.fields())


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404)
)
async def delete_webhook(webhook_id: WebhookId, db: SessionDep, now: NowDep) -> Response:
    """Stop sending to this URL; pending deliveries are cancelled, the log is kept."""
    await webhooks.delete(db, webhook_id, now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/secret", response_model=WebhookWithSecret, responses=problem_responses(404)
)
async def rotate_webhook_secret(
    webhook_id: WebhookId, db: SessionDep, now: NowDep
) -> WebhookWithSecret:
    """Replace the signing secret; the new one is shown only now."""
    found = await webhooks.rotate_secret(db, webhook_id, now=now)
    return WebhookWithSecret.model_validate({**found.fields(), "secret": found.row.secret})


@router.post(
    "/{webhook_id}/retry-failed", response_model=Requeued, responses=problem_responses(404)
)
async def retry_failed_deliveries(
    webhook_id: WebhookId, db: SessionDep, state: StateDep, now: NowDep
) -> Requeued:
    """Send every failed delivery of this subscription again (its endpoint is back)."""
    count = await webhooks.retry_failed(db, webhook_id, now=now)
    if state.dispatcher is not None:
        state.dispatcher.wake()
    return Requeued(requeued=count)
