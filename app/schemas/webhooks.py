"""Ops API payloads for outbound webhooks and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

EventType = Literal["call.completed", "callback.completed", "session.created"]
DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]

_EVENTS_DOC = (
    "call.completed: a call ended (sent once the CDR is in, or after a short wait for it); "
    "callback.completed: a callback request reached a final status (completed, failed or "
    "cancelled); session.created: a new visitor session (with its marketing context)."
)


def _unique(events: list[EventType]) -> list[EventType]:
    # A fixed order, so that the same set is stored and shown the same way.
    order: tuple[EventType, ...] = ("call.completed", "callback.completed", "session.created")
    return [kind for kind in order if kind in events]


Events = Annotated[list[EventType], Field(min_length=1, max_length=3), AfterValidator(_unique)]
Url = Annotated[str, Field(min_length=8, max_length=2048, examples=["https://crm.example/hooks"])]
Description = Annotated[str, Field(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]


class WebhookCreate(BaseModel):
    """A CRM endpoint to send events to."""

    model_config = ConfigDict(extra="forbid")

    url: Url
    events: Events = Field(description=_EVENTS_DOC)
    description: Description | None = None
    active: bool = True


class WebhookUpdate(BaseModel):
    """Fields of a subscription to change; a paused one keeps its events until resumed."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    active: bool | None = None


class WebhookOut(BaseModel):
    """A subscription, without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[EventType]
    description: str | None
    active: bool
    created_at: datetime
    updated_at: datetime
    pending_deliveries: int = 0
    failed_deliveries: int = 0


class WebhookWithSecret(WebhookOut):
    """A subscription with its signing secret, shown only when created or rotated."""

    secret: str = Field(
        description="HMAC-SHA256 key of the Calltrack-Signature header; shown only now."
    )


class WebhookList(BaseModel):
    """Every subscription."""

    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One event on its way to one target."""

    id: int
    event_id: str
    event_type: EventType
    target: str = Field(description="'webhook:<subscription id>' or 'ga4'.")
    subscription_id: int | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next, if pending.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AttemptOut(BaseModel):
    """One try at a delivery."""

    model_config = ConfigDict(from_attributes=True)

    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None


class DeliveryDetail(DeliveryOut):
    """A delivery with the body it sends and every attempt made."""

    payload: dict[str, Any] | None
    attempts_made: list[AttemptOut]


class DeliveryPage(BaseModel):
    """A page of deliveries, newest first."""

    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
