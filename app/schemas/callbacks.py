"""Payloads of click-to-callback: the public form, the page's poll, the ops views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.public import Phone, ProspectForm

CallbackStatus = Literal[
    "queued",
    "scheduled",
    "calling_agent",
    "calling_customer",
    "completed",
    "agent_unavailable",
    "customer_unreachable",
    "failed",
    "cancelled",
]
CALLBACK_ID_PATTERN = r"^cb_[A-Za-z0-9_-]{22}$"
CallbackId = Annotated[str, StringConstraints(pattern=CALLBACK_ID_PATTERN)]


class CallbackIn(ProspectForm):
    """A prospect form asking to be called back: the tutorial's fields, plus extensions."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "email": "myuser@mydomain.com",
                    "phone": "12127778900",
                    "fullname": "some name",
                    "pool": "default",
                }
            ]
        },
    )

    phone: Phone = Field(description="The number to call back; E.164 or national digits.")


class CallbackQueued(BaseModel):
    """The tutorial's answer, plus what a page needs to follow the request."""

    status: Literal["success"] = "success"
    message: str
    callback_id: str
    scheduled_for: datetime = Field(description="When the first call is placed, at the earliest.")
    state: CallbackStatus
    session_id: str | None = Field(description="Send it back on later requests of the visit.")


class CallbackState(BaseModel):
    """A request's progress for the page to poll; no personal data."""

    callback_id: str
    state: CallbackStatus
    scheduled_for: datetime
    next_attempt_at: datetime | None = Field(description="When the next call is due, if any.")
    attempts: int
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class CallbackAttemptOut(BaseModel):
    """One call to an agent made for a request."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    round: int
    agent: str
    status: str
    provider_call_id: str | None
    customer_status: str | None
    talk_seconds: int | None
    error: str | None
    created_at: datetime
    agent_answered_at: datetime | None
    ended_at: datetime | None


class CallbackOut(BaseModel):
    """A callback request as the ops API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    pool: str
    session_id: str | None
    phone: str
    status: CallbackStatus
    attempts: int = Field(description="Rounds started (a round rings the agents in order).")
    scheduled_for: datetime
    next_attempt_at: datetime
    expires_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    call_id: int | None = Field(description="The bridged call, once completed.")
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class CallbackDetail(CallbackOut):
    """A request with every attempt."""

    attempts_made: list[CallbackAttemptOut]


class CallbackPage(BaseModel):
    """A page of requests, newest first."""

    items: list[CallbackOut]
    next_cursor: str | None
