"""Ops API payloads for calls."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.sessions import SessionContext

AttributionMethod = Literal["dni", "caller_id", "source", "callback", "web_to_call", "unattributed"]


class CallOut(BaseModel):
    """A call as stored."""

    id: int
    provider: str
    provider_call_id: str
    direction: str
    from_number: str = Field(description="The caller in E.164, or as the platform sent it.")
    to_number: str = Field(description="The number dialled (a tracking number, usually).")
    pool: str | None
    attribution: AttributionMethod
    first_time: bool | None = Field(description="First call from this caller id; null if hidden.")
    session_id: str | None
    source: str | None
    medium: str | None
    campaign: str | None
    forwarded_to: str | None
    status: str
    dial_status: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    talk_seconds: int | None
    disposition: str | None
    recording_url: str | None


class CallLease(BaseModel):
    """The lease a call was credited to."""

    number: str | None
    started_at: datetime
    ends_at: datetime


class CallDetail(CallOut):
    """A call with its session's marketing context and the lease it matched."""

    context: SessionContext | None
    lease: CallLease | None


class CallPage(BaseModel):
    """A page of calls, newest first."""

    items: list[CallOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
